"""A template host answering 503 delays only the requests that need it (issue 15 D4): through the
production processor (shell + logic + real maker) on an in-memory store, two courses, one
template on a local HTTP server that answers 503 — the other course's certificate is made, the
503 ones are parked once each with ``template host unavailable: …`` and nothing is raised; the
host is backed off (not asked again for every request), and once it is back a requeue of the
parked requests makes them."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lernflow.certificates import signing
from lernflow.certificates.fetch import bundled_template_path
from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_generator.flow import SPEC
from lernflow.flows.certificate_generator.maker import CertificateMaker
from lernflow.flows.certificate_generator.plan import EnrolmentKey
from lernflow.flows.certificate_generator.processor import GeneratorLogic
from tests.paths import DATA
from tests.shellkit import metric, run
from tests.unit.test_certificate_generator_processor import SIGNATURE, MemoryStore

FX = DATA / "certificates"
DOWN_COURSE, UP_COURSE, BATCH = "do_lf_down_1", "do_lf_up_1", "lfbatch0930"


class _Template(http.server.BaseHTTPRequestHandler):
    status = 503
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        if self.status != 200:
            self.send_error(self.status)
            return
        body = bundled_template_path().read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def host() -> Iterator[tuple[str, type[_Template]]]:
    handler = type("Handler", (_Template,), {"status": 503, "hits": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _settings(tmp_path: Path, host: str) -> Settings:
    s = load_settings()
    c = s.certificates.model_copy(
        update={"keys_dir": tmp_path / "keys", "storage_dir": tmp_path / "store",
                "renderer": "cairosvg", "template_hosts": host,
                "template_host_backoff_s": 1.0, "template_timeout_s": 5.0}
    )  # fmt: skip
    signing.generate_keys(c.keys_dir, kid="unit-down")
    run_ = s.run.model_copy(  # the old code retried the host with these, then raised
        update={"retry_max_attempts": 2, "retry_base_delay_s": 0.01, "retry_max_delay_s": 0.02}
    )
    return s.with_overrides(
        topics=s.topics.model_copy(update={"env": "unit-down"}), certificates=c, run=run_
    )


def _request(user: str, course: str, template: str) -> str:
    doc = json.loads((FX / "gen.request.first.json").read_text())
    doc["edata"].update(userId=user, svgTemplate=template, data=[
        {"recipientName": f"Learner {user}", "recipientId": user}])  # fmt: skip
    doc["edata"]["related"].update(courseId=course)
    for signatory in doc["edata"]["signatoryList"]:
        signatory["image"] = SIGNATURE
    return json.dumps(doc)


def _parked(outbox: Any, settings: Settings) -> list[dict[str, Any]]:
    return outbox.on(SPEC.failed_topic_name(settings))


def test_a_template_host_that_answers_503_parks_only_its_requests(tmp_path, host):
    address, handler = host
    s = _settings(tmp_path, address)
    down_url = f"http://{address}/templates/award.svg"
    users = ["u-down-1", "u-down-2", "u-up-1"]
    store = MemoryStore({EnrolmentKey(u, c, BATCH): [] for u, c in
                         zip(users, [DOWN_COURSE, DOWN_COURSE, UP_COURSE], strict=True)})  # fmt: skip
    logic = GeneratorLogic(s, store=store, maker=CertificateMaker(s))
    kind = "TemplateUnavailable"
    failed_before = metric("lernflow_events_failed_total", flow=SPEC.name, reason_kind=kind)
    payloads = [
        _request("u-down-1", DOWN_COURSE, down_url),
        _request("u-up-1", UP_COURSE, str(bundled_template_path())),
        _request("u-down-2", DOWN_COURSE, down_url),
    ]
    outbox, _p = run(SPEC, s, logic, payloads)  # raises nothing: the flow goes on

    # the other course's certificate is made and recorded
    assert [e["name"] for e in store.enrolments[EnrolmentKey("u-up-1", UP_COURSE, BATCH)]] == [
        "Geometry Completion Award"
    ]
    assert [json.loads(r.recipient)["id"] for r in store.registry.values()] == ["u-up-1"]
    # the two requests of the host that is down are parked, once each, with the reason
    parked = _parked(outbox, s)
    assert [(p["source"]["offset"], p["error_type"]) for p in parked] == [(0, kind), (2, kind)]
    assert all(p["reason"].startswith(f"template host unavailable: {address}") for p in parked)
    assert "HTTP 503" in parked[0]["reason"]
    assert metric("lernflow_events_failed_total", flow=SPEC.name, reason_kind=kind) == (
        failed_before + 2
    )
    assert handler.hits == 1  # backed off: the second request did not ask the host again
    assert store.enrolments[EnrolmentKey("u-down-1", DOWN_COURSE, BATCH)] == []

    # the host is back; after the backoff, a requeue of the parked requests makes them
    handler.status = 200
    time.sleep(1.1)
    again, _p = run(SPEC, s, logic, [payloads[0], payloads[2]])
    assert _parked(again, s) == []
    for user in ("u-down-1", "u-down-2"):
        assert len(store.enrolments[EnrolmentKey(user, DOWN_COURSE, BATCH)]) == 1
    logic.close()
