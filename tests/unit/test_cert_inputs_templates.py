"""Template reads are bounded and confined (issue 15 D3): only regular files under the template
folders, at most ``max_bytes`` and ``timeout`` for every scheme, ``data:`` URIs accepted, and an
error for a path outside the folders that does not say whether a file is there."""

from __future__ import annotations

import base64
import http.server
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lernflow.certificates.fetch import TemplateCache, TemplateUnavailable, bundled_template_path
from lernflow.certificates.sanitize import TemplateError
from lernflow.config import load_settings
from lernflow.flows.certificate_generator.maker import template_cache

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>hi</text></svg>'


def _quick(fn: Callable[[], object], seconds: float = 5.0) -> None:
    """``fn`` raises TemplateError within ``seconds`` (run in a thread: the old code hangs)."""
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            fn()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still reading after {seconds} s"
    assert isinstance(outcome[0], TemplateError), outcome


def test_the_flow_reads_local_templates_only_from_the_packaged_folder_by_default(tmp_path):
    cache = template_cache(load_settings())
    assert "lernflow" in cache.get(str(bundled_template_path()))
    elsewhere = tmp_path / "t.svg"
    elsewhere.write_text(SVG)
    for path in (str(elsewhere), elsewhere.as_uri(), "/etc/passwd", "/proc/self/environ"):
        with pytest.raises(TemplateError, match="outside the template folders"):
            cache.get(path)


def test_a_path_outside_the_folders_fails_alike_whether_or_not_it_exists(tmp_path):
    cache = TemplateCache(local_roots=[tmp_path / "templates"])
    (tmp_path / "secret").write_text("top secret")
    messages = []
    for name in ("secret", "missing"):
        with pytest.raises(TemplateError) as err:
            cache.get(str(tmp_path / name))
        messages.append(str(err.value).replace(name, "X"))
    assert messages[0] == messages[1]


def test_devices_fifos_and_symlinks_in_a_folder_are_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "pipe.svg")  # no writer: opening it for reading would block
    (tmp_path / "zero.svg").symlink_to("/dev/zero")
    cache = TemplateCache(local_roots=[tmp_path, Path("/dev")])
    _quick(lambda: cache.get(str(tmp_path / "pipe.svg")))
    _quick(lambda: cache.get("/dev/zero"))  # st_size 0, endless
    _quick(lambda: cache.get(str(tmp_path / "zero.svg")))
    with pytest.raises(TemplateError, match="not a regular file"):
        cache.get("/dev/zero")


def test_a_file_over_the_limit_is_refused(tmp_path):
    big = tmp_path / "big.svg"
    big.write_text(SVG[:-6] + " " * 5000 + "</svg>")
    cache = TemplateCache(local_roots=[tmp_path], max_bytes=4096)
    with pytest.raises(TemplateError, match="larger than 4096 bytes"):
        cache.get(str(big))
    assert TemplateCache(local_roots=[tmp_path], max_bytes=8192).get(str(big))


def test_extra_template_folders_come_from_the_setting(tmp_path):
    s = load_settings()
    c = s.certificates.model_copy(update={"template_roots": f" {tmp_path} ,"})
    (tmp_path / "t.svg").write_text(SVG)
    cache = template_cache(s.with_overrides(certificates=c))
    assert "hi" in cache.get(str(tmp_path / "t.svg"))
    assert cache.get(str(bundled_template_path()))


@pytest.mark.parametrize(
    "uri",
    [
        "data:image/svg+xml;base64," + base64.b64encode(SVG.encode()).decode(),
        "data:image/svg+xml;charset=utf-8;base64," + base64.b64encode(SVG.encode()).decode(),
        "data:image/svg+xml," + urllib.parse.quote(SVG),
        "data:image/svg+xml;charset=UTF-8," + urllib.parse.quote(SVG),
    ],
)
def test_data_uris_are_templates(uri):
    assert "hi" in TemplateCache().get(uri)


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("data:text/html;base64,PHN2Zz4=", "must be image/svg\\+xml"),
        ("data:image/svg+xml;charset=latin-1,%3Csvg%3E", "not supported"),
        ("data:image/svg+xml;base64,@@@", "not valid base64"),
        ("data:image/svg+xml", "must be image/svg\\+xml"),
    ],
)
def test_other_data_uris_are_refused(uri, match):
    with pytest.raises(TemplateError, match=match):
        TemplateCache().get(uri)


def test_a_data_uri_over_the_limit_is_refused():
    body = SVG[:-6] + " " * 5000 + "</svg>"
    for uri in (
        "data:image/svg+xml;base64," + base64.b64encode(body.encode()).decode(),
        "data:image/svg+xml," + urllib.parse.quote(body),
        "data:image/svg+xml," + "%20" * 10_000,
    ):
        with pytest.raises(TemplateError, match="larger than 4096 bytes"):
            TemplateCache(max_bytes=4096).get(uri)


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "ok"

    def do_GET(self) -> None:
        if self.mode == "endless":  # no Content-Length, more bytes than any limit
            self.send_response(200)
            self.end_headers()
            chunk = b" " * 65536
            for _ in range(200):
                self.wfile.write(chunk)
        elif self.mode == "drip":  # a byte every 0.2 s, for ever
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            for _ in range(100_000):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
        elif self.mode.startswith("redirect:"):
            self.send_response(302)
            self.send_header("Location", self.mode.removeprefix("redirect:"))
            self.end_headers()
        elif self.mode == "slow-headers":
            self.wfile.write(b"HTTP/1.0 200 OK\r\n")
            for _ in range(1000):
                self.wfile.write(b"X: y\r\n")
                self.wfile.flush()
                time.sleep(0.2)
        else:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(SVG.encode())

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_http_template_is_bounded_in_bytes(server):
    host, handler = server
    handler.mode = "endless"
    with pytest.raises(TemplateError, match="larger than 100000 bytes"):
        TemplateCache(allowed_hosts=[host], max_bytes=100_000).get(f"http://{host}/t.svg")


@pytest.mark.parametrize("mode", ["drip", "slow-headers"])
def test_an_http_template_is_bounded_in_time(server, mode):
    host, handler = server
    handler.mode = mode
    cache = TemplateCache(allowed_hosts=[host], timeout=1.0)
    started = time.monotonic()
    with pytest.raises(TemplateUnavailable, match="template host unavailable"):
        cache.get(f"http://{host}/t.svg")
    assert time.monotonic() - started < 3.0


def test_an_unresolvable_or_malformed_url_is_a_template_error():
    for url in ("http://[::1/t.svg", "/tmp/a\x00b.svg"):
        with pytest.raises(TemplateError):
            TemplateCache(allowed_hosts=["::1"], local_roots=[Path("/tmp")]).get(url)


def test_a_template_host_is_read_within_the_timeout(server):
    host, _handler = server
    assert "hi" in TemplateCache(allowed_hosts=[host], timeout=5).get(f"http://{host}/t.svg")


@pytest.mark.parametrize("target", ["http://evil.example/t.svg", "file:///etc/passwd"])
def test_redirects_leave_the_allowed_hosts_only_as_errors(server, target):
    host, handler = server
    handler.mode = f"redirect:{target}"
    cache = TemplateCache(allowed_hosts=[host])
    with pytest.raises(
        TemplateError, match=r"redirect to a host that is not allowed|HTTP 302"
    ) as err:
        cache.get(f"http://{host}/t.svg")
    assert not isinstance(err.value, TemplateUnavailable)  # the host answered: no backoff
    handler.mode = "ok"
    assert "hi" in cache.get(f"http://{host}/t.svg")
