"""Certificates on the real stack: the pre-processor (PP-1, PP-D1..PP-D4) and generator
(GT-1, CG-1) cases on our own data, the full path from a completion event to a verified PDF,
replay, template rejections and ``cert why``. The flows are described in
docs/flows/certificate-pre-processor.md and docs/flows/certificate-generator.md."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY
from pypdf import PdfReader, PdfWriter
from typer.testing import CliRunner

from lernflow import cli
from lernflow.certificates import render, signing
from lernflow.certificates.fetch import bundled_template_path
from lernflow.config import Settings
from lernflow.devstack.demo import SAMPLE_SIGNATURE
from lernflow.kernel.clients import cassandra_session, kafka_consumer, redis_client
from lernflow.ops.cert_why import explain
from lernflow.sources.options import consumer_group
from tests.flowkit import create_topics, produce, read_json, run_to_end
from tests.paths import DATA

FX = DATA / "certificates"
PRE, GEN = "certificate-pre-processor", "certificate-generator"
SUNBIRD_TABLES = ("user", "organisation", "location", "cert_registry")


@contextlib.contextmanager
def cert_environment(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Own key pair and certificate store; sunbird tables emptied; course_batch emptied."""
    c = settings.certificates.model_copy(
        update={"keys_dir": tmp_path / "keys", "storage_dir": tmp_path / "store"}
    )
    s = settings.with_overrides(certificates=c)
    signing.generate_keys(c.keys_dir)
    _truncate(s)
    create_topics(s)
    try:
        yield s
    finally:
        _truncate(s)


@pytest.fixture
def cert_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    with cert_environment(settings, tmp_path) as s:
        yield s


def _truncate(s: Settings) -> None:
    cluster, session = cassandra_session(s.cassandra)
    try:
        for t in SUNBIRD_TABLES:
            session.execute(f"TRUNCATE {s.cassandra.sunbird_keyspace}.{t}", timeout=60)
        session.execute(f"TRUNCATE {s.cassandra.courses_keyspace}.course_batch", timeout=60)
        session.execute(f"TRUNCATE {s.cassandra.hierarchy_keyspace}.content_hierarchy", timeout=60)
    finally:
        cluster.shutdown()


def _cql(s: Settings, statements: list[str]) -> None:
    cluster, session = cassandra_session(s.cassandra)
    try:
        for stmt in statements:
            session.execute(
                stmt.replace("sunbird_courses.", f"{s.cassandra.courses_keyspace}.")
                .replace("sunbird.", f"{s.cassandra.sunbird_keyspace}.")
                .strip()
                .rstrip(";")
            )
    finally:
        cluster.shutdown()


def _user(s: Settings, user: str, first: str, last: str, root: str = "lf_org_01") -> None:
    """A learner in sunbird.user with a state and a district (pre.profile.full.json's)."""
    locs = json.dumps(
        [
            {"id": "lf-loc-state-41", "type": "state"},
            {"id": "lf-loc-district-4107", "type": "district"},
        ]
    )
    cluster, session = cassandra_session(s.cassandra, s.cassandra.sunbird_keyspace)
    try:
        session.execute(
            "INSERT INTO location (id, name, type, code) VALUES "
            "('lf-loc-state-41', 'Northshire', 'state', '41')"
        )
        session.execute(
            "INSERT INTO location (id, name, type, code) VALUES "
            "('lf-loc-district-4107', 'Harbor Vale', 'district', '4107')"
        )
        session.execute(
            "INSERT INTO user (id, userid, firstname, lastname, rootorgid, profilelocation) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (user, user, first, last, root, locs),
        )
    finally:
        cluster.shutdown()


def _topics(s: Settings) -> dict[str, str]:
    t = s.topics
    return {
        "issue": t.full(t.issue_certificate_request),
        "generate": t.full(t.generate_certificate_request),
        "pre_failed": t.full(t.issue_certificate_failed),
        "gen_failed": t.full(t.generate_certificate_failed),
        "audit": t.full(t.telemetry_raw),
        "notify": t.full(t.certificate_notification),
    }


def _redis_set(s: Settings, db: int, key: str, value: str) -> None:
    c = redis_client(s.redis, db)
    c.set(key, value)
    c.close()


