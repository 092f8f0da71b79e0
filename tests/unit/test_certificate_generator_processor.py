"""certificate-generator's production orchestration (shell + logic) on an in-memory store,
with the real maker: signing, CairoSVG rendering and storage in a temporary folder."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lernflow.certificates import render, signing
from lernflow.certificates.fetch import bundled_template_path
from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_generator.flow import SPEC
from lernflow.flows.certificate_generator.maker import CertificateMaker
from lernflow.flows.certificate_generator.plan import (
    BatchKey,
    CertTemplates,
    Enrolment,
    EnrolmentKey,
    IssuedCertificates,
    IssuedUpdate,
    Profile,
    RegistryRow,
)
from lernflow.flows.certificate_generator.processor import GeneratorLogic
from lernflow.flows.certificate_generator.revocation import Revocation, RevokeOutcome
from tests.paths import DATA
from tests.shellkit import MemoryOutbox, metric, run

FX = DATA / "certificates"
USER, COURSE, BATCH = "lf_user_07", "do_lf_geometry_110", "lfbatch0930"
KEY = EnrolmentKey(USER, COURSE, BATCH)
SIGNATURE = "data:image/svg+xml;base64," + base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="60">'
    b'<path d="M10 40 C 40 10, 60 50, 90 30" stroke="black" fill="none"/></svg>'
).decode("ascii")


COMPLETED = datetime(2024, 9, 30, 8, 0, tzinfo=UTC)


class MemoryStore:
    """Enrolments, profiles, batches and the registry in dicts, written the way Cassandra
    applies the writes. Every enrolment completed on ``COMPLETED`` unless ``completed`` says."""

    def __init__(
        self,
        enrolments: dict[EnrolmentKey, IssuedCertificates],
        profiles: dict[str, Profile] | None = None,
        batches: dict[BatchKey, CertTemplates] | None = None,
        completed: dict[EnrolmentKey, datetime | None] | None = None,
    ) -> None:
        self.enrolments = {k: [dict(e) for e in v] for k, v in enrolments.items()}
        self.users = dict(profiles or {})
        self.batches = dict(batches or {})
        self.completed = dict(completed or {})
        self.registry: dict[str, RegistryRow] = {}
        self.indexes: dict[str, int] = {}  # status-list index per certificate id
        self.revoked: dict[str, Revocation] = {}
        self.reads: list[list[EnrolmentKey]] = []
        self.log: list[str] = []  # the order of the writes

    def read_enrolments(self, keys: list[EnrolmentKey]) -> dict[EnrolmentKey, Enrolment | None]:
        self.reads.append(list(keys))
        return {
            k: Enrolment([dict(e) for e in self.enrolments[k]], self.completed.get(k, COMPLETED))
            if k in self.enrolments else None
            for k in keys
        }  # fmt: skip

    def profiles(self, user_ids: list[str]) -> dict[str, Profile | None]:
        return {u: self.users.get(u) for u in user_ids}

    def cert_templates(self, keys: list[BatchKey]) -> dict[BatchKey, CertTemplates | None]:
        return {k: self.batches.get(k) for k in keys}

    def register(self, rows: list[RegistryRow]) -> None:
        self.log.append("registry")
        for r in rows:
            if r.replace or r.cert_id not in self.registry:  # else: IF NOT EXISTS
                self.registry[r.cert_id] = r

    def set_issued(self, updates: list[IssuedUpdate]) -> None:
        self.log.append("enrolments")
        for u in updates:
            self.enrolments[u.key] = [dict(e) for e in u.issued]

    def status_indexes(self, cert_ids: list[str]) -> dict[str, int]:
        for cert_id in cert_ids:
            self.indexes.setdefault(cert_id, len(self.indexes))
        return {i: self.indexes[i] for i in cert_ids}

    def revoke(self, requests: list[Revocation]) -> list[RevokeOutcome]:
        if requests:
            self.log.append("revoke")
        out = []
        for r in requests:
            if r.cert_id not in self.registry:
                out.append(RevokeOutcome("unknown", r.cert_id))
            elif r.cert_id in self.revoked:
                out.append(RevokeOutcome("already", r.cert_id))
            else:
                self.revoked[r.cert_id] = r
                out.append(RevokeOutcome("revoked", r.cert_id, r.reason, r.by, r.at))
        return out

    def close(self) -> None:
        return None


class LoggingOutbox(MemoryOutbox):
    """Notes in the store's log when messages are produced (for the order of side effects)."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self._log = log

    def produce_all(self, messages: Any) -> None:
        self._log.append("produce")
        super().produce_all(messages)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings()
    c = s.certificates.model_copy(
        update={"keys_dir": tmp_path / "keys", "storage_dir": tmp_path / "store",
                "renderer": "cairosvg", "template_hosts": ""}
    )  # fmt: skip
    signing.generate_keys(c.keys_dir, kid="unit-gen")
    return s.with_overrides(topics=s.topics.model_copy(update={"env": "unit-cg"}), certificates=c)


