"""``lernflow status`` shows whether a flow runs, where it is, its rate and what it parked
(summary, per-partition table and JSON), and exits non-zero when a flow is stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lernflow.config import Settings
from lernflow.ops.runner import input_topic
from tests.flowkit import create_topics, produce, run_to_end

FLOW = "user-cache-updater"
SKIP = b'{"eid":"AUDIT","object":{"id":"do_1","type":"Content"},"edata":{"state":"Update"}}'


def _lernflow(settings: Settings, *args: str, code: int = 1, columns: int = 250) -> str:
    """Run a lernflow command; check its exit code (1: a flow is stopped; -1: any)."""
    done = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", *args],
        env={**os.environ, **settings.to_env(), "COLUMNS": str(columns)}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert code < 0 or done.returncode == code, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_status_json_shows_position_lag_rate_and_failed_events_after_a_run(
    settings: Settings,
) -> None:
    create_topics(settings)
    topic = input_topic(settings, FLOW)
    produce(settings, topic, [SKIP] * 40 + [b"not json"] * 3, key=b"k")
    run_to_end(FLOW, settings)

    flows = {f["flow"]: f for f in json.loads(_lernflow(settings, "status", "--json"))}
    mine = flows[FLOW]
    busy = [p for p in mine["partitions"] if p["end"] > 0]
    assert len(busy) == 1  # one key → one partition
    assert busy[0]["committed"] == busy[0]["end"] == 43
    assert busy[0]["lag"] == 0 and mine["lag"] == 0
    assert busy[0]["events_per_s"] > 0  # from the note committed with the position
    assert busy[0]["committed_at"] is not None
    assert mine["failed_events"] == 3
    # a flow that never ran here has no position, no rate and nothing parked
    idle = flows["assessment-aggregator"]
    assert all(p["committed"] is None and p["events_per_s"] is None for p in idle["partitions"])
    assert idle["failed_events"] == 0


def test_status_table_lists_every_flow_with_its_columns(settings: Settings) -> None:
    create_topics(settings)
    table = _lernflow(settings, "status", "--partitions")
    for column in ("committed", "end", "lag", "events/s", "failed events", "last snapshot"):
        assert column in table
    assert FLOW in table and "activity-aggregate-updater" in table


def _start(
    settings: Settings, tmp_path: Path, beat_s: float
) -> tuple[Settings, subprocess.Popen[bytes]]:
    """`lernflow run FLOW` (live) beating every ``beat_s``; wait until status sees it running."""
    live = settings.with_overrides(
        run=settings.run.model_copy(
            update={"recovery_dir": tmp_path / "recovery", "heartbeat_interval_s": beat_s}
        )
    )
    create_topics(live)
    produce(live, input_topic(live, FLOW), [SKIP] * 20, key=b"k")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lernflow.cli", "run", FLOW], env={**os.environ, **live.to_env()},
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "run.log").open("wb"),
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        mine = json.loads(_lernflow(live, "status", FLOW, "--json", code=-1))[0]
        if mine["running"] and mine["lag"] == 0:
            return live, proc
        time.sleep(0.5)
    proc.kill()
    raise AssertionError((tmp_path / "run.log").read_text()[-3000:])


def _verdict(settings: Settings, code: int) -> Any:
    return json.loads(_lernflow(settings, "status", FLOW, "--json", code=code))[0]


def test_status_says_running_then_stopped_at_once_after_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    live, proc = _start(settings, tmp_path, beat_s=30.0)  # its beat would live 90 s
    try:
        mine = _verdict(live, code=0)
        assert mine["verdict"] == "ok" and mine["running"] is True
        [process] = mine["processes"]
        assert process["pid"] == proc.pid and process["host"] == socket.gethostname()
        assert process["workers"] == 1 and process["processes"] == 1 and process["version"]
        assert mine["up_since"] is not None
        # the summary: one line per flow at 80 columns, this one running and ok
        lines = _lernflow(live, "status", columns=80).splitlines()
        assert max(len(line) for line in lines) <= 80
        row = next(line for line in lines if line.startswith(FLOW + " "))
        assert row.split()[1:3] == ["ok", "1/1"]
        stopped = next(line for line in lines if line.startswith("assessment-aggregator "))
        assert stopped.split()[1] == "stopped"  # never started here
        # it parks most of what it reads now: failing, exit 1, and the summary says why
        produce(live, input_topic(live, FLOW), [b"not json"] * 5, key=b"k")
        t0 = time.monotonic()
        while (mine := _verdict(live, code=-1))["verdict"] != "failing":
            assert time.monotonic() - t0 < 60, mine
            time.sleep(0.5)
        assert mine["failed_last_min"] == 5 and mine["failed_events"] == 5
        why = _lernflow(live, "status", FLOW, code=1).splitlines()[-1]
        assert why.startswith(f"{FLOW}: parked 5 of ") and why.endswith("read in the last minute")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    # a clean stop deletes the heartbeat: stopped at once, exit 1
    mine = _verdict(live, code=1)
    assert mine["verdict"] == "stopped" and mine["running"] is False and mine["processes"] == []


def test_status_says_stopped_when_a_killed_flow_heartbeat_expires(
    settings: Settings, tmp_path: Path
) -> None:
    live, proc = _start(settings, tmp_path, beat_s=1.0)
    assert _verdict(live, code=0)["verdict"] == "ok"
    proc.kill()  # kill -9: nothing deletes the beat, it expires after 3 intervals (3 s)
    proc.wait(timeout=30)
    t0 = time.monotonic()
    while _verdict(live, code=-1)["verdict"] != "stopped":
        assert time.monotonic() - t0 < 30, "still running long after its heartbeat expired (3 s)"
        time.sleep(0.5)
    assert _verdict(live, code=1)["running"] is False
    # a probe on one flow: exit 1 when it is stopped (also a flow never started)
    _lernflow(live, "status", "assessment-aggregator", code=1)