def _issue_event(user: str, course: str, batch: str, re_issue: bool = False) -> bytes:
    now = int(datetime.now(UTC).timestamp() * 1000)
    return json.dumps({
        "eid": "BE_JOB_REQUEST", "ets": now, "mid": f"LP.{now}.test",
        "actor": {"id": "Course Certificate Generator", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "object": {"id": f"{batch}_{course}", "type": "CourseCertificateGeneration"},
        "edata": {"userIds": [user], "action": "issue-certificate", "iteration": 1,
                  "trigger": "auto-issue", "batchId": batch, "reIssue": re_issue,
                  "courseId": course},
    }).encode()  # fmt: skip


# ---- the pre-processor cases on our own data (PP-1, PP-D1..PP-D4) ----------------------------

ALGEBRA, ALGEBRA_BATCH = "do_lf_algebra_101", "lfbatch0715"
QUIZ = "do_lf_quiz_01"
COMPLETED_ON = datetime(2024, 7, 15, tzinfo=UTC)


def _batch(s: Settings, course: str, batch: str, templates: dict[str, dict[str, str]]) -> None:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.courses_keyspace)
    try:
        session.execute(
            "INSERT INTO course_batch (courseid, batchid, cert_templates) VALUES (%s, %s, %s)",
            (course, batch, templates),
        )
    finally:
        cluster.shutdown()


def _enrolment_row(s: Settings, user: str, course: str, batch: str, **columns: object) -> None:
    names = ["userid", "courseid", "batchid", "completedon", *columns]
    values = [user, course, batch, COMPLETED_ON, *columns.values()]
    cluster, session = cassandra_session(s.cassandra, s.cassandra.courses_keyspace)
    try:
        session.execute(
            f"INSERT INTO user_enrolments ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))})",
            values,
        )
    finally:
        cluster.shutdown()


def _scores(s: Settings, user: str, course: str, batch: str, column: str, scores: dict) -> None:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.courses_keyspace)
    try:
        session.execute(
            f"INSERT INTO user_activity_agg (activity_type, activity_id, user_id, context_id, "
            f"{column}) VALUES ('Course', %s, %s, %s, %s)",
            (course, user, f"cb:{batch}", scores),
        )
    finally:
        cluster.shutdown()


def _seed_pre_cases(s: Settings) -> None:
    """The batches, enrolments, scores, caches and learners of the five pre-processor cases."""
    stored = json.loads((FX / "pre.cert_templates.json").read_text())
    award = stored["lf_tmpl_algebra_award"]  # status 2 and a score of at least 75
    # PP-1 and PP-D4: lf_user_01 completed, 4 of 5 (80 %) on a SelfAssess quiz, holds the award
    _batch(s, ALGEBRA, ALGEBRA_BATCH, stored)
    _enrolment_row(s, "lf_user_01", ALGEBRA, ALGEBRA_BATCH, active=True, status=2,
                   issued_certificates=[{"identifier": "lf-cert-prev-0001", "lastIssuedOn":
                                         "2023-03-02", "name": award["name"], "token": "K7M2Q9"}])  # fmt: skip
    _scores(s, "lf_user_01", ALGEBRA, ALGEBRA_BATCH, "aggregates",
            {f"score:{QUIZ}": 4.0, f"max_score:{QUIZ}": 5.0})  # fmt: skip
    # PP-D1: a batch without certificate templates
    _batch(s, "do_lf_geometry_102", "lfbatch0716", {})
    # PP-D2: a status-2-only template; lf_user_02's row has neither active nor status
    merit = {k: v for k, v in award.items() if k != "notifyTemplate"}
    merit.update(identifier="lf_tmpl_algebra_merit", name="Algebra Merit Award",
                 criteria='{"enrollment":{"status":2}}')  # fmt: skip
    _batch(s, "do_lf_algebra_201", "lfbatch0801", {"lf_tmpl_algebra_merit": merit})
    _enrolment_row(s, "lf_user_02", "do_lf_algebra_201", "lfbatch0801")
    # PP-D3: lf_user_03 completed with nothing issued yet; 1 of 1 in the int agg column
    stats = {**award, "identifier": "lf_tmpl_stats_merit", "name": "Statistics Merit Award"}
    _batch(s, "do_lf_stats_301", "lfbatch0901", {"lf_tmpl_stats_merit": stats})
    _enrolment_row(s, "lf_user_03", "do_lf_stats_301", "lfbatch0901", active=True, status=2,
                   issued_certificates=[])  # fmt: skip
    _scores(s, "lf_user_03", "do_lf_stats_301", "lfbatch0901", "agg",
            {f"score:{QUIZ}": 1, f"max_score:{QUIZ}": 1})  # fmt: skip
    _redis_set(s, s.redis.content_cache_db, QUIZ,
               json.dumps({"identifier": QUIZ, "contentType": "SelfAssess"}))  # fmt: skip
    # course names: the content read response's content, cached in the collection cache
    content = json.loads((FX / "pre.content_read.json").read_text())["result"]["content"]
    _redis_set(s, s.redis.collection_cache_db, ALGEBRA, json.dumps(content))
    _redis_set(s, s.redis.collection_cache_db, "do_lf_stats_301",
               json.dumps({"name": "Statistics Basics"}))  # fmt: skip
    _user(s, "lf_user_01", "Mira", "Okafor")
    _user(s, "lf_user_03", "Ines", "null")


