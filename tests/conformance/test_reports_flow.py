"""Course reports on the real stack (Cassandra + Redis): Sunbird's progress-exhaust data,
read through the report store, and the learners a missing user-cache entry leaves out."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, redis_client
from lernflow.reports.runner import run_batches
from tests.conformance.conftest import SUNBIRD_FIXTURES

FX = SUNBIRD_FIXTURES / "reports"
TABLES = {
    "courses": ("course_batch", "user_enrolments", "assessment_aggregator", "user_activity_agg"),
    "sunbird": ("system_settings", "user_consent"),
    "hierarchy": ("content_hierarchy",),
}


@pytest.fixture
def report_data(settings: Settings) -> Iterator[Settings]:
    """report_data.cql into this session's keyspaces, the collections the content search
    returns in the collection cache, the progress test's Redis user cache."""
    c = settings.cassandra
    names = {
        "courses": c.courses_keyspace,
        "sunbird": c.sunbird_keyspace,
        "hierarchy": c.hierarchy_keyspace,
    }
    cluster, session = cassandra_session(c)
    try:
        for group, tables in TABLES.items():
            for t in tables:
                session.execute(f"TRUNCATE {names[group]}.{t}", timeout=60)
        text = (FX / "report_data.cql").read_text()
        for stmt in re.findall(r"^INSERT INTO .*?;\s*$", text, flags=re.MULTILINE | re.DOTALL):
            if "sunbird_programs." in stmt:
                continue  # not a table the course reports read
            session.execute(
                stmt.replace("sunbird_courses.", f"{c.courses_keyspace}.")
                .replace("dev_hierarchy_store.", f"{c.hierarchy_keyspace}.")
                .replace("sunbird.", f"{c.sunbird_keyspace}.")
                .strip()
                .rstrip(";")
            )
        # what the content search returns: the collections' metadata (the collection cache)
        search = json.loads((FX / "content_search_response.json").read_text())["result"]
        meta = redis_client(settings.redis, settings.redis.collection_cache_db)
        for key, items in search.items():
            if key != "count":
                for item in items:
                    meta.set(item["identifier"], json.dumps(item))
        meta.close()
    finally:
        cluster.shutdown()
    r = redis_client(settings.redis, settings.redis.user_cache_db)
    for key, fields in json.loads(
        (FX / "redis_user_cache_seed_progress_test_db0.json").read_text()
    ).items():
        r.hset(key, mapping=fields)
    r.close()
    yield settings


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def test_progress_exhaust_for_a_batch_gives_sunbirds_rows(
    report_data: Settings, tmp_path: Path
) -> None:
    case = json.loads((FX / "test_cases_progress_exhaust.json").read_text())["cases"][0]
    [result] = run_batches(report_data, "progress-exhaust", ["batch-001"], tmp_path)
    assert result.error is None
    assert result.dropped == []
    assert result.path is not None
    assert re.fullmatch(
        r"progress-exhaust/batch-001_progress_\d{8}\.csv", str(result.path.relative_to(tmp_path))
    )
    text = result.path.read_text()
    lines = text.rstrip("\n").split("\n")
    expected = case["derived_csv_rows_any_order"]
    assert lines[0] == expected[0]
    assert sorted(lines[1:]) == sorted(expected[1:])


def test_a_learner_missing_from_the_user_cache_is_reported_not_silently_dropped(
    report_data: Settings, tmp_path: Path
) -> None:
    r = redis_client(report_data.redis, report_data.redis.user_cache_db)
    r.delete("user:user-004")
    r.close()
    [result] = run_batches(report_data, "progress-exhaust", ["batch-001"], tmp_path)
    assert result.dropped == ["user-004"]
    assert result.path is not None
    users = [row[4] for row in _rows(result.path)[1:]]
    assert sorted(users) == ["user-001", "user-002", "user-003"]


