"""Course reports on the real stack (Cassandra + Redis + PostgreSQL): our test world (the rows
of ``tests/unit/test_reports_fixture_rows.py``) written to the stores, read back through the
report store, and the request handling of ``run_job`` with a real ``job_request`` table.
Expected values are the hand-derived ones of the unit tests (docs/flows/progress-exhaust.md,
docs/flows/userinfo-exhaust.md, docs/flows/response-exhaust.md)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, redis_client
from lernflow.reports.runner import run_batches
from tests.paths import DATA
from tests.unit import test_reports_fixture_rows as world
from tests.unit.test_reports_progress import EXPECTED_CSV as PROGRESS_CSV
from tests.unit.test_reports_userinfo import EXPECTED_CSV as USERINFO_CSV

FX = DATA / "reports"
RID = world.REQUEST_ID
KEY = "pond-key-7"
PREFERENCES = json.loads((FX / "tenant_preferences.json").read_text())
TABLES = {
    "courses": ("course_batch", "user_enrolments", "assessment_aggregator", "user_activity_agg"),
    "sunbird": ("system_settings", "user_consent"),
    "hierarchy": ("content_hierarchy",),
}


def _cql(value: Any) -> str:
    """A CQL literal (for the question UDT list, which the driver cannot bind untyped)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        return "'" + value.isoformat(timespec="milliseconds") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_cql(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_cql(k)}: {_cql(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def _udt(question: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_cql(v)}" for k, v in question.items()) + "}"


def _user_cache(settings: Settings, job: str) -> None:
    r = redis_client(settings.redis, settings.redis.user_cache_db)
    r.flushdb()
    for user, fields in world.user_cache(job).items():
        r.hset(f"user:{user}", mapping=fields)
    r.close()


@pytest.fixture
def report_data(settings: Settings) -> Iterator[Settings]:
    """Our test world in this session's keyspaces, the content search answer in the collection
    cache, the progress tests' Redis user cache."""
    c = settings.cassandra
    names = {
        "courses": c.courses_keyspace,
        "sunbird": c.sunbird_keyspace,
        "hierarchy": c.hierarchy_keyspace,
    }
    ks, sb, hs = c.courses_keyspace, c.sunbird_keyspace, c.hierarchy_keyspace
    cluster, session = cassandra_session(c)
    try:
        for group, tables in TABLES.items():
            for t in tables:
                session.execute(f"TRUNCATE {names[group]}.{t}", timeout=60)
        for batch_id, (course, name) in world.COURSE_BATCHES.items():
            session.execute(
                f"INSERT INTO {ks}.course_batch (courseid, batchid, name, status) "
                "VALUES (%s, %s, %s, 1)",
                (course, batch_id, name),
            )
        for e in world.ENROLMENTS:
            session.execute(
                f"INSERT INTO {ks}.user_enrolments (userid, courseid, batchid, active, "
                "enrolleddate, enrolled_date) VALUES (%s, %s, %s, %s, %s, %s)",
                (e.userid, e.courseid, e.batchid, e.active, e.enrolleddate, e.enrolled_date),
            )
        for a in world.ATTEMPTS:
            questions = "[" + ", ".join(_udt(q) for q in a.question) + "]"
            session.execute(
                f"INSERT INTO {ks}.assessment_aggregator (course_id, batch_id, user_id, "
                "content_id, attempt_id, grand_total, total_max_score, total_score, "
                f"last_attempted_on, question) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                f"{questions})",
                (
                    a.course_id, a.batch_id, a.user_id, a.content_id, a.attempt_id,
                    a.grand_total, a.total_max_score, a.total_score, a.last_attempted_on,
                ),
            )  # fmt: skip
        for consent in world.CONSENTS:
            session.execute(
                f"INSERT INTO {sb}.user_consent (user_id, consumer_id, object_id, consumer_type, "
                "status, last_updated_on) VALUES (%s, %s, %s, 'ORGANISATION', %s, %s)",
                (
                    consent.user_id, consent.consumer_id, consent.object_id, consent.status,
                    consent.last_updated_on,
                ),
            )  # fmt: skip
        session.execute(
            f"INSERT INTO {sb}.system_settings (id, field, value) "
            "VALUES ('custodianOrgId', 'custodianOrgId', %s)",
            (world.CUSTODIAN,),
        )
        for identifier, hierarchy in world.hierarchies().items():
            session.execute(
                f"INSERT INTO {hs}.content_hierarchy (identifier, hierarchy) VALUES (%s, %s)",
                (identifier, json.dumps(hierarchy)),
            )
        # what the content search returns: the collections' metadata (the collection cache);
        # for an id listed twice the first entry is kept
        meta = redis_client(settings.redis, settings.redis.collection_cache_db)
        for item in reversed(world.search_results()):
            meta.set(item["identifier"], json.dumps(item))
        meta.close()
    finally:
        cluster.shutdown()
    _user_cache(settings, "progress")
    yield settings


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def test_progress_exhaust_for_a_batch_gives_the_derived_rows(
    report_data: Settings, tmp_path: Path
) -> None:
    """B10.1 "generate the report with all the correct data" on the stores."""
    [result] = run_batches(report_data, "progress-exhaust", ["bt-101"], tmp_path)
    assert result.error is None
    assert result.dropped == []
    assert result.path is not None
    assert re.fullmatch(
        r"progress-exhaust/bt-101_progress_\d{8}\.csv", str(result.path.relative_to(tmp_path))
    )
    lines = result.path.read_text().rstrip("\n").split("\n")
    assert lines[0] == PROGRESS_CSV[0]
    assert sorted(lines[1:]) == sorted(PROGRESS_CSV[1:])


