"""job_request handling: ids, submission, selection, duplicates, checks, limits, transitions.

The ``TestUpstreamCases`` classes replay the request-handling B10 cases of
``test_cases_{progress,userinfo,response}_exhaust.json`` through a small driver written
from spec B4 with these helpers (batches are simulated; what a batch produces is not this
module's business) and compare with the expected ``job_request`` values there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports import requests as rq
from reports.packaging import (
    PackagingError,
    encrypt_csv,
    exhaust_file_path,
    report_date,
    zip_secured,
)
from reports.requests import (
    FAILED,
    MSG_INVALID_REQUEST,
    MSG_NO_DATA,
    MSG_RETIRED_COLLECTION,
    MSG_SECURITY_LEVEL,
    MSG_ZIP_FAILED,
    PROCESSING,
    STATUSES,
    SUBMITTED,
    SUCCESS,
    BatchBudget,
    BatchResult,
    ChannelCounters,
    JobRequest,
    ProcessedBatch,
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


def test_statuses():
    assert STATUSES == ("SUBMITTED", "PROCESSING", "SUCCESS", "FAILED")


def test_request_id_is_upper_md5_with_dataset_first():
    rid = rq.request_id(
        "progress-exhaust",
        "do_1130928636168192001667_batch-001",
        "user-002",
        "b00bc992ef25f1a9a8d63291e20efc8d",
        date(2020, 10, 19),
    )
    key = (
        "progress-exhaust|do_1130928636168192001667_batch-001|user-002|"
        "b00bc992ef25f1a9a8d63291e20efc8d|2020-10-19"
    )
    assert rid == hashlib.md5(key.encode()).hexdigest().upper()
    assert rid == "A3D0CB48B2317AD6E1EB0A82B8731D40"
    typed = rq.request_id("d", "t", "u", "c", date(2021, 1, 2), "sub")
    assert typed == hashlib.md5(b"d|t|u|c|2021-01-02|sub").hexdigest().upper()


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


def test_submit_uses_dataset_config_type_in_the_request_id():
    now = datetime(2021, 3, 4, 10, 0)
    row = rq.submit("d", "t", "u", "c", {"type": "sub", "batchId": "b"}, None, now, None)
    assert row.request_id == rq.request_id("d", "t", "u", "c", now.date(), "sub")
    assert row.encryption_key is None


def test_resubmission_resets_failed_rows_and_keeps_others():
    first_day = datetime(2020, 10, 19, 6, 0)
    later = datetime(2020, 10, 19, 9, 30)
    row = rq.submit("progress-exhaust", "t", "u", "ch", {"batchId": "b1"}, "k1", first_day, None)
    failed = rq.mark_failed(rq.mark_processing(row), MSG_NO_DATA, first_day)
    failed = replace(failed, download_urls=["old.csv"], processed_batches="[]")
    again = rq.submit("progress-exhaust", "t", "u", "ch", {"batchId": "b2"}, None, later, failed)
    assert again.status == SUBMITTED
    assert again.iteration == failed.iteration == 1
    assert (again.dt_job_submitted, again.request_data, again.encryption_key) == (
        later,
        {"batchId": "b2"},
        None,
    )
    assert (again.err_message, again.download_urls, again.processed_batches) == (
        MSG_NO_DATA,
        ["old.csv"],
        "[]",
    )
    done = replace(row, status=SUCCESS)
    assert (
        rq.submit("progress-exhaust", "t", "u", "ch", {"batchId": "b2"}, None, later, done) is done
    )
    with pytest.raises(ValueError, match="is not"):
        rq.submit("progress-exhaust", "other", "u", "ch", {}, None, later, done)


# --- B4.1 -------------------------------------------------------------------------------


def test_select_pending_filters_job_iteration_status_and_batch_number():
    rows = [
        make_row("progress-exhaust", request_id="a"),
        make_row("progress-exhaust", request_id="b", status=FAILED, iteration=2),
        make_row("progress-exhaust", request_id="c", status=FAILED, iteration=3),
        make_row("progress-exhaust", request_id="d", status=SUCCESS),
        make_row("progress-exhaust", request_id="e", status=PROCESSING),
        make_row("userinfo-exhaust", request_id="f"),
        make_row("progress-exhaust", request_id="g", status="submitted"),
    ]
    assert [r.request_id for r in rq.select_pending(rows, "progress-exhaust")] == ["a", "b"]
    numbered = [replace(rows[0], batch_number=2), replace(rows[1], batch_number=1)]
    assert [r.request_id for r in rq.select_pending(numbered, "progress-exhaust", 1)] == ["b"]
    assert rq.select_pending(rows[:1], "progress-exhaust", 1) == []


def test_dedup_key_ignores_tag_and_channel_but_not_data_key_or_user():
    base = make_row("progress-exhaust", request_data={"batchFilter": ["batch-004", "batch-003"]})
    other_channel = replace(base, tag="x:channel-02", requested_channel="zzz", request_id="2")
    assert rq.dedup_key(base) == rq.dedup_key(other_channel)
    expected = hashlib.md5(b'{"batchFilter":["batch-004","batch-003"]}|test12|user-002')
    assert rq.dedup_key(base) == expected.hexdigest().upper()
    assert rq.dedup_key(base) != rq.dedup_key(replace(base, encryption_key=None))
    assert rq.dedup_key(base) != rq.dedup_key(replace(base, requested_by="user-003"))
    no_key = replace(base, encryption_key=None)
    assert rq.dedup_key(no_key) == rq.dedup_key(replace(no_key, encryption_key=""))


def test_group_duplicates_keeps_first_appearance_order():
    a1 = make_row("progress-exhaust", request_id="a1", request_data={"batchId": "a"})
    b1 = make_row("progress-exhaust", request_id="b1", request_data={"batchId": "b"})
    a2 = replace(a1, request_id="a2", tag="other")
    a3 = replace(a1, request_id="a3")
    groups = rq.group_duplicates([a1, b1, a2, a3])
    assert [(f.request_id, [d.request_id for d in ds]) for f, ds in groups] == [
        ("a1", ["a2", "a3"]),
        ("b1", []),
    ]


def test_request_data_json_matches_jackson():
    data = {"batchId": 'ü"\\\x01\n', "n": 3, "f": 1.5, "ok": True, "none": None, "l": []}
    assert (
        rq.request_data_json(data)
        == '{"batchId":"ü\\"\\\\\\u0001\\n","n":3,"f":1.5,"ok":true,"none":null,"l":[]}'
    )


def test_mark_duplicate_copies_the_outcome_fields():
    ref = rq.mark_failed(make_row("progress-exhaust", request_id="r"), "boom", NOW, "[]")
    ref = replace(ref, download_urls=["a.csv"], execution_time=9)
    dup = make_row("progress-exhaust", request_id="d", tag="t2", iteration=1, err_message="old")
    out = rq.mark_duplicate(dup, ref)
    assert (out.request_id, out.tag) == ("d", "t2")
    assert (out.status, out.download_urls, out.execution_time, out.dt_job_completed) == (
        FAILED,
        ["a.csv"],
        9,
        NOW,
    )
    assert (out.processed_batches, out.iteration, out.err_message) == ("[]", 1, "boom")
    assert out.download_urls is not ref.download_urls


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


@pytest.mark.parametrize(
    ("data", "key", "job", "expected"),
    [
        ({"batchId": "batch-001"}, "k", "progress-exhaust", None),
        ({"batchId": ""}, None, "progress-exhaust", None),
        ({"batchFilter": []}, None, "progress-exhaust", None),
        ({"searchFilter": {}}, None, "progress-exhaust", None),
        ({"batchId": "", "searchFilter": {}}, "test123", "userinfo-exhaust", None),
        ({"batchId": "batch-001"}, "", "userinfo-exhaust", None),
        ({}, "k", "progress-exhaust", MSG_INVALID_REQUEST),
        ({"batchId": None}, "k", "progress-exhaust", MSG_INVALID_REQUEST),
        ({"other": 1}, "k", "userinfo-exhaust", MSG_INVALID_REQUEST),
        ({"batchId": "batch-001"}, None, "userinfo-exhaust", MSG_INVALID_REQUEST),
    ],
)
def test_validate_request(data, key, job, expected):
    row = make_row(job, request_data=data, encryption_key=key)
    assert rq.validate_request(row, job) == expected


def test_invalid_request_message_keeps_upstream_typo():
    assert MSG_INVALID_REQUEST == (
        "Request should have either of batchId, batchFilter, searchFilter or encrption key"
    )


def test_batch_count_error_counts_raw_batch_filter():
    five = {"batchFilter": ["batch-001", "batch-002", "batch-003", "batch-002", "batch-006"]}
    assert rq.batch_count_error(make_row("x", request_data=five), 4) == (
        "Number of batches in request exceeded. It should be within 4"
    )
    assert rq.batch_count_error(make_row("x", request_data=five), 5) is None
    assert rq.batch_count_error(make_row("x", request_data={"batchId": "b", **five}), 4) is None
    assert rq.batch_count_error(make_row("x", request_data={"searchFilter": {}}), 0) is None
    assert rq.batch_count_error(
        make_row("x", request_data={"batchId": ""}), 0
    ) == rq.batch_limit_message(0)


# --- limits -----------------------------------------------------------------------------


def test_channel_limited_and_record_processed():
    counters = ChannelCounters()
    assert not rq.channel_limited(counters, "ch", 3, 100)
    counters = rq.record_processed(
        counters,
        '[{"channel":"ch","batchId":"b1","filePath":"p.csv","fileSize":60},'
        '{"batchId":"old","filePath":"p.zip","fileSize":500}]',
    )
    assert (counters.batches, counters.bytes) == ({"ch": 1}, {"ch": 60})
    assert not rq.channel_limited(counters, "ch", 3, 100)
    counters = rq.record_processed(counters, [ProcessedBatch("ch", "b2", "q.csv", 40)])
    assert rq.channel_limited(counters, "ch", 3, 100)  # 100 bytes reached
    assert not rq.channel_limited(counters, "other", 3, 100)
    counters = rq.record_processed(
        ChannelCounters(), [ProcessedBatch("c", str(i), "", 0) for i in range(3)]
    )
    assert rq.channel_limited(counters, "c", 3, 100)  # 3 batches reached
    assert rq.record_processed(counters, None) == counters


def test_batch_budget_counts_failed_batches_with_the_last_size():
    budget = rq.batch_budget(ChannelCounters({"ch": 1}, {"ch": 10}), "ch")
    assert budget == BatchBudget(1, 10, 0)
    budget = budget.after_batch(None)  # failure before any success adds 0 bytes
    assert budget == BatchBudget(2, 10, 0)
    budget = budget.after_batch(30)
    budget = budget.after_batch(None)  # failure re-adds the last successful size
    assert budget == BatchBudget(4, 70, 30)
    assert budget.allows(5, 71)
    assert not budget.allows(4, 1000)
    assert not budget.allows(10, 70)


# --- processed_batches and transitions --------------------------------------------------


def test_processed_batches_json_shape_and_round_trip():
    batches = [
        ProcessedBatch(
            "ch", "batch-001", "progress-exhaust/r/batch-001_progress_20240101.csv", 651
        ),
        ProcessedBatch(None, "batch-000", "x.zip", 0),
    ]
    text = rq.processed_batches_json(batches)
    assert text == (
        '[{"channel":"ch","batchId":"batch-001","filePath":'
        '"progress-exhaust/r/batch-001_progress_20240101.csv","fileSize":651},'
        '{"batchId":"batch-000","filePath":"x.zip","fileSize":0}]'
    )
    assert rq.parse_processed_batches(text) == batches
    assert rq.parse_processed_batches(None) == rq.parse_processed_batches("[]") == []
    assert rq.processed_batches_json([]) == "[]"
    with pytest.raises(ValueError):
        rq.parse_processed_batches("{}")
    with pytest.raises(ValueError):
        rq.parse_processed_batches("not json")
    row = make_row("x", processed_batches=text)
    assert rq.completed_batch_ids(row) == ["batch-001", "batch-000"]


def test_apply_batch_results_branches():
    prev = '[{"batchId":"batch-000","filePath":"old.zip","fileSize":0}]'
    row = rq.mark_processing(make_row("progress-exhaust", processed_batches=prev, execution_time=5))
    ok = BatchResult("batch-001", SUCCESS, "new.csv", "", 12)

    no_data = rq.apply_batch_results(row, [], 1, NOW)
    assert (no_data.status, no_data.err_message, no_data.iteration) == (FAILED, MSG_NO_DATA, 1)
    assert no_data.processed_batches == prev

    failed = rq.apply_batch_results(
        row,
        [ok, BatchResult("b2", FAILED, message="x"), BatchResult("b3", FAILED, message=None)],
        1,
        NOW,
    )
    assert (failed.status, failed.err_message, failed.dt_job_completed) == (FAILED, "x,null", NOW)
    assert [b.batch_id for b in rq.parse_processed_batches(failed.processed_batches)] == [
        "batch-000",
        "batch-001",
    ]
    assert failed.download_urls == []

    deferred = rq.apply_batch_results(row, [ok, BatchResult("", PROCESSING)], 1, NOW)
    assert (deferred.status, deferred.iteration, deferred.dt_job_completed) == (SUBMITTED, 0, None)
    assert rq.parse_processed_batches(deferred.processed_batches)[1] == ProcessedBatch(
        "b00bc992ef25f1a9a8d63291e20efc8d", "batch-001", "new.csv", 12
    )

    success = rq.apply_batch_results(row, [ok], 44, NOW)
    assert (success.status, success.download_urls, success.execution_time) == (
        SUCCESS,
        ["old.zip", "new.csv"],
        44,
    )
    assert (success.iteration, success.err_message, success.dt_job_completed) == (0, "", NOW)


def test_internal_error_and_abbreviation():
    row = make_row("x")
    failed = rq.mark_internal_error(row, "e" * 400, NOW)
    assert failed.err_message == "Internal Server Error: " + "e" * 250
    assert rq.mark_internal_error(row, "boom", NOW, max_length=2).err_message == (
        "Internal Server Error: bo"
    )
    assert (failed.status, failed.iteration) == (FAILED, 1)
    assert rq.abbreviate_error("a" * 300) == "a" * 300
    assert rq.abbreviate_error("a" * 301) == "a" * 297 + "..."
    assert rq.abbreviate_error(None) == ""
    assert len(rq.save_values(failed)["err_message"]) == 273


def test_defer_channel_limited_resets_progress():
    row = make_row("x", processed_batches='[{"batchId":"b"}]', status=FAILED, iteration=1)
    out = rq.defer_channel_limited(row)
    assert (out.status, out.processed_batches, out.iteration) == (SUBMITTED, "[]", 1)


def test_apply_packaging_rewrites_or_fails():
    row = replace(make_row("x", execution_time=10), download_urls=["a/b.csv", "c/d.csv"])
    ok = rq.apply_packaging(
        row, [("a/b.csv", True), ("c/d.csv", False)], 5, NOW, ignore_zip_errors=True
    )
    assert (ok.download_urls, ok.execution_time, ok.status) == (
        ["a/b.zip", "c/d.csv"],
        15,
        SUBMITTED,
    )
    strict = rq.apply_packaging(
        replace(row, status=SUCCESS),
        [("a/b.csv", False), ("c/d.csv", False)],
        0,
        NOW,
        ignore_zip_errors=False,
    )
    assert (strict.download_urls, strict.status, strict.err_message) == (
        ["", ""],
        FAILED,
        MSG_ZIP_FAILED,
    )
    assert strict.iteration == 2  # once per failed URL
    assert rq.zip_errors_ignorable("progress-exhaust") and rq.zip_errors_ignorable(
        "response-exhaust"
    )


def test_save_and_status_update_values():
    row = replace(make_row("x"), err_message=None, execution_time=None, processed_batches=None)
    saved = rq.save_values(row)
    assert saved == {
        "iteration": 0,
        "status": SUBMITTED,
        "download_urls": [],
        "dt_file_created": None,
        "dt_job_completed": None,
        "execution_time": 0,
        "err_message": "",
        "processed_batches": "[]",
        "tag": row.tag,
        "request_id": row.request_id,
    }
    update = rq.status_update_values(rq.mark_processing(row))
    assert (update["status"], update["execution_time"], update["err_message"]) == (
        PROCESSING,
        0,
        "",
    )


def test_job_metrics():
    done = [replace(make_row("x"), status=s) for s in (SUCCESS, FAILED, SUBMITTED, "success")]
    metrics = rq.job_metrics(6, done, 2, 12_345)
    assert metrics == [
        {"id": "total-requests", "value": 6},
        {"id": "success-requests", "value": 2},
        {"id": "failed-requests", "value": 1},
        {"id": "duplicate-requests", "value": 2},
        {"id": "time-taken-secs", "value": 12.0},
    ]


@given(st.text(max_size=400), st.integers(min_value=4, max_value=400))
def test_abbreviate_error_never_exceeds_width(message, width):
    out = rq.abbreviate_error(message, width)
    assert len(out.encode("utf-16-le", "surrogatepass")) // 2 <= width
    assert out == message or out.endswith("...")