def _skipped(flow: str, kind: str) -> float:
    """This process's count of ``flow``'s skipped events of one kind."""
    value = REGISTRY.get_sample_value(
        "lernflow_events_skipped_total", {"flow": flow, "reason_kind": kind}
    )
    return value or 0.0


def _committed(s: Settings, flow: str, topic: str) -> int:
    """The offsets ``flow`` has committed on ``topic``, summed over its partitions."""
    consumer = kafka_consumer(s.kafka, group_id=consumer_group(s, flow))
    try:
        info = consumer.list_topics(topic, timeout=30).topics[topic]
        parts = [TopicPartition(topic, p) for p in info.partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=30))
    finally:
        consumer.close()


def test_pre_processor_cases_pp_1_and_pp_d1_to_d4(cert_settings: Settings) -> None:
    s = cert_settings
    _seed_pre_cases(s)
    t = _topics(s)
    pp1 = (FX / "pre.issue_request.json").read_bytes()  # lf_user_01, reIssue true
    d4 = json.loads(pp1)
    d4["edata"]["reIssue"] = False
    produce(s, t["issue"], [
        pp1,                                                         # PP-1: a re-issue
        json.dumps(d4).encode(),                                     # PP-D4: issued, no re-issue
        _issue_event("lf_user_09", "do_lf_geometry_102", "lfbatch0716"),  # PP-D1: no templates
        _issue_event("lf_user_02", "do_lf_algebra_201", "lfbatch0801"),   # PP-D2: not active
        _issue_event("lf_user_03", "do_lf_stats_301", "lfbatch0901"),     # PP-D3: int agg column
    ], key=b"k")  # fmt: skip
    kinds = ("not-eligible-enrollment", "not-eligible-template-none")
    before = {k: _skipped(PRE, k) for k in kinds}
    run_to_end(PRE, s)
    out = read_json(s, t["generate"])
    by_user = {e["edata"]["userId"]: e for e in out}
    assert sorted(by_user) == ["lf_user_01", "lf_user_03"]
    assert len(out) == 2
    e = by_user["lf_user_01"]
    assert list(e) == ["actor", "eid", "edata", "ets", "context", "mid", "object"]
    ed = e["edata"]
    assert ed["oldId"] == "lf-cert-prev-0001"  # the held award's identifier: a re-issue
    assert ed["courseName"] == "Algebra Foundations"
    assert ed["orgId"] == "lf_org_01"
    assert ed["data"] == [{"recipientName": "Mira Okafor", "recipientId": "lf_user_01"}]
    assert ed["name"] == ed["criteria"]["narrative"] == "Algebra Completion Award"
    assert ed["issuer"]["url"] == "https://school.lernflow.example/"
    assert ed["signatoryList"][0]["designation"] == "Registrar"
    assert ed["related"] == {
        "batchId": ALGEBRA_BATCH, "courseId": ALGEBRA, "type": "Algebra Completion Award",
    }  # fmt: skip
    assert ed["tag"] == ALGEBRA_BATCH
    assert ed["issuedDate"] == "2024-07-15"  # the completion date
    assert e["object"] == {"id": "lf_user_01", "type": "GenerateCertificate"}
    d3 = by_user["lf_user_03"]["edata"]
    assert d3["oldId"] == ""
    assert d3["data"][0]["recipientName"] == "Ines"  # a "null" last name is left out
    assert d3["courseName"] == "Statistics Basics"
    assert d3["name"] == "Statistics Merit Award"
    # PP-D1, D2 and D4 were read and skipped as not eligible, not lost or parked
    assert _committed(s, PRE, t["issue"]) == 5
    assert _skipped(PRE, "not-eligible-enrollment") - before["not-eligible-enrollment"] == 2
    assert _skipped(PRE, "not-eligible-template-none") - before["not-eligible-template-none"] == 1
    assert read_json(s, t["pre_failed"]) == []