def test_a_learner_missing_from_the_user_cache_is_reported_not_silently_dropped(
    report_data: Settings, tmp_path: Path
) -> None:
    r = redis_client(report_data.redis, report_data.redis.user_cache_db)
    r.delete("user:lrn-204")
    r.close()
    [result] = run_batches(report_data, "progress-exhaust", ["bt-101"], tmp_path)
    assert result.dropped == ["lrn-204"]
    assert result.path is not None
    users = [row[4] for row in _rows(result.path)[1:]]
    assert sorted(users) == ["lrn-201", "lrn-202", "lrn-203"]


def test_unknown_and_retired_batches_fail_with_sunbirds_messages(
    report_data: Settings, tmp_path: Path
) -> None:
    results = {
        r.batch_id: r
        for r in run_batches(
            report_data, "progress-exhaust", ["no-such-batch", "bt-105", "bt-101"], tmp_path
        )
    }
    assert results["no-such-batch"].error == "No data found"
    assert results["bt-105"].error == "The request is made for retired collection"
    assert results["bt-101"].error is None  # the same call reports a live batch


@pytest.fixture
def job_table(report_data: Settings) -> Iterator[Settings]:
    """A job_request table of this test's own in PostgreSQL, and the orgs' tenant preferences."""
    import uuid

    from lernflow.ops import schema

    pg = report_data.postgres.model_copy(
        update={"job_request_table": f"job_request_{uuid.uuid4().hex[:8]}"}
    )
    s = report_data.with_overrides(postgres=pg)
    schema.apply_postgres(pg)
    _preferences(s, "progress", "progress", [world.CHANNEL])
    yield s
    with psycopg_connect(s) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {pg.job_request_table}")


def _preferences(s: Settings, policy: str, pii: str, orgs: list[str]) -> None:
    cluster, session = cassandra_session(s.cassandra, s.cassandra.sunbird_keyspace)
    try:
        session.execute("TRUNCATE tenant_preference_v2")
        for key, data in (
            ("dataSecurityPolicy", PREFERENCES["dataSecurityPolicy"][policy]),
            ("userPrivateFields", PREFERENCES["userPrivateFields"][pii]),
        ):
            for org in orgs:
                session.execute(
                    "INSERT INTO tenant_preference_v2 (orgid, key, data) VALUES (%s, %s, %s)",
                    (org, key, json.dumps(data)),
                )
    finally:
        cluster.shutdown()


