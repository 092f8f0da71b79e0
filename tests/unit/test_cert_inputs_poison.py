"""No single generate request stops certificate-generator (issue 15): a date or a batch id that
cannot make a certificate, a template the renderer cannot draw and a render that takes too long
each park their request with the reason, and the other requests of the round are made. Through
the production processor on an in-memory store, with the real maker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lernflow.certificates import render, signing
from lernflow.certificates.fetch import bundled_template_path
from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_generator.flow import SPEC
from lernflow.flows.certificate_generator.maker import CertificateMaker
from lernflow.flows.certificate_generator.plan import EnrolmentKey
from lernflow.flows.certificate_generator.processor import GeneratorLogic
from tests.paths import DATA
from tests.shellkit import MemoryOutbox, run
from tests.unit.test_certificate_generator_processor import SIGNATURE, MemoryStore

FX = DATA / "certificates"
COURSE, BATCH = "do_lf_geometry_110", "lfbatch0930"


def _settings(tmp_path: Path, **cert: Any) -> Settings:
    s = load_settings()
    c = s.certificates.model_copy(
        update={"keys_dir": tmp_path / "keys", "storage_dir": tmp_path / "store",
                "renderer": "cairosvg", "template_hosts": "", **cert}
    )  # fmt: skip
    signing.generate_keys(c.keys_dir, kid="unit-poison")
    return s.with_overrides(
        topics=s.topics.model_copy(update={"env": "unit-poison"}), certificates=c
    )


def _request(user: str, batch: str = BATCH, **edata: Any) -> str:
    doc = json.loads((FX / "gen.request.first.json").read_text())
    doc["edata"].update(userId=user, svgTemplate=str(bundled_template_path()),
                        data=[{"recipientName": f"Learner {user}", "recipientId": user}])  # fmt: skip
    doc["edata"]["related"]["batchId"] = batch
    for signatory in doc["edata"]["signatoryList"]:
        signatory["image"] = SIGNATURE
    doc["edata"].update(edata)
    return json.dumps(doc)


def _run(s: Settings, payloads: list[str]) -> tuple[MemoryOutbox, MemoryStore]:
    users = [json.loads(p)["edata"]["userId"] for p in payloads]
    batches = [json.loads(p)["edata"]["related"]["batchId"] for p in payloads]
    store = MemoryStore(
        {EnrolmentKey(u, COURSE, b): [] for u, b in zip(users, batches, strict=True)}
    )
    logic = GeneratorLogic(s, store=store, maker=CertificateMaker(s))
    try:
        outbox, _p = run(SPEC, s, logic, payloads)
    finally:
        logic.close()
    return outbox, store


def _made(store: MemoryStore) -> list[str]:
    return sorted(json.loads(r.recipient)["id"] for r in store.registry.values())


@pytest.mark.parametrize(
    ("edata", "batch", "reason"),
    [
        ({"issuedDate": "2019-02"}, BATCH, "issued date '2019-02' does not start with yyyy-MM-dd"),
        ({"issuedDate": "2021-02-30"}, BATCH, "day is out of range for month"),
        ({"expiry": "5x"}, BATCH, "expiry must be an ISO date/datetime or <n>d|m|y tokens"),
        ({"expiry": "9999-12-31T23:59:59-01:00"}, BATCH, "the certificate data cannot be built"),
        ({"expiry": "9000y"}, BATCH, "beyond the year 9999"),
        ({}, "lf batch/../x", "unsafe storage key"),
    ],
)
def test_data_that_cannot_make_a_certificate_parks_its_request(tmp_path, edata, batch, reason):
    s = _settings(tmp_path, render_timeout_s=0.0)
    outbox, store = _run(s, [_request("u-bad", batch, **edata), _request("u-ok")])
    [parked] = outbox.on(SPEC.failed_topic_name(s))
    assert (parked["source"]["offset"], parked["error_type"]) == (0, "CertificateDataError")
    assert reason in parked["reason"]
    assert _made(store) == ["u-ok"]


def test_an_issued_date_with_a_time_is_read_as_its_date(tmp_path):
    s = _settings(tmp_path, render_timeout_s=0.0)
    outbox, store = _run(s, [_request("u-1", issuedDate="2021-05-27T10:11:11.123+0530")])
    assert outbox.on(SPEC.failed_topic_name(s)) == []
    [row] = store.registry.values()
    assert json.loads(row.credential)["evidence"][0]["completedOn"] == "2021-05-27"


def test_a_template_the_renderer_cannot_draw_parks_its_request(tmp_path, monkeypatch):
    svg = tmp_path / "odd.svg"  # accepted by the sanitiser; the renderer fails on it
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
                   "<text>odd</text></svg>")  # fmt: skip
    s = _settings(tmp_path, render_timeout_s=0.0, template_roots=str(tmp_path))
    original = render.render_pdf

    def fails_on_odd(svg_text: str, *args: Any, **kwargs: Any) -> bytes:
        if ">odd<" in svg_text:
            raise ZeroDivisionError("the renderer's own bug")
        return original(svg_text, *args, **kwargs)

    monkeypatch.setattr(render, "render_pdf", fails_on_odd)
    outbox, store = _run(s, [_request("u-bad", svgTemplate=str(svg)), _request("u-ok")])
    [parked] = outbox.on(SPEC.failed_topic_name(s))
    assert parked["error_type"] == "RenderError"
    assert parked["reason"] == "rendering failed: ZeroDivisionError: the renderer's own bug"
    assert _made(store) == ["u-ok"]


def test_a_render_that_takes_too_long_is_given_up_and_the_others_are_made(tmp_path, monkeypatch):
    s = _settings(tmp_path, render_timeout_s=2.0)
    original = render.render_pdf

    def slow(svg_text: str, *args: Any, **kwargs: Any) -> bytes:
        if "Learner u-slow" in svg_text:
            time.sleep(600)  # a render that never ends (the pool's fork inherits this)
        return original(svg_text, *args, **kwargs)

    monkeypatch.setattr(render, "render_pdf", slow)
    started = time.monotonic()
    payloads = [_request("u-slow"), *(_request(f"u-{i}") for i in range(5))]
    outbox, store = _run(s, payloads)
    assert time.monotonic() - started < 30
    [parked] = outbox.on(SPEC.failed_topic_name(s))
    assert (parked["source"]["offset"], parked["error_type"]) == (0, "RenderTimeout")
    assert "longer than 2 s" in parked["reason"]
    assert _made(store) == [f"u-{i}" for i in range(5)]
