"""job_request handling: ids, submission, selection, duplicates, checks, limits, transitions.

The ``TestUpstreamCases`` classes replay the request-handling B10 cases of
``test_cases_{progress,userinfo,response}_exhaust.json`` through a small driver written
from spec B4 with these helpers (batches are simulated; what a batch produces is not this
module's business) and compare with the expected ``job_request`` values there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest

from lernflow.reports import requests as rq
from lernflow.reports.packaging import (
    PackagingError,
    encrypt_csv,
    exhaust_file_path,
    report_date,
    zip_secured,
)
from lernflow.reports.requests import (
    FAILED,
    MSG_NO_DATA,
    MSG_RETIRED_COLLECTION,
    MSG_SECURITY_LEVEL,
    PROCESSING,
    SUBMITTED,
    SUCCESS,
    BatchResult,
    ChannelCounters,
    JobRequest,
)
from tests.conformance.conftest import SUNBIRD_FIXTURES

NOW = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)
TODAY = report_date(NOW)
RID = "37564CF8F134EE7532F125651B51D17F"
SALT = "SunBird"  # sunbird_encryption_key of the upstream test configuration
CONSENT_MSG = (
    "Invalid request. User info exhaust is not applicable for collections which don't "
    "request for user consent to share data"
)


@cache
def fixture(name: str) -> Any:
    return json.loads((SUNBIRD_FIXTURES / "reports" / name).read_text())


def limits(case_file: str) -> tuple[int, int, int]:
    conf = fixture(case_file)["_common"]["limits_from_test_application_conf"]
    return (
        conf["exhaust.batches.limit.per.channel"],
        conf["exhaust.file.size.limit.per.channel"],
        conf["data_exhaust.batch.limit.per.request"],
    )


def make_row(job_id: str, /, **spec: Any) -> JobRequest:
    """A row as the upstream tests insert it (their common values, overridden by ``spec``)."""
    processed = spec.get("processed_batches")
    values: dict[str, Any] = {
        "tag": "do_1130928636168192001667_batch-001:channel-01",
        "request_id": "37564CF8F134EE7532F125651B51D17F",
        "job_id": job_id,
        "status": SUBMITTED,
        "request_data": {"batchId": "batch-001"},
        "requested_by": "user-002",
        "requested_channel": "b00bc992ef25f1a9a8d63291e20efc8d",
        "dt_job_submitted": datetime(2020, 10, 19, 5, 58, 18, 666000),
        "download_urls": [],
        "dt_file_created": None,
        "dt_job_completed": None,
        "execution_time": 0,
        "err_message": "",
        "iteration": 0,
        "encryption_key": "test12",
        "processed_batches": None,
    }
    for key, value in spec.items():
        if key in values:
            values[key] = value
    if isinstance(processed, list):
        values["processed_batches"] = json.dumps(processed, separators=(",", ":"))
    return JobRequest(**values)


def pg_array(urls: list[str]) -> str:
    """How the upstream tests read ``download_urls`` (``getString`` of a text[])."""
    return "{" + ",".join(urls) + "}"


def expected_urls(text: str) -> str:
    return text.replace("<yyyyMMdd>", TODAY)


# --- a driver of one job run, written from spec B4 with the helpers under test ----------


@dataclass(frozen=True)
class Batch:
    """What the simulated batch resolver and batch processing know about a batch id."""

    size: int = 0
    error: str | None = None
    retired: bool = False


CATALOGUE = {
    "batch-001": Batch(size=650),
    "batch-002": Batch(size=420),
    # the course of batch-003 has no content_hierarchy row
    "batch-003": Batch(error="next on empty iterator"),
    "batch-004": Batch(size=310),
    "batch-005": Batch(retired=True),
    "batch-006": Batch(size=380),
}


@dataclass
class Run:
    saved: dict[str, dict[str, Any]]
    final: dict[str, JobRequest]
    metrics: dict[str, Any]


def run_job(
    rows: list[JobRequest],
    job_id: str,
    case_file: str,
    *,
    level: str,
    pii: list[str],
    csv_columns: list[str],
    catalogue: dict[str, Batch] = CATALOGUE,
) -> Run:
    batch_limit, byte_limit, per_request = limits(case_file)
    report_path, report_key = {
        "progress-exhaust": ("progress-exhaust/", "progress"),
        "userinfo-exhaust": ("userinfo-exhaust/", "userinfo"),
        "response-exhaust": ("response-exhaust/", "response"),
    }[job_id]
    pending = rq.select_pending(rows, job_id)
    groups = rq.group_duplicates(pending)
    counters = ChannelCounters()
    saved: dict[str, dict[str, Any]] = {}
    final: dict[str, JobRequest] = {}
    processed: list[JobRequest] = []

    def process(r: JobRequest) -> JobRequest:
        err = rq.batch_count_error(r, per_request)
        if err is not None:
            return rq.mark_failed(r, err, NOW)
        r = rq.mark_processing(r)
        assert rq.status_update_values(r)["status"] == PROCESSING
        data = r.request_data
        if data.get("batchId") is not None:
            ids = [data["batchId"]]
        else:
            ids = list(dict.fromkeys(data.get("batchFilter") or []))
        known = sorted(b for b in ids if b in catalogue)  # the resolver's (table) order
        if not known:
            return rq.mark_failed(r, MSG_NO_DATA, NOW)
        live = [b for b in known if not catalogue[b].retired]
        if not live:
            return rq.mark_failed(r, MSG_RETIRED_COLLECTION, NOW)
        done = set(rq.completed_batch_ids(r))
        budget = rq.batch_budget(counters, r.requested_channel)
        results: list[BatchResult] = []
        for batch_id in (b for b in live if b not in done):
            if not budget.allows(batch_limit, byte_limit):
                results.append(BatchResult(batch_id, PROCESSING))
                continue
            batch = catalogue[batch_id]
            try:
                if batch.error is not None:
                    raise RuntimeError(batch.error)
                encrypt_csv(
                    b"header\n", level, password=r.encryption_key, public_key_pem=None, salt=SALT
                )
            except PackagingError as exc:
                results.append(BatchResult(batch_id, FAILED, message=exc.batch_message))
                budget = budget.after_batch(None)
                continue
            except RuntimeError as exc:
                results.append(BatchResult(batch_id, FAILED, message=str(exc)))
                budget = budget.after_batch(None)
                continue
            path = exhaust_file_path(report_path, batch_id, report_key, r.request_id, NOW)
            results.append(BatchResult(batch_id, SUCCESS, f"{path}.csv", "", batch.size))
            budget = budget.after_batch(batch.size)
        return rq.apply_batch_results(r, results, 7, NOW)

    def package(r: JobRequest, request_level: str) -> JobRequest:
        outcomes = []
        for url in r.download_urls:
            try:
                zip_secured(b"x", url, request_level, password=r.encryption_key, salt=SALT)
                outcomes.append((url, True))
            except PackagingError:
                outcomes.append((url, False))
        ignore = rq.zip_errors_ignorable(job_id)
        return rq.apply_packaging(r, outcomes, 3, NOW, ignore_zip_errors=ignore)

    for first, duplicates in groups:
        r = first
        try:
            if rq.channel_limited(counters, r.requested_channel, batch_limit, byte_limit):
                r = rq.defer_channel_limited(r)
            else:
                security = rq.security_level_error(job_id, level, pii, csv_columns)
                if security is not None:
                    r = rq.mark_failed(r, security, NOW)
                invalid = rq.validate_request(r, job_id)
                if invalid is not None:
                    r = rq.mark_failed(r, invalid, NOW)
                else:
                    r = process(r)
                    counters = rq.record_processed(counters, r.processed_batches)
        except Exception as exc:
            r = rq.mark_internal_error(r, str(exc), NOW)
        for dup in duplicates:
            copied = package(rq.mark_duplicate(dup, r), "")  # no level known for duplicates
            saved[dup.request_id] = rq.save_values(copied)
            final[dup.request_id] = copied
        r = package(r, level)
        saved[r.request_id] = rq.save_values(r)
        final[r.request_id] = r
        processed.append(r)
    duplicate_count = sum(len(d) for _, d in groups)
    metrics = {
        m["id"]: m["value"] for m in rq.job_metrics(len(pending), processed, duplicate_count, 0)
    }
    return Run(saved, final, metrics)


def progress_run(rows: list[JobRequest]) -> Run:
    prefs = fixture("tenant_pref_dataSecurityPolicy_progress_test.json")
    return run_job(
        rows,
        "progress-exhaust",
        "test_cases_progress_exhaust.json",
        level=rq.security_level(prefs, "progress-exhaust"),
        pii=rq.pii_fields(fixture("tenant_pref_userPrivateFields_progress_test.json")),
        csv_columns=fixture("test_cases_progress_exhaust.json")["model_config"]["modelParams"][
            "csvColumns"
        ],
    )


def userinfo_run(
    rows: list[JobRequest],
    *,
    csv_columns: list[str] | None = None,
    catalogue: dict[str, Batch] = CATALOGUE,
) -> Run:
    cases = fixture("test_cases_userinfo_exhaust.json")
    prefs = fixture("tenant_pref_dataSecurityPolicy_userinfo_test.json")
    return run_job(
        rows,
        "userinfo-exhaust",
        "test_cases_userinfo_exhaust.json",
        level=rq.security_level(prefs, "userinfo-exhaust"),
        pii=rq.pii_fields(fixture("tenant_pref_userPrivateFields_userinfo_test.json")),
        csv_columns=cases["model_config_csvColumns"] if csv_columns is None else csv_columns,
        catalogue=catalogue,
    )


def case(case_file: str, name_start: str) -> dict[str, Any]:
    cases = fixture(case_file)["cases"]
    return next(c for c in cases if c["name"].startswith(name_start))


def assert_saved(saved: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if key == "download_urls":
            assert pg_array(saved[key]) == expected_urls(value)
        elif key == "iteration":
            assert str(saved[key]) == value
        elif key == "request_data":
            continue
        else:
            assert saved[key] == value, key


# --- upstream cases ---------------------------------------------------------------------


class TestUpstreamProgressCases:
    FILE = "test_cases_progress_exhaust.json"

    def test_all_correct_data(self):
        c = case(self.FILE, "generate the report with all the correct data")
        run = progress_run([make_row("progress-exhaust", **c["job_request"])])
        assert_saved(run.saved[c["job_request"]["request_id"]], c["expected_job_request"])
        expected_metrics = c["expected_metrics"]
        assert run.metrics["total-requests"] == expected_metrics["totalRequests"]
        assert run.metrics["success-requests"] == expected_metrics["successRequests"]
        assert run.metrics["failed-requests"] == expected_metrics["failedRequests"]
        assert run.metrics["duplicate-requests"] == expected_metrics["duplicateRequests"]

    def test_file_size_limit_stops_request_in_between(self):
        c = case(self.FILE, "test the exhaust report file size limits and stop request")
        run = progress_run([make_row("progress-exhaust", **c["job_request"])])
        saved = run.saved["37564CF8F134EE7532F125651B51D17F"]
        assert saved["status"] == c["expected_job_request"]["status"] == SUBMITTED
        assert pg_array(saved["download_urls"]) == c["expected_job_request"]["download_urls"]
        batches = rq.parse_processed_batches(saved["processed_batches"])
        assert [b.batch_id for b in batches] == ["batch-001"]  # the batch that completed
        assert batches[0].file_path == (
            f"progress-exhaust/37564CF8F134EE7532F125651B51D17F/batch-001_progress_{TODAY}.csv"
        )

    def test_previously_completed_request(self):
        c = case(self.FILE, "test the exhaust report on limits with previously completed")
        run = progress_run([make_row("progress-exhaust", **c["job_request"])])
        saved = run.saved["37564CF8F134EE7532F125651B51D17F"]
        assert saved["status"] == c["expected_job_request"]["status"]
        assert pg_array(saved["download_urls"]) == expected_urls(
            c["expected_job_request"]["download_urls"]
        )
        assert saved["processed_batches"] is not None

    def test_batches_limit_by_channel(self):
        c = case(self.FILE, "test the exhaust report with batches limit by channel")
        rows = [make_row("progress-exhaust", **spec) for spec in c["job_requests_in_insert_order"]]
        run = progress_run(rows)
        for suffix, expected in c["expected"].items():
            saved = run.saved[f"37564CF8F134EE7532F125651B51D17F{suffix}"]
            assert saved["status"] == expected["status"]
            assert pg_array(saved["download_urls"]) == expected_urls(expected["download_urls"])
        # the later requests of the channel were deferred with their progress reset
        for suffix in ("-4", "-1", "-2"):
            saved = run.saved[f"37564CF8F134EE7532F125651B51D17F{suffix}"]
            assert (saved["status"], saved["processed_batches"]) == (SUBMITTED, "[]")

    def test_file_size_limit_by_channel(self):
        c = case(self.FILE, "test the exhaust report file size limit by channel")
        rows = [
            make_row(
                "progress-exhaust", **{**spec, "request_id": spec["request_id"].replace("...", RID)}
            )
            for spec in c["job_requests_in_insert_order"]
        ]
        run = progress_run(rows)
        for suffix, expected in c["expected"].items():
            saved = run.saved[f"37564CF8F134EE7532F125651B51D17F{suffix}"]
            assert saved["status"] == expected["status"]
            assert pg_array(saved["download_urls"]) == expected_urls(expected["download_urls"])

    def test_duplicate_requests(self):
        c = case(self.FILE, "test the exhaust reports with duplicate requests")
        rows = [make_row("progress-exhaust", **spec) for spec in c["job_requests"]]
        groups = rq.group_duplicates(rows)
        assert [(f.request_id, [d.request_id for d in ds]) for f, ds in groups] == [
            ("37564CF8F134EE7532F125651B51D17F-1", ["37564CF8F134EE7532F125651B51D17F-2"])
        ]
        run = progress_run(rows)
        for suffix, expected in c["expected"].items():
            saved = run.saved[f"37564CF8F134EE7532F125651B51D17F{suffix}"]
            assert saved["status"] == expected["status"] == FAILED
            assert pg_array(saved["download_urls"]) == expected["download_urls"]
            assert saved["err_message"] == "next on empty iterator"
            assert saved["processed_batches"] is not None
        first = run.saved["37564CF8F134EE7532F125651B51D17F-1"]
        dup = run.saved["37564CF8F134EE7532F125651B51D17F-2"]
        for key in ("status", "iteration", "err_message", "processed_batches", "dt_job_completed"):
            assert dup[key] == first[key]
        assert run.metrics["duplicate-requests"] == 1
        assert run.metrics["total-requests"] == 2
        assert run.metrics["failed-requests"] == 1

    def test_duplicate_batches_are_filtered(self):
        c = case(self.FILE, "generate report validating and filtering duplicate batches")
        run = progress_run([make_row("progress-exhaust", **c["job_request"])])
        assert_saved(run.saved["37564CF8F134EE7532F125651B51D17F"], c["expected_job_request"])

    def test_all_batches_invalid(self):
        c = case(self.FILE, "mark request as failed if all batches are invalid")
        row = make_row("progress-exhaust", **c["job_request"])
        run = progress_run([row])
        expected = c["expected_job_request"]
        assert_saved(run.saved[row.request_id], expected)
        final = run.final[row.request_id]
        assert final.request_data == json.loads(expected["request_data"])  # unchanged

    def test_report_path(self):
        c = case(self.FILE, "validate the report path")
        rid = "37564CF8F134EE7532F125651B51D17F"
        on_demand = exhaust_file_path("progress-exhaust/", "batch-001", "progress", rid, NOW)
        standalone = exhaust_file_path("progress-exhaust/", "batch-001", "progress", None, NOW)
        assert on_demand == expected_urls(c["expected"]["on_demand"])
        assert standalone == expected_urls(c["expected"]["standalone"])


class TestUpstreamUserinfoCases:
    FILE = "test_cases_userinfo_exhaust.json"

    def test_all_users_for_a_batch(self):
        c = case(self.FILE, "generate the user info report with all the users")
        row = make_row("userinfo-exhaust", **c["job_request"])
        run = userinfo_run([row])
        assert_saved(run.saved[row.request_id], c["expected_job_request"])
        assert (
            rq.zip_errors_ignorable("userinfo-exhaust") is False
        )  # "zip exceptions not ignorable"

    @pytest.mark.parametrize(
        "name",
        [
            "insert status as FAILED as encryption key not provided",
            "insert status as FAILED as request_data not present",
            "insert status as FAILED as batchLimit exceeded",
            "insert status as FAILED as request_data is empty",
            "fail as batchId is not present in onDemand mode",
        ],
    )
    def test_failed_requests(self, name):
        c = case(self.FILE, name)
        row = make_row("userinfo-exhaust", **c["job_request"])
        run = userinfo_run([row])
        saved = run.saved[row.request_id]
        assert_saved(saved, c["expected_job_request"])
        assert saved["iteration"] == 1

    def test_collection_without_user_consent(self):
        c = case(self.FILE, "fail as userConsent is not present")
        row = make_row("userinfo-exhaust", **c["job_request"])
        catalogue = {**CATALOGUE, "batch-002": Batch(error=CONSENT_MSG)}
        run = userinfo_run([row], catalogue=catalogue)
        assert_saved(run.saved[row.request_id], c["expected_job_request"])

    def test_progress_row_is_not_picked_by_the_userinfo_job(self):
        row = make_row(
            "progress-exhaust",
            tag="do_1131350140968632321230_batch-001:channel-01",
            requested_channel="channel-01",
        )
        run = userinfo_run([row])
        assert run.saved == {}
        assert run.metrics["total-requests"] == 0

    def test_standalone_report_path(self):
        path = exhaust_file_path("userinfo-exhaust/", "batch-001", "userinfo", "", NOW)
        assert f"{path}.csv" == f"userinfo-exhaust/batch-001_userinfo_{TODAY}.csv"

    def test_without_model_params(self):
        c = case(self.FILE, "generate the report without modelParams present")
        row = make_row("userinfo-exhaust")
        # no modelParams: csvColumns is empty (security check fails, processing continues)
        # and processBatch throws None.get
        catalogue = {**CATALOGUE, "batch-001": Batch(error="None.get")}
        run = userinfo_run([row], csv_columns=[], catalogue=catalogue)
        saved = run.saved[row.request_id]
        assert_saved(saved, c["expected_job_request"])
        assert saved["iteration"] == 2  # [derived] +1 for the security check, +1 for the failure

    def test_consent_revoked_batch(self):
        c = case(self.FILE, "not generate the user info report excluding")
        row = make_row("userinfo-exhaust", **c["job_request"])
        run = userinfo_run([row])
        assert_saved(run.saved[row.request_id], c["expected_job_request"])

    def test_security_check_failure_keeps_error_and_iteration_on_success(self):
        # B9.16: the "Security Level" text and iteration+1 survive a successful run
        row = make_row("userinfo-exhaust")
        run = userinfo_run([row], csv_columns=["courseid", "userid"])
        saved = run.saved[row.request_id]
        assert saved["status"] == SUCCESS
        assert saved["err_message"] == MSG_SECURITY_LEVEL
        assert saved["iteration"] == 1


class TestUpstreamResponseCases:
    def test_v2_final_output_as_csv_and_zip(self):
        cases = fixture("test_cases_response_exhaust.json")["v2"]
        row = make_row(
            "response-exhaust",
            tag="do_1131350140968632321230_batch-001:01250894314817126443",
            **cases["job_request"],
        )
        prefs = fixture("tenant_pref_dataSecurityPolicy_response_test.json")
        level = rq.security_level(prefs, "response-exhaust")
        assert level == "TEXT_KEY_ENCRYPTED_DATASET"
        run = run_job(
            [row],
            "response-exhaust",
            "test_cases_response_exhaust.json",
            level=level,
            pii=[],
            csv_columns=[],
        )
        expected = {
            k: v.replace("<rid>", row.request_id)
            for k, v in cases["asserted"]["job_request"].items()
        }
        assert_saved(run.saved[row.request_id], expected)

    def test_text_key_level_without_key_fails_the_batch_with_null(self):
        # [derived] V2 "generate report even if blob does not has any data" has no key:
        # the TEXT_KEY encryption hits a null pointer, so the batch and request fail with "null"
        row = make_row("response-exhaust", encryption_key=None)
        run = run_job(
            [row],
            "response-exhaust",
            "test_cases_response_exhaust.json",
            level="TEXT_KEY_ENCRYPTED_DATASET",
            pii=[],
            csv_columns=[],
        )
        saved = run.saved[row.request_id]
        assert (saved["status"], saved["err_message"]) == (FAILED, "null")


# --- B1: request ids and submission -----------------------------------------------------


def test_submit_creates_the_documented_row():
    examples = fixture("job_request_submission_examples.json")
    req = examples["example_request_progress"]["request"]
    channel = "b00bc992ef25f1a9a8d63291e20efc8d"
    now = datetime(2020, 10, 19, 5, 58, 18)
    row = rq.submit(
        req["dataset"],
        req["tag"],
        req["requestedBy"],
        channel,
        req["datasetConfig"],
        req["encryptionKey"],
        now,
        None,
    )
    expected = examples["resulting_row"]
    assert row.tag == expected["tag"]
    assert row.request_id == rq.request_id(
        "progress-exhaust", req["tag"], "user-002", channel, now.date()
    )
    assert row.job_id == expected["job_id"]
    assert row.status == expected["status"]
    assert rq.request_data_json(row.request_data) == expected["request_data"]
    assert (row.requested_by, row.requested_channel) == (
        expected["requested_by"],
        expected["requested_channel"],
    )
    assert (row.encryption_key, row.iteration, row.dt_job_submitted) == ("test12", 0, now)
    assert (row.download_urls, row.processed_batches, row.err_message) == ([], None, None)


# --- B4.1 -------------------------------------------------------------------------------


# --- B4.2 checks ------------------------------------------------------------------------


def test_security_level_and_pii_fields_from_tenant_preferences():
    progress = fixture("tenant_pref_dataSecurityPolicy_progress_test.json")
    userinfo = fixture("tenant_pref_dataSecurityPolicy_userinfo_test.json")
    assert rq.security_level(progress, "progress-exhaust") == "TEXT_KEY_ENCRYPTED_DATASET"
    assert rq.security_level(progress, "response-exhaust") == "PUBLIC_KEY_ENCRYPTED_DATASET"
    assert rq.security_level(userinfo, "userinfo-exhaust") == "PASSWORD_PROTECTED_DATASET"
    assert rq.security_level(userinfo, "progress-exhaust") == "PUBLIC_KEY_ENCRYPTED_DATASET"
    assert rq.security_level(userinfo, "unknown-job") == "PLAIN_DATASET"
    assert rq.security_level(None, "progress-exhaust") == ""
    assert rq.security_level({"result": {"response": {}}}, "progress-exhaust") == ""
    empty_job = {
        "result": {"response": {"data": {"level": "PLAIN_DATASET", "job": {"j": {"level": ""}}}}}
    }
    assert rq.security_level(empty_job, "j") == "PLAIN_DATASET"
    pii = rq.pii_fields(fixture("tenant_pref_userPrivateFields_userinfo_test.json"))
    assert {"email", "phone", "username"} <= set(pii)
    assert rq.pii_fields(None) == []
    assert rq.tenant_preference_request("org", rq.SECURITY_POLICY_KEY) == {
        "request": {"orgId": "org", "key": "dataSecurityPolicy"}
    }


def test_security_level_error_only_for_userinfo():
    pii = rq.pii_fields(fixture("tenant_pref_userPrivateFields_userinfo_test.json"))
    progress_pii = rq.pii_fields(fixture("tenant_pref_userPrivateFields_progress_test.json"))
    columns = fixture("test_cases_userinfo_exhaust.json")["model_config_csvColumns"]
    ok_levels = [
        "PASSWORD_PROTECTED_DATASET",
        "TEXT_KEY_ENCRYPTED_DATASET",
        "PUBLIC_KEY_ENCRYPTED_DATASET",
    ]
    for level in ok_levels:
        assert rq.security_level_error("userinfo-exhaust", level, pii, columns) is None
    for level in ("PLAIN_DATASET", "", "OTHER"):
        assert (
            rq.security_level_error("userinfo-exhaust", level, pii, columns) == MSG_SECURITY_LEVEL
        )
    assert (
        rq.security_level_error("userinfo-exhaust", ok_levels[0], progress_pii, columns)
        == MSG_SECURITY_LEVEL
    )
    no_phone = [c for c in columns if c != "phone"]
    assert (
        rq.security_level_error("userinfo-exhaust", ok_levels[0], pii, no_phone)
        == MSG_SECURITY_LEVEL
    )
    assert rq.security_level_error("progress-exhaust", "", [], []) is None
    assert MSG_SECURITY_LEVEL == (
        "Request Security Level is not matching with PII fields or csvColumns CSV columns "
        "configured. Please check."
    )


# --- limits -----------------------------------------------------------------------------


# --- processed_batches and transitions --------------------------------------------------