def psycopg_connect(s: Settings):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(s.postgres.conninfo(), autocommit=True)


BASE_REQUEST: dict[str, Any] = {
    "tag": "lf-course-7001_bt-101:lf-org-heron",
    "request_id": RID,
    "job_id": "progress-exhaust",
    "status": "SUBMITTED",
    "request_data": {"batchId": "bt-101"},
    "requested_by": "lrn-202",
    "requested_channel": world.CHANNEL,
    "dt_job_submitted": "2023-03-09 07:12:44.120",
    "iteration": 0,
    "encryption_key": KEY,
}


def _insert_request(s: Settings, req: dict) -> None:  # type: ignore[type-arg]
    with psycopg_connect(s) as conn:
        conn.execute(
            f"INSERT INTO {s.postgres.job_request_table} (tag, request_id, job_id, status, request_data, "
            "requested_by, requested_channel, dt_job_submitted, download_urls, iteration, encryption_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (req["tag"], req["request_id"], req["job_id"], req["status"], json.dumps(req["request_data"]),
             req["requested_by"], req["requested_channel"], req["dt_job_submitted"], [],
             req["iteration"], req.get("encryption_key")),
        )  # fmt: skip


def test_run_job_processes_the_pending_request_like_sunbird(
    job_table: Settings, tmp_path: Path
) -> None:
    """B10.1 "generate the report with all the correct data" through run_job (TEXT_KEY level)."""
    from lernflow.reports.jobs import load, run_job
    from lernflow.reports.packaging import decrypt_secured_file, request_key

    _insert_request(job_table, BASE_REQUEST)
    run = run_job(job_table, "progress-exhaust", tmp_path)
    [row] = load(job_table)
    assert row.status == "SUCCESS"
    assert (row.err_message or "") == ""
    assert row.iteration == 0
    assert len(row.download_urls) == 1
    assert re.fullmatch(
        rf"progress-exhaust/{RID}/bt-101_progress_\d{{8}}\.zip", row.download_urls[0]
    )
    assert [m["value"] for m in run.metrics[:2]] == [1, 1]
    import zipfile

    with zipfile.ZipFile(tmp_path / row.download_urls[0]) as z:
        [name] = z.namelist()
        secured = z.read(name)
    # TEXT_KEY_ENCRYPTED_DATASET: the CSV inside is encrypted with the request's key
    salt = job_table.reports.encryption_salt.get_secret_value()
    _name, plain = decrypt_secured_file(secured, text_key=request_key(KEY, salt))
    lines = plain.decode().rstrip("\n").split("\n")
    assert lines[0] == PROGRESS_CSV[0]
    assert sorted(lines[1:]) == sorted(PROGRESS_CSV[1:])


def _limits(s: Settings) -> Settings:
    r = s.reports.model_copy(update={
        "batches_per_channel": 3, "bytes_per_channel": 100, "batches_per_request": 4,
    })  # fmt: skip
    return s.with_overrides(reports=r)


def _url_pattern(text: str) -> str:
    return re.escape(text).replace(re.escape("<yyyyMMdd>"), r"\d{8}")


def _urls(expected: str) -> list[str]:
    inner = expected.strip("{}")
    return [u for u in inner.split(",") if u]


def _zip(rid: str, batch: str, job: str = "progress") -> str:
    return f"{job}-exhaust/{rid}/{batch}_{job}_<yyyyMMdd>.zip"