def test_unknown_and_retired_batches_fail_with_sunbirds_messages(
    report_data: Settings, tmp_path: Path
) -> None:
    results = {
        r.batch_id: r
        for r in run_batches(report_data, "progress-exhaust", ["no-such-batch"], tmp_path)
    }
    assert results["no-such-batch"].error == "No data found"


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
    cluster, session = cassandra_session(s.cassandra, s.cassandra.sunbird_keyspace)
    try:
        session.execute("TRUNCATE tenant_preference_v2")
        for key, name in (("dataSecurityPolicy", "tenant_pref_dataSecurityPolicy_progress_test.json"),
                          ("userPrivateFields", "tenant_pref_userPrivateFields_progress_test.json")):  # fmt: skip
            data = json.loads((FX / name).read_text())["result"]["response"]["data"]
            session.execute(
                "INSERT INTO tenant_preference_v2 (orgid, key, data) VALUES (%s, %s, %s)",
                ("b00bc992ef25f1a9a8d63291e20efc8d", key, json.dumps(data)),
            )
    finally:
        cluster.shutdown()
    yield s
    with psycopg_connect(s) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {pg.job_request_table}")


def psycopg_connect(s: Settings):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(s.postgres.conninfo(), autocommit=True)


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
    from lernflow.reports.jobs import load, run_job
    from lernflow.reports.packaging import decrypt_secured_file, request_key

    case = json.loads((FX / "test_cases_progress_exhaust.json").read_text())["cases"][0]
    _insert_request(job_table, case["job_request"])
    run = run_job(job_table, "progress-exhaust", tmp_path)
    [row] = load(job_table)
    exp = case["expected_job_request"]
    assert row.status == exp["status"] == "SUCCESS"
    assert (row.err_message or "") == exp["err_message"]
    assert row.iteration == int(exp["iteration"])
    assert len(row.download_urls) == 1
    assert re.fullmatch(
        r"progress-exhaust/37564CF8F134EE7532F125651B51D17F/batch-001_progress_\d{8}\.zip",
        row.download_urls[0],
    )
    assert [m["value"] for m in run.metrics[:2]] == [1, 1]
    import zipfile

    with zipfile.ZipFile(tmp_path / row.download_urls[0]) as z:
        [name] = z.namelist()
        secured = z.read(name)
    # TEXT_KEY_ENCRYPTED_DATASET: the CSV inside is encrypted with the request's key
    _name, plain = decrypt_secured_file(secured, text_key=request_key("test12", "SunBird"))
    lines = plain.decode().rstrip("\n").split("\n")
    assert lines[0] == case["derived_csv_rows_any_order"][0]
    assert len(lines) == 5


PROGRESS_CASES = json.loads((FX / "test_cases_progress_exhaust.json").read_text())


def _limits(s: Settings) -> Settings:
    limits = PROGRESS_CASES["_common"]["limits_from_test_application_conf"]
    r = s.reports.model_copy(update={
        "batches_per_channel": limits["exhaust.batches.limit.per.channel"],
        "bytes_per_channel": limits["exhaust.file.size.limit.per.channel"],
        "batches_per_request": limits["data_exhaust.batch.limit.per.request"],
    })  # fmt: skip
    return s.with_overrides(reports=r)


def _url_pattern(text: str) -> str:
    return re.escape(text).replace(re.escape("<yyyyMMdd>"), r"\d{8}")


def _urls(expected: str) -> list[str]:
    inner = expected.strip("{}")
    return [u for u in inner.split(",") if u]


@pytest.mark.parametrize("index", [2, 3, 4, 5, 6, 7, 8])
def test_upstream_progress_request_cases_through_run_job(
    job_table: Settings, tmp_path: Path, index: int
) -> None:
    from lernflow.reports.jobs import load, run_job

    s = _limits(job_table)
    base = PROGRESS_CASES["cases"][0]["job_request"]
    case = PROGRESS_CASES["cases"][index]
    requests = (
        [case["job_request"]] if "job_request" in case
        else case.get("job_requests_in_insert_order") or case["job_requests"]
    )  # fmt: skip
    for n, partial in enumerate(requests):
        req = {**base, **{k: v for k, v in partial.items() if k != "processed_batches"}}
        req["request_id"] = req["request_id"].replace("...", base["request_id"])
        req["dt_job_submitted"] = f"2020-10-19 05:58:{n:02d}.000"
        if "all_requested_channel" in case:
            req["requested_channel"] = case["all_requested_channel"]
        _insert_request(s, req)
        if "processed_batches" in partial:
            with psycopg_connect(s) as conn:
                conn.execute(
                    f"UPDATE {s.postgres.job_request_table} SET processed_batches = %s WHERE request_id = %s",
                    (json.dumps(partial["processed_batches"]), req["request_id"]),
                )
    run_job(s, "progress-exhaust", tmp_path)
    rows = {r.request_id: r for r in load(s)}
    if "expected_job_request" in case:
        expected = {requests[0].get("request_id", base["request_id"]): case["expected_job_request"]}
    else:
        expected = {base["request_id"] + suffix: exp for suffix, exp in case["expected"].items()}
    for request_id, exp in expected.items():
        row = rows[request_id]
        assert row.status == exp["status"], (request_id, row)
        if "download_urls" in exp:
            want = _urls(exp["download_urls"])
            assert len(row.download_urls) == len(want), (request_id, row.download_urls)
            for got, pattern in zip(row.download_urls, want, strict=True):
                assert re.fullmatch(_url_pattern(pattern), got), (got, pattern)
        if "err_message" in exp:
            assert (row.err_message or "") == exp["err_message"]
        if "iteration" in exp:
            assert row.iteration == int(exp["iteration"])
        if str(exp.get("processed_batches", "")).startswith("not null"):
            assert row.processed_batches and "batch-001" in row.processed_batches