# ---- the generator cases on our own data (GT-1, CG-1) ----------------------------------------


def test_generator_cases_gt_1_and_cg_1(cert_settings: Settings) -> None:
    """A re-issue is made; a first issue of a held name and one with blank signatories
    (signatory errors suppressed) are skipped as already issued; an empty svgTemplate is parked."""
    c = cert_settings.certificates.model_copy(update={"suppress_signatory_errors": True})
    s = cert_settings.with_overrides(certificates=c)
    t = _topics(s)
    course, batch, user = "do_lf_geometry_110", "lfbatch0930", "lf_user_07"
    held = {"identifier": "lf-cert-prev-0042", "lastIssuedOn": "2024-02-11",
            "name": "Geometry Completion Award", "token": "R4T8W2"}  # fmt: skip
    _enrolment_row(s, user, course, batch, active=True, status=2, issued_certificates=[held])

    def request(name: str) -> bytes:
        doc = json.loads((FX / name).read_text())
        if doc["edata"]["svgTemplate"]:  # a template the generator may read
            doc["edata"]["svgTemplate"] = str(bundled_template_path())
        for signatory in doc["edata"]["signatoryList"]:
            if signatory["image"]:
                signatory["image"] = SAMPLE_SIGNATURE
        return json.dumps(doc).encode()

    produce(s, t["generate"], [
        request("gen.request.reissue.json"),          # made: replaces the held certificate
        request("gen.request.first.json"),            # skipped: the name is already issued
        request("gen.request.empty_svg.json"),        # parked: no svgTemplate
        request("gen.request.blank_signatory.json"),  # CG-1: passes validation, then skipped
    ], key=b"k")  # fmt: skip
    skipped = _skipped(GEN, "already-issued")
    run_to_end(GEN, s)
    assert _committed(s, GEN, t["generate"]) == 4
    assert _skipped(GEN, "already-issued") - skipped == 2
    parked = read_json(s, t["gen_failed"])
    assert [p["reason"] for p in parked] == ["Mandatory parameter edata.svgTemplate is missing."]
    cluster, session = cassandra_session(s.cassandra, s.cassandra.courses_keyspace)
    try:
        row = session.execute(
            "SELECT issued_certificates FROM user_enrolments WHERE userid=%s AND courseid=%s "
            "AND batchid=%s", (user, course, batch),
        ).one()  # fmt: skip
    finally:
        cluster.shutdown()
    issued = [dict(m) for m in row.issued_certificates]
    assert [e["name"] for e in issued] == ["Geometry Completion Award"]  # replaced, not added
    assert issued[0]["identifier"] != "lf-cert-prev-0042"
    assert [r.id for r in _registry(s)] == [issued[0]["identifier"]]
    audits = [a for a in read_json(s, t["audit"]) if a.get("eid") == "AUDIT"]
    assert [a["object"]["id"] for a in audits] == [issued[0]["identifier"]]
    # lf_user_07 has no profile (sunbird.user row): like Sunbird's notifier, nothing is sent
    assert read_json(s, t["notify"]) == []


# ---- the full path ---------------------------------------------------------------------------

COURSE, BATCH = "do_cert_course", "cert_batch_1"