_PREVIOUS = f"progress-exhaust/{RID}/bt-101_progress_20210509.zip"
# B10.1 request cases: (requests as (suffix, request_data[, processed_batches])), expected rows
PROGRESS_REQUEST_CASES: dict[str, tuple[list[tuple[Any, ...]], dict[str, dict[str, Any]]]] = {
    "file size limits and stop request in between": (
        [("", {"batchFilter": ["bt-101", "bt-104"]})],
        {"": {"status": "SUBMITTED", "download_urls": "{}", "processed_batches": "bt-101"}},
    ),
    "limits with previously completed request": (
        [
            (
                "",
                {"batchFilter": ["bt-101", "bt-104"]},
                [{"batchId": "bt-101", "filePath": _PREVIOUS, "fileSize": 0}],
            )
        ],
        {"": {"status": "SUCCESS", "download_urls": f"{{{_PREVIOUS},{_zip(RID, 'bt-104')}}}"}},
    ),
    "batches limit by channel and stop request in between": (
        [
            ("-3", {"batchFilter": ["bt-104", "bt-105"]}),
            ("-4", {"batchFilter": ["bt-102", "bt-103"]}),
            ("-1", {"batchFilter": ["bt-104", "bt-102"]}),
            ("-2", {"batchFilter": ["bt-103", "bt-104"]}),
        ],
        {
            "-4": {"status": "SUBMITTED", "download_urls": "{}"},
            "-3": {"status": "SUCCESS", "download_urls": f"{{{_zip(RID + '-3', 'bt-104')}}}"},
        },
    ),
    "file size limit by channel and stop request in between": (
        [
            ("-2", {"batchFilter": ["bt-101"]}),
            ("-3", {"batchFilter": ["bt-102"]}),
            ("-1", {"batchFilter": ["bt-104"]}),
        ],
        {
            "-3": {"status": "SUBMITTED", "download_urls": "{}"},
            "-2": {"status": "SUCCESS", "download_urls": f"{{{_zip(RID + '-2', 'bt-101')}}}"},
        },
    ),
    "duplicate requests": (
        [
            ("-1", {"batchFilter": ["bt-104", "bt-103"]}),
            ("-2", {"batchFilter": ["bt-104", "bt-103"]}),
        ],
        {
            "-1": {"status": "FAILED", "download_urls": "{}"},
            "-2": {"status": "FAILED", "download_urls": "{}"},
        },
    ),
    "validating and filtering duplicate batches": (
        [("", {"batchFilter": ["bt-01", "bt-101", "bt-101"]})],
        {
            "": {
                "status": "SUCCESS",
                "err_message": "",
                "download_urls": f"{{{_zip(RID, 'bt-101')}}}",
                "iteration": "0",
            }
        },
    ),
    "all batches are invalid": (
        [("", {"batchFilter": ["bt-01", "bt-02"]})],
        {
            "": {
                "status": "FAILED",
                "err_message": "No data found",
                "download_urls": "{}",
                "iteration": "1",
            }
        },
    ),
}


@pytest.mark.parametrize("name", list(PROGRESS_REQUEST_CASES))
def test_upstream_progress_request_cases_through_run_job(
    job_table: Settings, tmp_path: Path, name: str
) -> None:
    from lernflow.reports.jobs import load, run_job

    s = _limits(job_table)
    requests, expected = PROGRESS_REQUEST_CASES[name]
    for n, (suffix, data, *processed) in enumerate(requests):
        req = {**BASE_REQUEST, "request_id": RID + suffix, "request_data": data}
        req["tag"] = f"lf-course-7001_bt-101:channel-{n}"  # the tag is no part of the dedup key
        req["dt_job_submitted"] = f"2023-03-09 07:12:{n:02d}.000"
        _insert_request(s, req)
        if processed:
            with psycopg_connect(s) as conn:
                conn.execute(
                    f"UPDATE {s.postgres.job_request_table} SET processed_batches = %s WHERE request_id = %s",
                    (json.dumps(processed[0]), req["request_id"]),
                )
    run_job(s, "progress-exhaust", tmp_path)
    rows = {r.request_id: r for r in load(s)}
    for suffix, exp in expected.items():
        row = rows[RID + suffix]
        assert row.status == exp["status"], (suffix, row)
        want = _urls(exp["download_urls"])
        assert len(row.download_urls) == len(want), (suffix, row.download_urls)
        for got, pattern in zip(row.download_urls, want, strict=True):
            assert re.fullmatch(_url_pattern(pattern), got), (got, pattern)
        if "err_message" in exp:
            assert (row.err_message or "") == exp["err_message"]
        if "iteration" in exp:
            assert row.iteration == int(exp["iteration"])
        if "processed_batches" in exp:
            assert row.processed_batches and exp["processed_batches"] in row.processed_batches