def _request(name: str = "gen.request.first.json", **edata: Any) -> str:
    doc = json.loads((FX / name).read_text())
    doc["edata"]["svgTemplate"] = str(bundled_template_path())
    for signatory in doc["edata"]["signatoryList"]:
        signatory["image"] = SIGNATURE
    doc["edata"].update(edata)
    return json.dumps(doc)


def _logic(settings: Settings, store: MemoryStore) -> GeneratorLogic:
    return GeneratorLogic(settings, store=store, maker=CertificateMaker(settings))


def _files(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.certificates.storage_dir.rglob("*") if p.is_file())


def _out(settings: Settings, topic: str) -> float:
    return metric("lernflow_events_out_total", flow=SPEC.name, topic=topic)


def test_a_request_makes_one_signed_pdf_records_it_then_announces_it(settings: Settings) -> None:
    t = settings.topics
    audit, notify = t.full(t.telemetry_raw), t.full(t.certificate_notification)
    before = {audit: _out(settings, audit), notify: _out(settings, notify)}
    store = MemoryStore({KEY: []}, {USER: Profile("Priya", None, blocked=False)},
                        {BatchKey(COURSE, BATCH): {"lf_tmpl_geometry": {
                            "notifyTemplate": '{"subject": "Completion certificate"}'}}})  # fmt: skip
    outbox, _p = run(SPEC, settings, _logic(settings, store), [_request()],
                     LoggingOutbox(store.log))  # fmt: skip

    [cert_id] = list(store.registry)
    row = store.registry[cert_id]
    assert not row.replace and json.loads(row.recipient)["id"] == USER
    pdf = Path(row.pdf_url)
    assert _files(settings) == sorted([pdf, Path(row.json_url)])
    assert pdf.parent == settings.certificates.storage_dir.resolve() / BATCH
    token = render.extract_attachment(pdf.read_bytes())
    assert token is not None and token.decode() == Path(row.json_url).read_text()
    keys = signing.load_public_keys(settings.certificates.keys_dir)
    claims = signing.verify_credential(token.decode(), keys)
    assert claims["vc"]["credentialSubject"]["name"] == "Priya Natarajan"

    [entry] = store.enrolments[KEY]
    assert (entry["name"], entry["identifier"]) == ("Geometry Completion Award", cert_id)
    assert entry["token"] == row.access_code and entry["type"] == "TrainingCertificate"
    [a] = outbox.on(audit)
    assert (a["eid"], a["object"]["id"]) == ("AUDIT", cert_id)
    [n] = outbox.on(notify)
    assert n["request"]["recipientUserIds"] == [USER]
    assert (n["request"]["subject"], n["request"]["firstName"]) == (
        "Completion certificate",
        "Priya",
    )
    assert [m.key for m in outbox.messages] == [USER.encode()] * 2
    # crash safety: the registry row, then the events acknowledged, then the enrolment
    assert store.log == ["registry", "produce", "enrolments"]
    assert _out(settings, audit) == before[audit] + 1
    assert _out(settings, notify) == before[notify] + 1


def test_the_same_request_again_is_skipped_and_makes_no_second_certificate(
    settings: Settings,
) -> None:
    store = MemoryStore({KEY: []})
    run(SPEC, settings, _logic(settings, store), [_request()])
    files, registry, issued = _files(settings), dict(store.registry), store.enrolments[KEY]
    stamps = [p.stat().st_mtime_ns for p in files]
    skipped = metric("lernflow_events_skipped_total", flow=SPEC.name, reason_kind="already-issued")

    # the replay of one request, and the same request twice in one batch: two rounds
    outbox, _p = run(SPEC, settings, _logic(settings, store), [_request(), _request()])
    assert outbox.messages == []
    assert store.registry == registry and store.enrolments[KEY] == issued
    assert _files(settings) == files and [p.stat().st_mtime_ns for p in files] == stamps
    assert metric(
        "lernflow_events_skipped_total", flow=SPEC.name, reason_kind="already-issued"
    ) == (skipped + 2)
    assert store.reads[1:] == [[KEY], [KEY]]  # one read per round