def _course(s: Settings, issuer: dict[str, str], signatories: list[dict[str, str]],
            criteria: str = '{"enrollment":{"status":2}}') -> None:  # fmt: skip
    template = {
        "identifier": "tmpl_sample", "name": "Python Basics Certificate",
        "url": str(bundled_template_path()), "criteria": criteria, "issuer": json.dumps(issuer),
        "signatoryList": json.dumps(signatories),
        "notifyTemplate": json.dumps({"subject": "Completion certificate"}),
    }  # fmt: skip
    cluster, session = cassandra_session(s.cassandra)
    try:
        session.execute(
            f"INSERT INTO {s.cassandra.courses_keyspace}.course_batch (courseid, batchid, cert_templates) "
            "VALUES (%s, %s, %s)", (COURSE, BATCH, {"tmpl_sample": template}),
        )  # fmt: skip
        session.execute(
            f"INSERT INTO {s.cassandra.hierarchy_keyspace}.content_hierarchy (identifier, hierarchy) "
            "VALUES (%s, %s)", (COURSE, json.dumps({"identifier": COURSE, "name": "Python basics"})),
        )  # fmt: skip
    finally:
        cluster.shutdown()


def _enrol(s: Settings, user: str, status: int = 2) -> None:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.courses_keyspace)
    try:
        session.execute(
            "INSERT INTO user_enrolments (userid, courseid, batchid, active, status, completedon) "
            "VALUES (%s, %s, %s, true, %s, %s)",
            (user, COURSE, BATCH, status, datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
        )
    finally:
        cluster.shutdown()


def _issued(s: Settings, user: str) -> list[dict[str, str]]:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.courses_keyspace)
    try:
        row = session.execute(
            "SELECT issued_certificates FROM user_enrolments WHERE userid=%s AND courseid=%s "
            "AND batchid=%s", (user, COURSE, BATCH),
        ).one()  # fmt: skip
        return [dict(m) for m in (row.issued_certificates or [])] if row else []
    finally:
        cluster.shutdown()


def _registry(s: Settings) -> list:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.sunbird_keyspace)
    try:
        return list(
            session.execute("SELECT id, pdfurl, jsonurl, recipient, accesscode FROM cert_registry")
        )
    finally:
        cluster.shutdown()


ISSUER = {"name": "Lernflow Academy", "url": "https://academy.example.org/"}
SIGNATORIES = [
    {"name": "A. Director", "id": "dir", "designation": "Director", "image": SAMPLE_SIGNATURE}
]


