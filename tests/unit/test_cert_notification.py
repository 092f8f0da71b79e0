"""The certificate notification as Sunbird's notifier sends it (issue 15, shared spec §6.9 with
its fixes), through the production processor on an in-memory store: the template's
``notifyTemplate`` keys first, the profile's ``firstName``, the course name, ``heldDate`` from
``completedon``, ``recipientUserIds``; skipped (and counted) without a ``notifyTemplate``, a
profile or for a blocked account; the SMS variant for a ``maskedPhone``; ``stateImgUrl``
expanded; no course batch or no ``completedon`` parks the request; ``issued_certificates``
entries typed ``TrainingCertificate``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lernflow.certificates import signing
from lernflow.certificates.fetch import bundled_template_path
from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_generator.flow import SPEC
from lernflow.flows.certificate_generator.maker import CertificateMaker
from lernflow.flows.certificate_generator.plan import BatchKey, CertTemplates, EnrolmentKey, Profile
from lernflow.flows.certificate_generator.processor import GeneratorLogic
from tests.paths import DATA
from tests.shellkit import MemoryOutbox, metric, run
from tests.unit.test_certificate_generator_processor import SIGNATURE, MemoryStore

FX = DATA / "certificates"
USER, COURSE, BATCH, TEMPLATE = (
    "lf_user_07",
    "do_lf_geometry_110",
    "lfbatch0930",
    "lf_tmpl_geometry",
)
KEY = EnrolmentKey(USER, COURSE, BATCH)
NOTIFY = {
    "subject": "Completion certificate",
    "stateImgUrl": "CLOUD_BASE_PATH/orgemailtemplate/img/state-41.png",
    "regardsperson": "Registrar",
    "regards": "Lernflow Open School",
    "emailTemplateType": "lernflowCertMail",
}
BATCHES: dict[BatchKey, CertTemplates] = {
    BatchKey(COURSE, BATCH): {
        TEMPLATE: {"identifier": TEMPLATE, "notifyTemplate": json.dumps(NOTIFY)}
    }
}
PRIYA = Profile("Priya", None, blocked=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings()
    c = s.certificates.model_copy(
        update={"keys_dir": tmp_path / "keys", "storage_dir": tmp_path / "store",
                "renderer": "cairosvg", "template_hosts": "", "zone": "Asia/Kolkata",
                "render_timeout_s": 0.0}
    )  # fmt: skip
    signing.generate_keys(c.keys_dir, kid="unit-note")
    return s.with_overrides(topics=s.topics.model_copy(update={"env": "unit-note"}), certificates=c)


def _request(**edata: Any) -> str:
    doc = json.loads((FX / "gen.request.first.json").read_text())
    doc["edata"]["svgTemplate"] = str(bundled_template_path())
    for signatory in doc["edata"]["signatoryList"]:
        signatory["image"] = SIGNATURE
    doc["edata"].update(edata)
    return json.dumps(doc)


def _run(settings: Settings, store: MemoryStore, *payloads: str) -> MemoryOutbox:
    outbox, _p = run(SPEC, settings, GeneratorLogic(settings, store, CertificateMaker(settings)),
                     payloads or [_request()])  # fmt: skip
    return outbox


def _notes(settings: Settings, outbox: MemoryOutbox) -> list[dict[str, Any]]:
    t = settings.topics
    return outbox.on(t.full(t.certificate_notification))


def _audits(settings: Settings, outbox: MemoryOutbox) -> list[dict[str, Any]]:
    t = settings.topics
    return outbox.on(t.full(t.telemetry_raw))


def _skipped(kind: str) -> float:
    return metric("lernflow_events_skipped_total", flow=SPEC.name, reason_kind=kind)


def test_the_email_request_is_the_template_keys_then_sunbirds_fields(settings):
    # completed at 20:00 UTC on 29 Sep = 30 Sep in the job zone (Asia/Kolkata)
    done = datetime(2024, 9, 29, 20, 0, tzinfo=UTC)
    store = MemoryStore({KEY: []}, {USER: PRIYA}, BATCHES, {KEY: done})
    [note] = _notes(settings, _run(settings, store))
    assert note == {"request": {
        **NOTIFY,
        "firstName": "Priya",  # the profile's, not the first word of "Priya Natarajan"
        "TrainingName": "Geometry Essentials",
        "heldDate": "2024-09-30",
        "recipientUserIds": [USER],
        "body": "email body",
    }}  # fmt: skip
    assert list(note["request"])[: len(NOTIFY)] == list(NOTIFY)  # template keys first
    [entry] = store.enrolments[KEY]
    assert entry["type"] == "TrainingCertificate"  # Sunbird's readers expect it (§6.7)


def test_the_sms_variant_follows_when_the_profile_has_a_masked_phone(settings):
    store = MemoryStore({KEY: []}, {USER: Profile("Priya", "******4321", blocked=False)}, BATCHES)
    email, sms = _notes(settings, _run(settings, store))
    assert email["request"]["body"] == "email body"
    assert sms["body"] == "sms"
    assert sms["request"]["body"].startswith("Congratulations! Download your course certificate")
    assert sms["request"]["body"].endswith("update your Sunbird app")
    assert {k: v for k, v in sms["request"].items() if k != "body"} == {
        k: v for k, v in email["request"].items() if k != "body"
    }


def test_the_state_image_placeholder_is_expanded(settings):
    c = settings.certificates.model_copy(
        update={"cloud_base_url": "https://cdn.lernflow.example/content", "issued_type": "Award"}
    )
    s = settings.with_overrides(certificates=c)
    store = MemoryStore({KEY: []}, {USER: PRIYA}, BATCHES)
    [note] = _notes(s, _run(s, store))
    assert note["request"]["stateImgUrl"] == (
        "https://cdn.lernflow.example/content/orgemailtemplate/img/state-41.png"
    )
    assert store.enrolments[KEY][0]["type"] == "Award"  # LERNFLOW_CERT_ISSUED_TYPE


@pytest.mark.parametrize(
    ("profiles", "batches", "kind"),
    [
        ({USER: PRIYA}, {BatchKey(COURSE, BATCH): {TEMPLATE: {"identifier": TEMPLATE}}},
         "no-notify-template"),
        ({USER: PRIYA}, {BatchKey(COURSE, BATCH): {}}, "no-notify-template"),
        ({}, BATCHES, "notify-no-profile"),
        ({USER: Profile("Priya", "******4321", blocked=True)}, BATCHES, "notify-user-blocked"),
    ],
)  # fmt: skip
def test_no_notification_is_sent_and_it_is_counted(settings, profiles, batches, kind):
    before = _skipped(kind)
    store = MemoryStore({KEY: []}, profiles, batches)
    outbox = _run(settings, store)
    assert _notes(settings, outbox) == []
    assert len(_audits(settings, outbox)) == 1 and len(store.registry) == 1  # the certificate
    assert _skipped(kind) == before + 1


@pytest.mark.parametrize(
    ("batches", "completed", "reason"),
    [
        ({}, {}, f"notification: no course_batch row for course {COURSE} batch {BATCH}"),
        (BATCHES, {KEY: None}, f"notification: the enrolment of {USER} in course {COURSE} batch "
                               f"{BATCH} has no completion date (completedon is null)"),
        ({BatchKey(COURSE, BATCH): {TEMPLATE: {"notifyTemplate": "{not json"}}}, {},
         f"notification: notifyTemplate of template {TEMPLATE} in course {COURSE} batch {BATCH} "
         "is not a JSON object"),
    ],
)  # fmt: skip
def test_a_notification_that_cannot_be_built_parks_the_request_before_anything_is_made(
    settings, batches, completed, reason
):
    other = EnrolmentKey("lf_user_08", "do_lf_other", BATCH)  # a course with a batch row
    store = MemoryStore({KEY: [], other: []}, {USER: PRIYA, "lf_user_08": PRIYA},
                        {**batches, BatchKey("do_lf_other", BATCH): {}}, completed)  # fmt: skip
    ok = _request(userId="lf_user_08", data=[{"recipientName": "B", "recipientId": "lf_user_08"}],
                  related={"batchId": BATCH, "courseId": "do_lf_other"})  # fmt: skip
    outbox = _run(settings, store, _request(), ok)  # the other request goes on
    [parked] = outbox.on(SPEC.failed_topic_name(settings))
    assert parked["reason"].startswith(reason)
    assert (parked["error_type"], parked["source"]["offset"]) == ("NotificationError", 0)
    assert store.enrolments[KEY] == []
    assert [json.loads(r.recipient)["id"] for r in store.registry.values()] == ["lf_user_08"]