INVALID = "Request should have either of batchId, batchFilter, searchFilter or encrption key"
# B10.2 request cases: the request's changes, the expected row, the users of the report
USERINFO_REQUEST_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[str] | None]] = {
    "all the users for a batch": (
        {},
        {"status": "SUCCESS", "err_message": "", "iteration": "0",
         "download_urls": f"{{{_zip(RID, 'bt-101', 'userinfo')}}}"},
        ["lrn-201", "lrn-202", "lrn-203", "lrn-204"],
    ),
    "encryption key not provided": (
        {"encryption_key": None},
        {"status": "FAILED", "err_message": INVALID, "download_urls": "{}"},
        None,
    ),
    "request_data not present": (
        {"request_data": {"batchId": "", "searchFilter": {}}, "requested_channel": "lf-org-kite",
         "encryption_key": "pond-key-77"},
        {"status": "FAILED", "err_message": "No data found", "download_urls": "{}"},
        None,
    ),
    "batchLimit exceeded": (
        {"request_data": {"batchFilter": ["bt-101", "bt-102", "bt-103", "bt-102", "bt-106"]},
         "requested_channel": "lf-org-kite", "encryption_key": "pond-key-77"},
        {"status": "FAILED", "download_urls": "{}",
         "err_message": "Number of batches in request exceeded. It should be within 4"},
        None,
    ),
    "request_data is empty": (
        {"request_data": {}, "encryption_key": "pond-key-77"},
        {"status": "FAILED", "err_message": INVALID, "download_urls": "{}"},
        None,
    ),
    "batchId is not present in onDemand mode": (
        {"request_data": {}},
        {"status": "FAILED", "err_message": INVALID, "download_urls": "{}"},
        None,
    ),
    "userConsent is not present": (
        {"request_data": {"batchId": "bt-102"}, "requested_channel": "lf-org-kite"},
        {"status": "FAILED", "download_urls": "{}", "iteration": "1",
         "err_message": "Invalid request. User info exhaust is not applicable for collections "
         "which don't request for user consent to share data"},
        None,
    ),
    "excluding the user who have not provided consent": (
        {"request_data": {"batchId": "bt-106"}},
        {"status": "SUCCESS", "err_message": "", "iteration": "0",
         "download_urls": f"{{{_zip(RID, 'bt-106', 'userinfo')}}}"},
        ["lrn-215", "lrn-216"],
    ),
}  # fmt: skip


@pytest.fixture
def userinfo_job(job_table: Settings) -> Settings:
    """The userinfo tests' user cache and the orgs' userinfo preferences (password zips)."""
    _user_cache(job_table, "userinfo")
    _preferences(job_table, "userinfo", "userinfo", [world.CHANNEL, "lf-org-kite"])
    return _limits(job_table)