def _monkey_env(s: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s.to_env().items():
        monkeypatch.setenv(k, v)


def test_completion_event_to_verified_pdf_and_a_replay_issues_no_duplicate(
    cert_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = cert_settings
    t = _topics(s)
    _course(s, ISSUER, SIGNATORIES)
    _user(s, "learner-1", 'Asha <b>"&amp;</b>', "Rao")
    _enrol(s, "learner-1")
    produce(s, t["issue"], [_issue_event("learner-1", COURSE, BATCH)], key=b"learner-1")
    run_to_end(PRE, s)
    run_to_end(GEN, s)
    assert _committed(s, GEN, t["generate"]) == 1  # the generate event was read ...

    issued = _issued(s, "learner-1")  # ... and became a certificate
    assert len(issued) == 1
    assert read_json(s, t["gen_failed"]) == []
    entry = issued[0]
    assert entry["name"] == "Python Basics Certificate"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", entry["lastIssuedOn"])
    cert_id = entry["identifier"]
    rows = _registry(s)
    assert [r.id for r in rows] == [cert_id]
    pdf = Path(rows[0].pdfurl.removeprefix("file://"))
    assert pdf.is_file()
    assert json.loads(rows[0].recipient)["id"] == "learner-1"
    # markup in the name is text in the certificate
    text = PdfReader(pdf).pages[0].extract_text()
    assert 'Asha <b>"&amp;</b> Rao' in text
    assert "Python basics" in text

    _monkey_env(s, monkeypatch)
    runner = CliRunner()
    res = runner.invoke(cli.app, ["cert", "verify", str(pdf)])
    assert res.exit_code == 0, res.output
    assert "signature valid" in res.output
    res = runner.invoke(cli.app, ["cert", "verify", cert_id])
    assert res.exit_code == 0, res.output

    audits = [a for a in read_json(s, t["audit"]) if a.get("eid") == "AUDIT"]
    assert [a["object"]["id"] for a in audits] == [cert_id]
    assert audits[0]["edata"] == {"props": ["certificates"], "type": "certificate-issued-svg"}
    notes = read_json(s, t["notify"])
    assert len(notes) == 1

    # replay both flows from the beginning: both see the request again and skip it
    before = pdf.read_bytes()
    skipped_pre = _skipped(PRE, "not-eligible-enrollment")
    skipped_gen = _skipped(GEN, "already-issued")
    run_to_end(PRE, s, from_beginning=True)
    run_to_end(GEN, s, from_beginning=True)
    assert _skipped(PRE, "not-eligible-enrollment") - skipped_pre == 1  # name already issued
    assert _skipped(GEN, "already-issued") - skipped_gen == 1
    assert len(read_json(s, t["generate"])) == 1
    assert _issued(s, "learner-1") == issued
    assert [r.id for r in _registry(s)] == [cert_id]
    assert [a["object"]["id"] for a in read_json(s, t["audit"]) if a.get("eid") == "AUDIT"] == [
        cert_id
    ]
    assert len(read_json(s, t["notify"])) == 1
    assert read_json(s, t["gen_failed"]) == []
    assert pdf.read_bytes() == before

    # the same PDF carrying a tampered credential does not verify, for its signature
    token = render.extract_attachment(before)
    assert token is not None
    head, body, sig = token.decode().split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert claims["vc"]["credentialSubject"]["name"] == 'Asha <b>"&amp;</b> Rao'
    claims["vc"]["credentialSubject"]["name"] = "Mallory Rao"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{head}.{forged_body}.{sig}".encode()
    control = pdf.with_name("re-embedded.pdf")  # the rewrite alone keeps the PDF verifiable
    control.write_bytes(_with_credential(before, token))
    assert render.extract_attachment(control.read_bytes()) == token
    res = runner.invoke(cli.app, ["cert", "verify", str(control)])
    assert res.exit_code == 0, res.output
    bad = pdf.with_name("tampered.pdf")
    bad.write_bytes(_with_credential(before, forged))
    assert render.extract_attachment(bad.read_bytes()) == forged
    res = runner.invoke(cli.app, ["cert", "verify", str(bad)])
    assert res.exit_code == 1, res.output
    assert "NOT VALID: signature" in res.output


def _with_credential(pdf: bytes, token: bytes, name: str = "credential.jwt") -> bytes:
    """The PDF's pages with ``token`` as its only embedded credential (file or Keywords form)."""
    reader = PdfReader(io.BytesIO(pdf))
    writer = PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    if reader.attachments:
        writer.add_attachment(name, token)
    else:
        writer.add_metadata({"/Keywords": f"{name}:{token.decode()}"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("issuer", "signatories", "message"),
    [
        ({"name": "Lernflow Academy"}, SIGNATORIES, "Mandatory parameter edata.issuer.url is missing."),
        (ISSUER, [{"name": "A. Director", "id": "dir", "designation": "", "image": "x"}],
         "Mandatory parameter edata.signatoryList.designation is missing."),
    ],
)  # fmt: skip
def test_an_invalid_template_is_rejected_with_its_reason_and_cert_why_names_it(
    cert_settings: Settings, issuer: dict[str, str], signatories: list[dict[str, str]], message: str
) -> None:
    s = cert_settings
    t = _topics(s)
    _course(s, issuer, signatories)
    _user(s, "learner-2", "Ben", "K")
    _enrol(s, "learner-2")
    produce(s, t["issue"], [_issue_event("learner-2", COURSE, BATCH)], key=b"learner-2")
    run_to_end(PRE, s)
    run_to_end(GEN, s)
    parked = read_json(s, t["gen_failed"])
    assert [p["reason"] for p in parked] == [message]
    assert _issued(s, "learner-2") == []
    why = explain(s, "learner-2", COURSE, BATCH)
    assert why.blocking is not None
    assert why.blocking.step == "generator"
    assert message in why.blocking.detail


def test_cert_why_names_the_enrolment_status_for_an_unfinished_course(
    cert_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = cert_settings
    _course(s, ISSUER, SIGNATORIES)
    _user(s, "learner-3", "Chen", "L")
    _enrol(s, "learner-3", status=1)
    why = explain(s, "learner-3", COURSE, BATCH)
    assert why.eligible_templates == []
    assert why.blocking is not None and why.blocking.step == "enrollment"
    _monkey_env(s, monkeypatch)
    res = CliRunner().invoke(
        cli.app, ["cert", "why", "--user", "learner-3", "--course", COURSE, "--batch", BATCH]
    )
    assert res.exit_code == 0, res.output
    assert "blocked by" in res.output
