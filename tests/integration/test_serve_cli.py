"""``lernflow serve`` run as a user runs it: it says where it listens, answers the QR code's URL,
stops on SIGTERM with exit 0, and exits 1 when its port is taken. docs/serve.md."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servekit import LEARNER, Issued, issue

LISTENING = re.compile(r"serving certificate pages on (http://127\.0\.0\.1:\d+)")


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return issue(tmp_path_factory.mktemp("serve-cli"))


def _env(issued: Issued) -> dict[str, str]:
    c = issued.settings.certificates
    return {
        **os.environ,
        "LERNFLOW_CERT_KEYS_DIR": str(c.keys_dir),
        "LERNFLOW_CERT_STORAGE_DIR": str(c.storage_dir),
        "COLUMNS": "200",
    }


def _serve(issued: Issued, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lernflow.cli", "serve", "--host", "127.0.0.1", *args],
        env=_env(issued), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def _url_of(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        found = LISTENING.search(line)
        if found:
            return found.group(1)
        assert line or process.poll() is None, f"serve ended: {process.returncode}"
    raise AssertionError("serve did not say where it listens")


def test_serve_answers_the_qr_url_and_stops_on_sigterm(issued: Issued) -> None:
    process = _serve(issued, "--port", "0")
    try:
        url = _url_of(process)
        response = httpx.get(
            f"{url}/certs/{issued.cert_id}", headers={"accept": "application/json"}
        )
        assert response.status_code == 200
        assert response.json()["verdict"] == "valid"
        assert response.json()["certificate"]["learner"] == LEARNER
        assert "server" not in response.headers
        assert httpx.get(f"{url}/certs/nope").status_code == 404
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def test_serve_exits_1_when_its_port_is_taken(issued: Issued, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = _serve(issued, "--port", str(taken.getsockname()[1]))
        try:
            assert process.wait(60) == 1
        finally:
            if process.poll() is None:
                process.kill()
        assert process.stderr is not None
        with process.stderr:
            assert "address already in use" in process.stderr.read().lower()