@pytest.mark.parametrize("name", list(USERINFO_REQUEST_CASES))
def test_upstream_userinfo_cases_through_run_job(
    userinfo_job: Settings, tmp_path: Path, name: str
) -> None:
    import zipfile

    from lernflow.reports.jobs import load, run_job

    s = userinfo_job
    changes, exp, users = USERINFO_REQUEST_CASES[name]
    _insert_request(s, {**BASE_REQUEST, "job_id": "userinfo-exhaust", **changes})
    run_job(s, "userinfo-exhaust", tmp_path)
    [row] = load(s)
    assert row.status == exp["status"], row
    assert (row.err_message or "") == exp["err_message"]
    if "iteration" in exp:
        assert row.iteration == int(exp["iteration"])
    want = _urls(exp["download_urls"])
    assert len(row.download_urls) == len(want)
    for got, pattern in zip(row.download_urls, want, strict=True):
        assert re.fullmatch(_url_pattern(pattern), got), (got, pattern)
    if users is not None:
        with zipfile.ZipFile(tmp_path / row.download_urls[0]) as z:
            [name] = z.namelist()
            with pytest.raises(RuntimeError):
                z.read(name)  # PASSWORD_PROTECTED_DATASET: no password, no data
            text = z.read(name, pwd=KEY.encode()).decode()
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0]
        assert sorted(r[header.index("User UUID")] for r in rows[1:]) == users


def test_response_exhaust_rows_match_the_v1_expectations(
    report_data: Settings, tmp_path: Path
) -> None:
    """B10.3 V1: the learner with a full attempt gets one row per question."""
    _user_cache(report_data, "response")
    [result] = run_batches(report_data, "response-exhaust", ["bt-101"], tmp_path)
    assert result.error is None and result.path is not None
    rows = _rows(result.path)
    header = rows[0]
    mine = [
        dict(zip(header, row, strict=True))
        for row in rows[1:]
        if row[header.index("User UUID")] == "lrn-201"
    ]
    assert len(mine) == 4
    assert {m["Attempt Id"] for m in mine} == {"att-x1"}
    by_q = {m["Question Id"]: m for m in mine}
    expected = [
        ("lf-q-9101", "mcq", 1.0, 1.0),
        ("lf-q-9102", "mcq", 1.0, 1.0),
        ("lf-q-9103", "mtf", 0.25, 1.0),
        ("lf-q-9104", "mcq", 10.0, 10.0),
    ]
    assert sorted(by_q) == [q for q, *_ in expected]
    for q, qtype, score, max_score in expected:
        assert by_q[q]["Question Type"] == qtype
        assert float(by_q[q]["Question Score"]) == score
        assert float(by_q[q]["Question Max Score"]) == max_score
    assert by_q["lf-q-9101"]["Question Response"] == "[{'1':'{'text':'omega t'}'}]"


def test_public_key_level_encrypts_the_csv_with_the_orgs_key(
    job_table: Settings, tmp_path: Path
) -> None:
    import zipfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from lernflow.reports.jobs import load, run_job
    from lernflow.reports.packaging import decrypt_secured_file

    s = job_table
    org = world.CHANNEL
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "org_public.pem"
    pem.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))  # fmt: skip
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cluster, session = cassandra_session(s.cassandra, s.cassandra.sunbird_keyspace)
    try:
        session.execute(
            "INSERT INTO organisation (id, keys) VALUES (%s, %s)",
            (org, {"exhaustEncryptionKey": [pem.as_uri()]}),
        )
        session.execute(
            "INSERT INTO tenant_preference_v2 (orgid, key, data) VALUES (%s, %s, %s)",
            (org, "dataSecurityPolicy", json.dumps({"level": "PUBLIC_KEY_ENCRYPTED_DATASET"})),
        )
    finally:
        cluster.shutdown()
    _insert_request(s, BASE_REQUEST)
    run_job(s, "progress-exhaust", tmp_path / "out")
    [row] = load(s)
    assert row.status == "SUCCESS", row
    with zipfile.ZipFile(tmp_path / "out" / row.download_urls[0]) as z:
        secured = z.read(z.namelist()[0])
    assert secured.startswith(b"PUBLIC_KEY_ENCRYPTED_DATASET\n")
    _level, plain = decrypt_secured_file(secured, private_key_pem=private)
    assert plain.decode().startswith("Collection Id,Collection Name,Batch Id")