def test_a_re_issue_replaces_the_held_certificate_of_that_name(settings: Settings) -> None:
    held = {"identifier": "lf-cert-prev-0042", "lastIssuedOn": "2024-02-11",
            "name": "Geometry Completion Award", "token": "R4T8W2"}  # fmt: skip
    other = {"identifier": "x", "name": "Another Award", "token": "A1B2C3"}
    store = MemoryStore({KEY: [other, held]})
    run(SPEC, settings, _logic(settings, store), [_request("gen.request.reissue.json")])
    [row] = store.registry.values()
    assert row.replace
    assert [(e["name"], e["identifier"]) for e in store.enrolments[KEY]] == [
        ("Another Award", "x"),
        ("Geometry Completion Award", row.cert_id),
    ]


def test_a_re_issue_gets_a_new_id_and_revokes_the_one_it_replaces(settings: Settings) -> None:
    """Issue 18 D: the replaced certificate keeps its id and is revoked (Sunbird-RC marks it
    revoked); the new one carries its own status-list index; a replay changes nothing."""
    first = MemoryStore({KEY: []})
    run(SPEC, settings, _logic(settings, first), [_request()])
    [old] = first.registry.values()
    held = dict(first.enrolments[KEY][0])
    store = MemoryStore({KEY: [held]})
    store.registry[old.cert_id] = old
    store.indexes[old.cert_id] = 0
    event = _request("gen.request.first.json", oldId=old.cert_id)
    run(SPEC, settings, _logic(settings, store), [event])
    new = next(r for r in store.registry.values() if r.cert_id != old.cert_id)
    assert store.enrolments[KEY][0]["identifier"] == new.cert_id
    revoked = store.revoked[old.cert_id]
    assert revoked.reason == f"replaced by {new.cert_id} (re-issue)"
    assert (revoked.by, revoked.recipient) == ("certificate-generator", USER)
    status = json.loads(new.credential)["credentialStatus"]
    assert (status["statusPurpose"], status["statusListIndex"]) == ("revocation", "1")
    assert store.log[:2] == ["registry", "revoke"]  # before the events and the enrolment

    # the replay of the re-issue: the same new id, the same index, nothing revoked again
    store.enrolments[KEY] = [held]
    run(SPEC, settings, _logic(settings, store), [event])
    assert {r.cert_id for r in store.registry.values()} == {old.cert_id, new.cert_id}
    assert store.indexes == {old.cert_id: 0, new.cert_id: 1}


def test_invalid_and_unenrolled_requests_are_parked_or_skipped(settings: Settings) -> None:
    failed = SPEC.failed_topic_name(settings)
    invalid = metric("lernflow_events_failed_total", flow=SPEC.name, reason_kind="ValidationError")
    bad_template = metric(
        "lernflow_events_failed_total", flow=SPEC.name, reason_kind="TemplateError"
    )
    unenrolled = metric("lernflow_events_skipped_total", flow=SPEC.name, reason_kind="no-enrolment")
    out_failed = _out(settings, failed)
    store = MemoryStore({EnrolmentKey("u3", COURSE, BATCH): []})
    outbox, _p = run(SPEC, settings, _logic(settings, store), [
        _request(svgTemplate=""),                                   # parked: ValidationError
        _request(userId="someone-else"),                            # skipped: no enrolment
        _request(userId="u3", svgTemplate="https://evil.example/t.svg"),  # parked: TemplateError
    ])  # fmt: skip
    parked = outbox.on(failed)
    assert [(p["source"]["offset"], p["error_type"]) for p in parked] == [
        (0, "ValidationError"), (2, "TemplateError")
    ]  # fmt: skip
    assert parked[0]["reason"] == "Mandatory parameter edata.svgTemplate is missing."
    assert store.registry == {} and store.log == [] and _files(settings) == []
    assert metric(
        "lernflow_events_failed_total", flow=SPEC.name, reason_kind="ValidationError"
    ) == (invalid + 1)
    assert metric("lernflow_events_failed_total", flow=SPEC.name, reason_kind="TemplateError") == (
        bad_template + 1
    )
    assert metric("lernflow_events_skipped_total", flow=SPEC.name, reason_kind="no-enrolment") == (
        unenrolled + 1
    )
    assert _out(settings, failed) == out_failed + 2