USERINFO_CASES = json.loads((FX / "test_cases_userinfo_exhaust.json").read_text())


@pytest.fixture
def userinfo_job(job_table: Settings) -> Settings:
    """The userinfo test's user cache and the org's userinfo preferences (password zips)."""
    r = redis_client(job_table.redis, job_table.redis.user_cache_db)
    r.flushdb()
    for key, fields in json.loads(
        (FX / "redis_user_cache_seed_userinfo_test_db0.json").read_text()
    ).items():
        r.hset(key, mapping=fields)
    r.close()
    cluster, session = cassandra_session(job_table.cassandra, job_table.cassandra.sunbird_keyspace)
    try:
        session.execute("TRUNCATE tenant_preference_v2")
        for key, name in (("dataSecurityPolicy", "tenant_pref_dataSecurityPolicy_userinfo_test.json"),
                          ("userPrivateFields", "tenant_pref_userPrivateFields_userinfo_test.json")):  # fmt: skip
            data = json.loads((FX / name).read_text())["result"]["response"]["data"]
            for org in ("b00bc992ef25f1a9a8d63291e20efc8d", "channel-01"):
                session.execute(
                    "INSERT INTO tenant_preference_v2 (orgid, key, data) VALUES (%s, %s, %s)",
                    (org, key, json.dumps(data)),
                )
    finally:
        cluster.shutdown()
    return _limits(job_table)


@pytest.mark.parametrize("index", [0, 2, 3, 4, 5, 6, 7, 11])
def test_upstream_userinfo_cases_through_run_job(
    userinfo_job: Settings, tmp_path: Path, index: int
) -> None:
    import zipfile

    from lernflow.reports.jobs import load, run_job

    s = userinfo_job
    base = {
        **PROGRESS_CASES["cases"][0]["job_request"],
        **USERINFO_CASES["cases"][0]["job_request"],
    }
    case = USERINFO_CASES["cases"][index]
    req = {**base, **case["job_request"]}
    _insert_request(s, req)
    run_job(s, "userinfo-exhaust", tmp_path)
    [row] = load(s)
    exp = case["expected_job_request"]
    assert row.status == exp["status"], row
    assert (row.err_message or "") == exp["err_message"]
    if "iteration" in exp:
        assert row.iteration == int(exp["iteration"])
    want = _urls(exp["download_urls"])
    assert len(row.download_urls) == len(want)
    for got, pattern in zip(row.download_urls, want, strict=True):
        assert re.fullmatch(_url_pattern(pattern), got), (got, pattern)
    if "asserted_rows" in case:
        with zipfile.ZipFile(tmp_path / row.download_urls[0]) as z:
            [name] = z.namelist()
            with pytest.raises(RuntimeError):
                z.read(name)  # PASSWORD_PROTECTED_DATASET: no password, no data
            text = z.read(name, pwd=b"test12").decode()
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0]
        got_users = sorted(r[header.index("User UUID")] for r in rows[1:])
        assert got_users == sorted(case["asserted_rows"]["User UUID"])
        assert len(rows) - 1 == case["asserted_rows"]["count"]


