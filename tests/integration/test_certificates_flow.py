"""Certificates on the real stack: Sunbird's pre-processor cases, the full path from a
completion event to a verified PDF, replay, template rejections and ``cert why``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certificates import render, signing
from certificates.template import bundled_template_path
from config import Settings
from lernflow import cli
from lernflow.cert_why import explain
from lernflow.clients import cassandra_session, redis_client
from lernflow.demo import SAMPLE_SIGNATURE
from tests.conftest import FIXTURES
from tests.flowkit import create_topics, produce, read_json, run_to_end

FX = FIXTURES / "certificates"
PRE, GEN = "certificate-pre-processor", "certificate-generator"
SUNBIRD_TABLES = ("user", "organisation", "location", "cert_registry")


@pytest.fixture
def cert_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Own key pair and certificate store; sunbird tables emptied; course_batch emptied."""
    c = settings.certificates.model_copy(
        update={"keys_dir": tmp_path / "keys", "storage_dir": tmp_path / "store"}
    )
    s = settings.with_overrides(certificates=c)
    signing.generate_keys(c.keys_dir)
    _truncate(s)
    create_topics(s)
    yield s
    _truncate(s)


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


def _user(s: Settings, user: str, first: str, last: str, root: str = "Org001") -> None:
    """A learner in sunbird.user with a state and a district (USER_1's locations)."""
    locs = json.dumps([{"id": "loc-ka", "type": "state"}, {"id": "loc-bus", "type": "district"}])
    cluster, session = cassandra_session(s.cassandra, s.cassandra.sunbird_keyspace)
    try:
        session.execute(
            "INSERT INTO location (id, name, type, code) VALUES ('loc-ka', 'Karnataka', 'state', '29')"
        )
        session.execute(
            "INSERT INTO location (id, name, type, code) VALUES "
            "('loc-bus', 'BENGALURU URBAN SOUTH', 'district', '2920')"
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


# ---- Sunbird's pre-processor cases (§10.1 and the derived ones) -------------------------------


def test_upstream_pre_processor_cases(cert_settings: Settings) -> None:
    s = cert_settings
    text = (FX / "pre_processor.test.cql").read_text()
    _cql(s, re.findall(r"^INSERT INTO .*?;\s*$", text, flags=re.MULTILINE | re.DOTALL))
    _redis_set(s, s.redis.content_cache_db, "content_001",
               '{"identifier":"content_001","contentType": "SelfAssess"}')  # fmt: skip
    # the course name Sunbird reads from the content-read API (CONTENT_1) comes from the
    # collection cache here
    content = json.loads((FX / "pre_processor.CONTENT_1.json").read_text())["result"]["content"]
    _redis_set(s, s.redis.collection_cache_db, "do_11309999837886054415", json.dumps(content))
    _redis_set(s, s.redis.collection_cache_db, "course_003", json.dumps({"name": "Course three"}))
    _user(s, "user001", "user", "name")
    _user(s, "user003", "Three", "null")
    t = _topics(s)
    pp1 = (FX / "pre_processor.EVENT_1.json").read_bytes()
    d4 = json.loads(pp1)
    d4["edata"]["reIssue"] = False
    produce(s, t["issue"], [
        pp1,                                                           # PP-1 (re-issue)
        json.dumps(d4).encode(),                                       # PP-D4: issued, no re-issue
        _issue_event("user009", "course_002", "batch_002"),            # PP-D1: no templates
        _issue_event("user002", "do_11309999837886054416", "0131000245281587207"),  # PP-D2
        _issue_event("user003", "course_003", "batch_003"),            # PP-D3: int agg column
    ], key=b"k")  # fmt: skip
    run_to_end(PRE, s)
    out = read_json(s, t["generate"])
    assert read_json(s, t["pre_failed"]) == []
    by_user = {e["edata"]["userId"]: e for e in out}
    assert sorted(by_user) == ["user001", "user003"]
    e = by_user["user001"]
    assert list(e) == ["actor", "eid", "edata", "ets", "context", "mid", "object"]
    ed = e["edata"]
    assert ed["oldId"] == "certificateId"
    assert ed["courseName"] == "test Course"
    assert ed["orgId"] == "Org001"
    assert ed["data"] == [{"recipientName": "user name", "recipientId": "user001"}]
    assert ed["name"] == ed["criteria"]["narrative"] == "Course Completion Certificate"
    assert ed["issuer"]["url"] == "https://gcert.gujarat.gov.in/gcert/"
    assert ed["signatoryList"][0]["designation"] == "CEO"
    assert ed["related"] == {
        "batchId": "0131000245281587206", "courseId": "do_11309999837886054415",
        "type": "Course Completion Certificate",
    }  # fmt: skip
    assert ed["tag"] == "0131000245281587206"
    assert ed["issuedDate"] == datetime.now(UTC).date().isoformat()
    assert e["object"] == {"id": "user001", "type": "GenerateCertificate"}
    assert by_user["user003"]["edata"]["oldId"] == ""
    assert by_user["user003"]["edata"]["data"][0]["recipientName"] == "Three"


# ---- the full path ---------------------------------------------------------------------------

COURSE, BATCH = "do_cert_course", "cert_batch_1"


def _course(s: Settings, issuer: dict[str, str], signatories: list[dict[str, str]],
            criteria: str = '{"enrollment":{"status":2}}') -> None:  # fmt: skip
    template = {
        "identifier": "tmpl_sample", "name": "Course Completion Certificate",
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
    assert read_json(s, t["gen_failed"]) == []

    issued = _issued(s, "learner-1")
    assert len(issued) == 1
    entry = issued[0]
    assert entry["name"] == "Course Completion Certificate"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", entry["lastIssuedOn"])
    cert_id = entry["identifier"]
    rows = _registry(s)
    assert [r.id for r in rows] == [cert_id]
    pdf = Path(rows[0].pdfurl.removeprefix("file://"))
    assert pdf.is_file()
    assert json.loads(rows[0].recipient)["id"] == "learner-1"
    # markup in the name is text in the certificate
    from pypdf import PdfReader

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

    # replay both flows from the beginning: nothing new
    before = pdf.read_bytes()
    run_to_end(PRE, s, from_beginning=True)
    run_to_end(GEN, s, from_beginning=True)
    assert _issued(s, "learner-1") == issued
    assert [r.id for r in _registry(s)] == [cert_id]
    assert [a["object"]["id"] for a in read_json(s, t["audit"]) if a.get("eid") == "AUDIT"] == [
        cert_id
    ]
    assert pdf.read_bytes() == before
    # a tampered PDF does not verify
    bad = pdf.with_name("tampered.pdf")
    token = render.extract_attachment(before)
    assert token is not None
    head, body, sig = token.split(b".")
    forged = b".".join([head, body[:-4] + (b"AAAA" if body[-4:] != b"AAAA" else b"BBBB"), sig])
    bad.write_bytes(before.replace(token, forged) if token in before else b"%PDF-broken")
    res = runner.invoke(cli.app, ["cert", "verify", str(bad)])
    assert res.exit_code == 1


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