def test_response_exhaust_v2_adds_the_archived_attempts(
    report_data: Settings, tmp_path: Path
) -> None:
    """B10.3 V2 "generate final output as csv and zip files": 9 rows for bt-101 (see
    tests/unit/test_reports_response_v2.py)."""
    archive = tmp_path / "archive"
    folder = f"bt-101_{world.COURSE}"
    (archive / "archival-data" / folder).mkdir(parents=True)
    for f in (FX / "archival" / folder).glob("*.csv"):
        shutil.copy(f, archive / "archival-data" / folder / f.name)
    _user_cache(report_data, "response")
    s = report_data.with_overrides(
        reports=report_data.reports.model_copy(
            update={"response_version": "v2", "archive_dir": archive}
        )
    )
    [result] = run_batches(s, "response-exhaust", ["bt-101"], tmp_path / "out")
    assert result.error is None and result.path is not None
    rows = _rows(result.path)
    header = rows[0]
    users = [row[header.index("User UUID")] for row in rows[1:]]
    assert len(users) == 9
    assert {u: users.count(u) for u in set(users)} == {"lrn-201": 4, "lrn-202": 4, "lrn-203": 1}


def test_userinfo_for_the_custodian_org_is_header_only(
    report_data: Settings, tmp_path: Path
) -> None:
    """B10.2 "requested_channel as System" (the custodian org id): a header-only report."""
    _user_cache(report_data, "userinfo")
    [result] = run_batches(
        report_data, "userinfo-exhaust", ["bt-101"], tmp_path, requested_org=world.CUSTODIAN
    )
    assert result.error is None and result.path is not None
    rows = _rows(result.path)
    assert rows[0][:5] == [
        "Collection Id",
        "Collection Name",
        "Batch Id",
        "Batch Name",
        "User UUID",
    ]
    assert rows[1:] == []
    [own] = run_batches(
        report_data, "userinfo-exhaust", ["bt-101"], tmp_path / "own", requested_org=world.CHANNEL
    )
    assert own.path is not None and len(_rows(own.path)) == 5  # the collection's channel: rows


def test_userinfo_for_a_batch_gives_the_derived_rows_at_the_standalone_path(
    report_data: Settings, tmp_path: Path
) -> None:
    """B10.2 "all the users for a batch" / "standAlone mode"."""
    _user_cache(report_data, "userinfo")
    [result] = run_batches(
        report_data, "userinfo-exhaust", ["bt-101"], tmp_path, requested_org=world.CHANNEL
    )
    assert result.error is None and result.path is not None
    assert re.fullmatch(
        r"userinfo-exhaust/bt-101_userinfo_\d{8}\.csv", str(result.path.relative_to(tmp_path))
    )
    lines = result.path.read_text().rstrip("\n").split("\n")
    assert lines[0] == USERINFO_CSV[0]
    assert sorted(lines[1:]) == sorted(USERINFO_CSV[1:])


def test_hostile_ids_never_write_outside_the_report_root(
    job_table: Settings, tmp_path: Path
) -> None:
    """Issue 15 D5: a request_id holding ``../`` fails its request (no file, no directory
    outside the root); a hostile batch id is refused before the stores are read."""
    from lernflow.reports.jobs import load, run_job
    from lernflow.reports.paths import UnsafeIdError

    out = tmp_path / "out"
    out.mkdir()
    _insert_request(job_table, {**BASE_REQUEST, "request_id": "../../escaped"})
    run_job(job_table, "progress-exhaust", out)
    [row] = load(job_table)
    assert row.status == "FAILED"
    assert "request_id" in (row.err_message or "")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert list(out.rglob("*")) == []
    with pytest.raises(UnsafeIdError, match="--batch-id"):
        run_batches(job_table, "progress-exhaust", ["../../../tmp/x"], out)