def test_response_exhaust_rows_match_sunbirds_commented_out_expectations(
    report_data: Settings, tmp_path: Path
) -> None:
    exp = json.loads((FX / "test_cases_response_exhaust.json").read_text())["v1"][
        "commented_out_expectations_user-001"
    ]
    r = redis_client(report_data.redis, report_data.redis.user_cache_db)
    r.flushdb()
    for key, fields in json.loads(
        (FX / "redis_user_cache_seed_response_test_db0.json").read_text()
    ).items():
        r.hset(key, mapping=fields)
    r.close()
    [result] = run_batches(report_data, "response-exhaust", ["batch-001"], tmp_path)
    assert result.error is None and result.path is not None
    rows = _rows(result.path)
    header = rows[0]
    mine = [
        dict(zip(header, row, strict=True))
        for row in rows[1:]
        if row[header.index("User UUID")] == "user-001"
    ]
    assert len(mine) == exp["rows"]
    assert {m["Attempt Id"] for m in mine} == {exp["Attempt Id"]}
    by_q = {m["Question Id"]: m for m in mine}
    assert sorted(by_q) == sorted(exp["Question Id"])
    for q, qtype, score, max_score in zip(
        exp["Question Id"],
        exp["Question Type"],
        exp["Question Score"],
        exp["Question Max Score"],
        strict=True,
    ):
        assert by_q[q]["Question Type"] == qtype
        assert float(by_q[q]["Question Score"]) == float(score)
        assert float(by_q[q]["Question Max Score"]) == float(max_score)


def test_public_key_level_encrypts_the_csv_with_the_orgs_key(
    job_table: Settings, tmp_path: Path
) -> None:
    import zipfile

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from lernflow.reports.jobs import load, run_job
    from lernflow.reports.packaging import decrypt_secured_file

    s = job_table
    org = "b00bc992ef25f1a9a8d63291e20efc8d"
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
    _insert_request(s, PROGRESS_CASES["cases"][0]["job_request"])
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
    import shutil

    archive = tmp_path / "archive"
    for f in FX.glob("archival__batch-001_do_1130928636168192001667__*.csv"):
        folder, name = f.name.removeprefix("archival__").split("__")
        (archive / "archival-data" / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, archive / "archival-data" / folder / name)
    r = redis_client(report_data.redis, report_data.redis.user_cache_db)
    r.flushdb()
    for key, fields in json.loads(
        (FX / "redis_user_cache_seed_response_test_db0.json").read_text()
    ).items():
        r.hset(key, mapping=fields)
    r.close()
    s = report_data.with_overrides(
        reports=report_data.reports.model_copy(
            update={"response_version": "v2", "archive_dir": archive}
        )
    )
    [result] = run_batches(s, "response-exhaust", ["batch-001"], tmp_path / "out")
    assert result.error is None and result.path is not None
    rows = _rows(result.path)
    header = rows[0]
    users = [row[header.index("User UUID")] for row in rows[1:]]
    assert len(users) == 16  # the upstream V2 test's count
    assert {u: users.count(u) for u in set(users)} == {"user-001": 4, "user-002": 11, "user-003": 1}


def test_userinfo_for_the_custodian_org_is_header_only(
    report_data: Settings, tmp_path: Path
) -> None:
    custodian = "0130107621805015045"  # system_settings custodianOrgId in report_data.cql
    [result] = run_batches(
        report_data, "userinfo-exhaust", ["batch-001"], tmp_path, requested_org=custodian
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


def test_userinfo_for_a_batch_gives_sunbirds_rows_at_the_standalone_path(
    report_data: Settings, tmp_path: Path
) -> None:
    case = USERINFO_CASES["cases"][0]
    r = redis_client(report_data.redis, report_data.redis.user_cache_db)
    r.flushdb()
    for key, fields in json.loads(
        (FX / "redis_user_cache_seed_userinfo_test_db0.json").read_text()
    ).items():
        r.hset(key, mapping=fields)
    r.close()
    [result] = run_batches(
        report_data, "userinfo-exhaust", ["batch-001"], tmp_path,
        requested_org=case["job_request"]["requested_channel"],
    )  # fmt: skip
    assert result.error is None and result.path is not None
    assert re.fullmatch(
        r"userinfo-exhaust/batch-001_userinfo_\d{8}\.csv", str(result.path.relative_to(tmp_path))
    )
    lines = result.path.read_text().rstrip("\n").split("\n")
    expected = case["derived_csv_rows_any_order"]
    assert lines[0] == expected[0]
    assert sorted(lines[1:]) == sorted(expected[1:])
