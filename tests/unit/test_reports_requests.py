"""job_request handling: ids, submission, selection, duplicates, checks, limits, transitions.

The ``TestUpstream*Cases`` classes replay the B10 cases of the request handling (B4; progress,
userinfo, response) through the production orchestration, :func:`reports.jobs.run_job`, with the
``job_request`` rows in memory and an in-memory report store built from our test world
(``tests/unit/test_reports_fixture_rows.py``); the reports themselves are computed by the
production report code. Expected values follow from the rules in docs/flows/progress-exhaust.md
and docs/flows/userinfo-exhaust.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from lernflow.config import Settings, load_settings
from lernflow.reports import jobs
from lernflow.reports import requests as rq
from lernflow.reports.model import Attempt, Consent, Enrolment
from lernflow.reports.packaging import exhaust_file_path, report_date
from lernflow.reports.requests import (
    FAILED,
    MSG_INVALID_REQUEST,
    MSG_NO_DATA,
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
from lernflow.reports.sources import BatchRow, Collection, ReportStore
from tests.paths import DATA
from tests.unit import test_reports_fixture_rows as world

NOW = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)
# the report files of a run are named with the IST date of the moment they are written
TODAY = report_date(datetime.now(UTC))
RID = "9F2C61D0A7B34E58B1C4D2E6F8A01B37"
KEY = "pond-key-7"  # a request key that is no ciphertext: it is its own password
SALT = "Kestrel"  # the PII/request-key salt the report settings carry in these tests
CONSENT_MSG = (
    "Invalid request. User info exhaust is not applicable for collections which don't "
    "request for user consent to share data"
)
# the channel limits the upstream limit cases run with
BATCHES_PER_CHANNEL, BYTES_PER_CHANNEL, BATCHES_PER_REQUEST = 3, 100, 4
PREFERENCES = json.loads((DATA / "reports" / "tenant_preferences.json").read_text())


@cache
def fixture(name: str) -> Any:
    """A preference API answer: ``dataSecurityPolicy:<job>`` or ``userPrivateFields:<job>``."""
    key, job = name.split(":")
    return {"result": {"response": {"data": PREFERENCES[key][job]}}}


def make_row(job_id: str, /, **spec: Any) -> JobRequest:
    """A row as the request tests insert it (common values, overridden by ``spec``)."""
    processed = spec.get("processed_batches")
    values: dict[str, Any] = {
        "tag": "lf-course-7001_bt-101:lf-org-heron",
        "request_id": RID,
        "job_id": job_id,
        "status": SUBMITTED,
        "request_data": {"batchId": "bt-101"},
        "requested_by": "lrn-202",
        "requested_channel": world.CHANNEL,
        "dt_job_submitted": datetime(2023, 3, 9, 7, 12, 44, 120000),
        "download_urls": [],
        "dt_file_created": None,
        "dt_job_completed": None,
        "execution_time": 0,
        "err_message": "",
        "iteration": 0,
        "encryption_key": KEY,
        "processed_batches": None,
    }
    for key, value in spec.items():
        if key in values:
            values[key] = value
    if isinstance(processed, list):
        values["processed_batches"] = json.dumps(processed, separators=(",", ":"))
    return JobRequest(**values)


def pg_array(urls: list[str]) -> str:
    """``download_urls`` as PostgreSQL prints a text[]."""
    return "{" + ",".join(urls) + "}"


def expected_urls(text: str) -> str:
    return text.replace("<yyyyMMdd>", TODAY)


# --- the production run, with the rows and the store in memory ---------------------------


class MemoryRequests:
    """``job_request`` rows in memory (a :class:`reports.jobs.RequestTable`), in the order given."""

    def __init__(self, rows: list[JobRequest]) -> None:
        self.rows = {r.request_id: r for r in rows}
        self.order = [r.request_id for r in rows]
        self.saved: dict[str, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []

    def load(self) -> list[JobRequest]:
        return [self.rows[i] for i in self.order]

    def update(self, values: dict[str, Any]) -> None:
        self.updates.append(dict(values))
        self.saved.setdefault(values["request_id"], {}).update(values)


class MemoryStore(ReportStore):
    """The report store over our test world: course_batch, the content search, hierarchies,
    enrolments, attempts, consents, a user cache and the tenant preferences of every org."""

    def __init__(
        self,
        cache_of: str,
        policy: str,
        pii: str = "userinfo",
        *,
        failing_consents: str | None = None,
    ) -> None:
        self._users = world.user_cache(cache_of)
        self._policy = json.dumps(PREFERENCES["dataSecurityPolicy"][policy])
        self._pii = json.dumps(PREFERENCES["userPrivateFields"][pii])
        self._failing_consents = failing_consents

    def custodian_org(self) -> str | None:
        return world.CUSTODIAN

    def batches(self, batch_ids: Iterable[str] | None = None) -> list[BatchRow]:
        wanted = set(batch_ids) if batch_ids is not None else None
        return [
            BatchRow(course, batch_id, name)
            for batch_id, (course, name) in world.COURSE_BATCHES.items()
            if wanted is None or batch_id in wanted
        ]

    def collections(self, course_ids: Sequence[str]) -> dict[str, Collection]:
        found: dict[str, Collection] = {}
        for item in world.search_results():
            if item["identifier"] in course_ids and item["identifier"] not in found:
                found[item["identifier"]] = Collection(
                    item["identifier"],
                    item["name"],
                    item["channel"],
                    item.get("status") or "Live",
                    item.get("userConsent") or "No",
                )
        return found

    def hierarchy(self, course_id: str) -> dict[str, Any] | None:
        return world.hierarchies().get(course_id)

    def enrolments(self, batch_id: str) -> list[Enrolment]:
        return [e for e in world.ENROLMENTS if e.batchid == batch_id]

    def attempts(self, course_id: str, user_ids: Sequence[str]) -> list[Attempt]:
        return [a for a in world.ATTEMPTS if a.course_id == course_id and a.user_id in user_ids]

    def consents(self, user_ids: Sequence[str]) -> list[Consent]:
        if self._failing_consents is not None:
            raise RuntimeError(self._failing_consents)
        return [c for c in world.CONSENTS if c.user_id in user_ids]

    def org_search(self, org: str) -> dict[str, Any]:
        return {}

    def preference(self, org: str, key: str) -> str | None:
        return self._policy if key == rq.SECURITY_POLICY_KEY else self._pii

    def user_cache(self, fields: Sequence[str] = ()) -> dict[str, dict[str, str]]:
        return self._users

    def enrolments_and_users(
        self, batch_id: str, fields: Sequence[str] = ()
    ) -> tuple[list[Enrolment], dict[str, dict[str, str]]]:
        enrolments = self.enrolments(batch_id)
        return enrolments, {
            e.userid: self._users[e.userid] for e in enrolments if e.userid in self._users
        }

    def optional_nodes(self, course_id: str, db: int = 5) -> set[str]:
        return set()

    def close(self) -> None:
        raise AssertionError("run_job must not close a store it was given")


@cache
def _base_settings() -> Settings:
    return load_settings()


def report_settings(tmp: Path, response_version: str = "v1") -> Settings:
    base = _base_settings()
    reports = base.reports.model_copy(
        update={
            "batches_per_channel": BATCHES_PER_CHANNEL,
            "bytes_per_channel": BYTES_PER_CHANNEL,
            "batches_per_request": BATCHES_PER_REQUEST,
            "encryption_salt": SecretStr(SALT),
            "response_version": response_version,
            "archive_dir": DATA / "reports",
            "archive_path": "archival/",
        }
    )
    return base.with_overrides(reports=reports)


@dataclass
class Run:
    saved: dict[str, dict[str, Any]]
    final: dict[str, JobRequest]
    metrics: dict[str, Any]
    out: Path
    table: MemoryRequests


def run_job(
    rows: list[JobRequest], job_id: str, store: MemoryStore, out: Path, **settings: Any
) -> Run:
    """One production run (``reports.jobs.run_job``) over ``rows``."""
    table = MemoryRequests(rows)
    done = jobs.run_job(
        report_settings(out, **settings),
        job_id,
        out,
        NOW.replace(tzinfo=None),  # run_job takes naive UTC
        requests=table,
        store=store,
    )
    final = {r.request_id: r for r in done.requests}
    metrics = {m["id"]: m["value"] for m in done.metrics}
    return Run(table.saved, final, metrics, out, table)


def progress_run(rows: list[JobRequest], out: Path) -> Run:
    return run_job(rows, "progress-exhaust", MemoryStore("progress", "progress", "progress"), out)


def userinfo_run(rows: list[JobRequest], out: Path, **store: Any) -> Run:
    return run_job(rows, "userinfo-exhaust", MemoryStore("userinfo", "userinfo", **store), out)


def assert_saved(saved: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if key == "download_urls":
            assert pg_array(saved[key]) == expected_urls(value)
        elif key == "iteration":
            assert str(saved[key]) == value
        else:
            assert saved[key] == value, key


# --- upstream cases ---------------------------------------------------------------------


class TestUpstreamProgressCases:
    def test_all_correct_data(self, tmp_path):
        """B10.1 "generate the report with all the correct data"."""
        run = progress_run([make_row("progress-exhaust")], tmp_path)
        assert_saved(
            run.saved[RID],
            {
                "status": SUCCESS,
                "err_message": "",
                "download_urls": f"{{progress-exhaust/{RID}/bt-101_progress_<yyyyMMdd>.zip}}",
                "iteration": "0",
            },
        )
        assert run.metrics["total-requests"] == 1
        assert run.metrics["success-requests"] == 1
        assert run.metrics["failed-requests"] == 0
        assert run.metrics["duplicate-requests"] == 0
        # the production packaging wrote the zip the URL names
        assert (tmp_path / f"progress-exhaust/{RID}/bt-101_progress_{TODAY}.zip").is_file()

    def test_file_size_limit_stops_request_in_between(self, tmp_path):
        """B10.1 "file size limits and stop request in between": bt-101's file is over the
        100-byte channel limit, so bt-104 waits (PROCESSING) and the request stays SUBMITTED."""
        row = make_row("progress-exhaust", request_data={"batchFilter": ["bt-101", "bt-104"]})
        run = progress_run([row], tmp_path)
        saved = run.saved[RID]
        assert saved["status"] == SUBMITTED
        assert pg_array(saved["download_urls"]) == "{}"
        batches = rq.parse_processed_batches(saved["processed_batches"])
        assert [b.batch_id for b in batches] == ["bt-101"]  # the batch that completed
        assert batches[0].file_path == f"progress-exhaust/{RID}/bt-101_progress_{TODAY}.csv"

    def test_previously_completed_request(self, tmp_path):
        """B10.1 "limits with previously completed request": the completed bt-101 is skipped,
        its file carried into download_urls first."""
        previous = f"progress-exhaust/{RID}/bt-101_progress_20210509.zip"
        row = make_row(
            "progress-exhaust",
            request_data={"batchFilter": ["bt-101", "bt-104"]},
            processed_batches=[{"batchId": "bt-101", "filePath": previous, "fileSize": 0}],
        )
        run = progress_run([row], tmp_path)
        saved = run.saved[RID]
        assert saved["status"] == SUCCESS
        assert pg_array(saved["download_urls"]) == expected_urls(
            f"{{{previous},progress-exhaust/{RID}/bt-104_progress_<yyyyMMdd>.zip}}"
        )
        assert saved["processed_batches"] is not None
        assert not (tmp_path / f"progress-exhaust/{RID}/bt-101_progress_{TODAY}.csv").exists()

    def test_batches_limit_by_channel(self, tmp_path):
        """B10.1 "batches limit by channel": bt-105's course is Retired (dropped); after -3 the
        channel has produced over 100 bytes, so its later requests stay SUBMITTED."""
        specs = [("-3", ["bt-104", "bt-105"]), ("-4", ["bt-102", "bt-103"])]
        specs += [("-1", ["bt-104", "bt-102"]), ("-2", ["bt-103", "bt-104"])]
        rows = [
            make_row("progress-exhaust", request_id=RID + s, request_data={"batchFilter": b})
            for s, b in specs
        ]
        run = progress_run(rows, tmp_path)
        done = run.saved[f"{RID}-3"]
        assert done["status"] == SUCCESS
        assert pg_array(done["download_urls"]) == expected_urls(
            f"{{progress-exhaust/{RID}-3/bt-104_progress_<yyyyMMdd>.zip}}"
        )
        # the later requests of the channel were deferred with their progress reset
        for suffix in ("-4", "-1", "-2"):
            saved = run.saved[f"{RID}{suffix}"]
            assert (saved["status"], saved["processed_batches"]) == (SUBMITTED, "[]")
            assert pg_array(saved["download_urls"]) == "{}"

    def test_deferred_request_loses_its_earlier_progress(self, tmp_path):
        """B9.9: a request deferred by the channel limit is saved SUBMITTED with
        processed_batches "[]", even when an earlier run had completed one of its batches."""
        earlier = [{"batchId": "bt-102", "filePath": "progress-exhaust/x.zip", "fileSize": 5}]
        rows = [
            make_row("progress-exhaust", request_id=f"{RID}-3", request_data={"batchId": "bt-104"}),
            make_row(
                "progress-exhaust",
                request_id=f"{RID}-1",
                request_data={"batchFilter": ["bt-104", "bt-102"]},
                processed_batches=earlier,
            ),
        ]
        run = progress_run(rows, tmp_path)
        assert run.saved[f"{RID}-3"]["status"] == SUCCESS  # this one filled the channel
        deferred = run.saved[f"{RID}-1"]
        assert (deferred["status"], deferred["processed_batches"]) == (SUBMITTED, "[]")

    def test_file_size_limit_by_channel(self, tmp_path):
        """B10.1 "file size limit by channel": -2 (bt-101) fills the channel; -3 waits."""
        specs = [("-2", ["bt-101"]), ("-3", ["bt-102"]), ("-1", ["bt-104"])]
        rows = [
            make_row("progress-exhaust", request_id=RID + s, request_data={"batchFilter": b})
            for s, b in specs
        ]
        run = progress_run(rows, tmp_path)
        done = run.saved[f"{RID}-2"]
        assert done["status"] == SUCCESS
        assert pg_array(done["download_urls"]) == expected_urls(
            f"{{progress-exhaust/{RID}-2/bt-101_progress_<yyyyMMdd>.zip}}"
        )
        waiting = run.saved[f"{RID}-3"]
        assert (waiting["status"], pg_array(waiting["download_urls"])) == (SUBMITTED, "{}")

    def test_duplicate_requests(self, tmp_path):
        """B10.1 "duplicate requests": -2 has the same request_data, key and requester as -1
        (the tag differs and is not part of the key), so it copies -1's outcome; -1 fails
        because bt-103's course has no content_hierarchy row."""
        data = {"batchFilter": ["bt-104", "bt-103"]}
        rows = [
            make_row("progress-exhaust", request_id=f"{RID}-1", request_data=data),
            make_row(
                "progress-exhaust",
                request_id=f"{RID}-2",
                request_data=data,
                tag="lf-course-7001_bt-101:lf-org-kite",
            ),
        ]
        groups = rq.group_duplicates(rows)
        assert [(f.request_id, [d.request_id for d in ds]) for f, ds in groups] == [
            (f"{RID}-1", [f"{RID}-2"])
        ]
        run = progress_run(rows, tmp_path)
        for suffix in ("-1", "-2"):
            saved = run.saved[f"{RID}{suffix}"]
            assert saved["status"] == FAILED
            assert pg_array(saved["download_urls"]) == "{}"
            assert saved["err_message"] == "next on empty iterator"
            assert saved["processed_batches"] is not None
        first = run.saved[f"{RID}-1"]
        dup = run.saved[f"{RID}-2"]
        for key in ("status", "iteration", "err_message", "processed_batches", "dt_job_completed"):
            assert dup[key] == first[key]
        assert run.metrics["duplicate-requests"] == 1
        assert run.metrics["total-requests"] == 2
        assert run.metrics["failed-requests"] == 1

    def test_duplicate_batches_are_filtered(self, tmp_path):
        """B10.1 "validating and filtering duplicate batches": an unknown id is ignored, a
        repeated one runs once."""
        row = make_row(
            "progress-exhaust", request_data={"batchFilter": ["bt-01", "bt-101", "bt-101"]}
        )
        run = progress_run([row], tmp_path)
        assert_saved(
            run.saved[RID],
            {
                "status": SUCCESS,
                "err_message": "",
                "download_urls": f"{{progress-exhaust/{RID}/bt-101_progress_<yyyyMMdd>.zip}}",
                "iteration": "0",
            },
        )

    def test_all_batches_invalid(self, tmp_path):
        """B10.1 "mark request as failed if all batches are invalid"."""
        data = {"batchFilter": ["bt-01", "bt-02"]}
        row = make_row("progress-exhaust", request_data=data)
        run = progress_run([row], tmp_path)
        assert_saved(
            run.saved[row.request_id],
            {
                "status": FAILED,
                "err_message": "No data found",
                "download_urls": "{}",
                "dt_file_created": None,
                "iteration": "1",
            },
        )
        assert run.final[row.request_id].request_data == data  # unchanged

    def test_report_path(self):
        """B10.1 "validate the report path"."""
        on_demand = exhaust_file_path("progress-exhaust/", "bt-101", "progress", RID, NOW)
        standalone = exhaust_file_path("progress-exhaust/", "bt-101", "progress", None, NOW)
        assert on_demand == f"progress-exhaust/{RID}/bt-101_progress_20240101"
        assert standalone == "progress-exhaust/bt-101_progress_20240101"


INVALID = "Request should have either of batchId, batchFilter, searchFilter or encrption key"


class TestUpstreamUserinfoCases:
    def test_all_users_for_a_batch(self, tmp_path):
        """B10.2 "generate the user info report with all the users for a batch"."""
        row = make_row("userinfo-exhaust")
        run = userinfo_run([row], tmp_path)
        assert_saved(
            run.saved[row.request_id],
            {
                "status": SUCCESS,
                "err_message": "",
                "download_urls": f"{{userinfo-exhaust/{RID}/bt-101_userinfo_<yyyyMMdd>.zip}}",
                "dt_file_created": None,
                "iteration": "0",
            },
        )
        assert (
            rq.zip_errors_ignorable("userinfo-exhaust") is False
        )  # "zip exceptions not ignorable"

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            # "insert status as FAILED as encryption key not provided"
            ({"encryption_key": None}, INVALID),
            # "insert status as FAILED as request_data not present"
            (
                {
                    "request_data": {"batchId": "", "searchFilter": {}},
                    "requested_channel": "lf-org-kite",
                    "encryption_key": "pond-key-77",
                },
                "No data found",
            ),
            # "insert status as FAILED as batchLimit exceeded": 5 entries (repeats count) > 4
            (
                {
                    "request_data": {
                        "batchFilter": ["bt-101", "bt-102", "bt-103", "bt-102", "bt-106"]
                    },
                    "requested_channel": "lf-org-kite",
                    "encryption_key": "pond-key-77",
                },
                "Number of batches in request exceeded. It should be within 4",
            ),
            # "insert status as FAILED as request_data is empty"
            ({"request_data": {}, "encryption_key": "pond-key-77"}, INVALID),
            # "fail as batchId is not present in onDemand mode"
            ({"request_data": {}}, INVALID),
        ],
    )
    def test_failed_requests(self, tmp_path, spec, message):
        row = make_row("userinfo-exhaust", **spec)
        run = userinfo_run([row], tmp_path)
        saved = run.saved[row.request_id]
        assert_saved(saved, {"status": FAILED, "err_message": message, "download_urls": "{}"})
        assert saved["iteration"] == 1

    def test_collection_without_user_consent(self, tmp_path):
        """B10.2 "fail as userConsent is not present": bt-102's course asks no consent."""
        row = make_row(
            "userinfo-exhaust", request_data={"batchId": "bt-102"}, requested_channel="lf-org-kite"
        )
        run = userinfo_run([row], tmp_path)
        assert_saved(
            run.saved[row.request_id],
            {"status": FAILED, "err_message": CONSENT_MSG, "download_urls": "{}", "iteration": "1"},
        )

    def test_progress_row_is_not_picked_by_the_userinfo_job(self, tmp_path):
        """B10.2 "onDemand mode as modelParams is not present": a progress-exhaust row is left
        alone by the userinfo job, which still processes its own row."""
        other = make_row(
            "progress-exhaust",
            request_id="F00D0000000000000000000000000001",
            tag="lf-course-7001_bt-101:lf-org-kite",
            requested_channel="lf-org-kite",
        )
        mine = make_row("userinfo-exhaust")
        run = userinfo_run([other, mine], tmp_path)
        assert set(run.saved) == {mine.request_id}
        assert run.saved[mine.request_id]["status"] == SUCCESS
        assert run.metrics["total-requests"] == 1

    def test_standalone_report_path(self):
        """B10.2 "should run the job in standAlone mode": no request id folder."""
        path = exhaust_file_path("userinfo-exhaust/", "bt-101", "userinfo", "", NOW)
        assert f"{path}.csv" == "userinfo-exhaust/bt-101_userinfo_20240101.csv"

    def test_without_model_params(self, tmp_path, monkeypatch):
        """B10.2 "generate the report without modelParams present": no csvColumns, so the
        security check fails (the request goes on), then the batch fails (upstream's error text
        is "None.get"); [derived] iteration +1 for each."""
        monkeypatch.setitem(jobs.CSV_COLUMNS, "userinfo-exhaust", [])
        row = make_row("userinfo-exhaust")
        run = userinfo_run([row], tmp_path, failing_consents="None.get")
        saved = run.saved[row.request_id]
        assert_saved(saved, {"status": FAILED, "err_message": "None.get", "download_urls": "{}"})
        assert saved["iteration"] == 2

    def test_consent_revoked_batch(self, tmp_path):
        """B10.2 "excluding the user who have not provided consent" (bt-106)."""
        row = make_row("userinfo-exhaust", request_data={"batchId": "bt-106"})
        run = userinfo_run([row], tmp_path)
        assert_saved(
            run.saved[row.request_id],
            {
                "status": SUCCESS,
                "err_message": "",
                "download_urls": f"{{userinfo-exhaust/{RID}/bt-106_userinfo_<yyyyMMdd>.zip}}",
                "iteration": "0",
            },
        )

    def test_security_check_failure_keeps_error_and_iteration_on_success(
        self, tmp_path, monkeypatch
    ):
        # B9.16: the "Security Level" text and iteration+1 survive a successful run
        monkeypatch.setitem(jobs.CSV_COLUMNS, "userinfo-exhaust", ["courseid", "userid"])
        row = make_row("userinfo-exhaust")
        run = userinfo_run([row], tmp_path)
        saved = run.saved[row.request_id]
        assert saved["status"] == SUCCESS
        assert saved["err_message"] == MSG_SECURITY_LEVEL
        assert saved["iteration"] == 1


class TestUpstreamResponseCases:
    def test_v2_final_output_as_csv_and_zip(self, tmp_path):
        """B10.3 V2 "generate final output as csv and zip files" (TEXT_KEY level)."""
        row = make_row("response-exhaust", tag="lf-course-7001_bt-101:lf-org-far")
        level = rq.security_level(fixture("dataSecurityPolicy:response"), "response-exhaust")
        assert level == "TEXT_KEY_ENCRYPTED_DATASET"
        store = MemoryStore("response", "response")
        run = run_job([row], "response-exhaust", store, tmp_path, response_version="v2")
        assert_saved(
            run.saved[row.request_id],
            {
                "err_message": "",
                "download_urls": f"{{response-exhaust/{RID}/bt-101_response_<yyyyMMdd>.zip}}",
                "iteration": "0",
            },
        )

    def test_text_key_level_without_key_fails_the_batch_with_null(self, tmp_path):
        # [derived] V2 "generate report even if blob does not has any data" has no key:
        # the TEXT_KEY encryption hits a null pointer, so the batch and request fail with "null"
        row = make_row("response-exhaust", encryption_key=None)
        store = MemoryStore("response", "response")
        run = run_job([row], "response-exhaust", store, tmp_path, response_version="v2")
        saved = run.saved[row.request_id]
        assert (saved["status"], saved["err_message"]) == (FAILED, "null")


# --- B1: request ids and submission -----------------------------------------------------


def test_statuses():
    assert STATUSES == ("SUBMITTED", "PROCESSING", "SUCCESS", "FAILED")


def test_request_id_is_upper_md5_with_dataset_first():
    rid = rq.request_id(
        "progress-exhaust", "lf-course-7001_bt-101", "lrn-202", "lf-org-heron", date(2023, 3, 9)
    )
    key = "progress-exhaust|lf-course-7001_bt-101|lrn-202|lf-org-heron|2023-03-09"
    assert rid == hashlib.md5(key.encode()).hexdigest().upper()
    assert rid == "BACE45C748AAB20C1501D9CAADE6A774"
    typed = rq.request_id("d", "t", "u", "c", date(2021, 1, 2), "sub")
    assert typed == hashlib.md5(b"d|t|u|c|2021-01-02|sub").hexdigest().upper()


def test_submit_creates_the_documented_row():
    """B1 submission: the tag gets ":<channel>", the request id is the MD5 above, the row
    starts SUBMITTED at iteration 0 with request_data as compact JSON."""
    channel = "lf-org-heron"
    now = datetime(2023, 3, 9, 7, 12, 44)
    row = rq.submit(
        "progress-exhaust",
        "lf-course-7001_bt-101",
        "lrn-202",
        channel,
        {"batchId": "bt-101"},
        KEY,
        now,
        None,
    )
    assert row.tag == "lf-course-7001_bt-101:lf-org-heron"
    assert row.request_id == rq.request_id(
        "progress-exhaust", "lf-course-7001_bt-101", "lrn-202", channel, now.date()
    )
    assert row.job_id == "progress-exhaust"
    assert row.status == SUBMITTED
    assert rq.request_data_json(row.request_data) == '{"batchId":"bt-101"}'
    assert (row.requested_by, row.requested_channel) == ("lrn-202", channel)
    assert (row.encryption_key, row.iteration, row.dt_job_submitted) == (KEY, 0, now)
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
    base = make_row("progress-exhaust", request_data={"batchFilter": ["bt-104", "bt-103"]})
    other_channel = replace(base, tag="x:channel-02", requested_channel="zzz", request_id="2")
    assert rq.dedup_key(base) == rq.dedup_key(other_channel)
    expected = hashlib.md5(b'{"batchFilter":["bt-104","bt-103"]}|pond-key-7|lrn-202')
    assert rq.dedup_key(base) == expected.hexdigest().upper()
    assert rq.dedup_key(base) != rq.dedup_key(replace(base, encryption_key=None))
    assert rq.dedup_key(base) != rq.dedup_key(replace(base, requested_by="lrn-203"))
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
    progress = fixture("dataSecurityPolicy:progress")
    userinfo = fixture("dataSecurityPolicy:userinfo")
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
    pii = rq.pii_fields(fixture("userPrivateFields:userinfo"))
    assert {"email", "phone", "username"} <= set(pii)
    assert rq.pii_fields(None) == []
    assert rq.tenant_preference_request("org", rq.SECURITY_POLICY_KEY) == {
        "request": {"orgId": "org", "key": "dataSecurityPolicy"}
    }


def test_security_level_error_only_for_userinfo():
    pii = rq.pii_fields(fixture("userPrivateFields:userinfo"))
    progress_pii = rq.pii_fields(fixture("userPrivateFields:progress"))
    columns = jobs.CSV_COLUMNS["userinfo-exhaust"]
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
        ({"batchId": "bt-101"}, "k", "progress-exhaust", None),
        ({"batchId": ""}, None, "progress-exhaust", None),
        ({"batchFilter": []}, None, "progress-exhaust", None),
        ({"searchFilter": {}}, None, "progress-exhaust", None),
        ({"batchId": "", "searchFilter": {}}, "pond-key-77", "userinfo-exhaust", None),
        ({"batchId": "bt-101"}, "", "userinfo-exhaust", None),
        ({}, "k", "progress-exhaust", MSG_INVALID_REQUEST),
        ({"batchId": None}, "k", "progress-exhaust", MSG_INVALID_REQUEST),
        ({"other": 1}, "k", "userinfo-exhaust", MSG_INVALID_REQUEST),
        ({"batchId": "bt-101"}, None, "userinfo-exhaust", MSG_INVALID_REQUEST),
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
    five = {"batchFilter": ["bt-101", "bt-102", "bt-103", "bt-102", "bt-106"]}
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
        ProcessedBatch("ch", "bt-101", "progress-exhaust/r/bt-101_progress_20240101.csv", 651),
        ProcessedBatch(None, "bt-100", "x.zip", 0),
    ]
    text = rq.processed_batches_json(batches)
    assert text == (
        '[{"channel":"ch","batchId":"bt-101","filePath":'
        '"progress-exhaust/r/bt-101_progress_20240101.csv","fileSize":651},'
        '{"batchId":"bt-100","filePath":"x.zip","fileSize":0}]'
    )
    assert rq.parse_processed_batches(text) == batches
    assert rq.parse_processed_batches(None) == rq.parse_processed_batches("[]") == []
    assert rq.processed_batches_json([]) == "[]"
    with pytest.raises(ValueError):
        rq.parse_processed_batches("{}")
    with pytest.raises(ValueError):
        rq.parse_processed_batches("not json")
    row = make_row("x", processed_batches=text)
    assert rq.completed_batch_ids(row) == ["bt-101", "bt-100"]


def test_apply_batch_results_branches():
    prev = '[{"batchId":"bt-100","filePath":"old.zip","fileSize":0}]'
    row = rq.mark_processing(make_row("progress-exhaust", processed_batches=prev, execution_time=5))
    ok = BatchResult("bt-101", SUCCESS, "new.csv", "", 12)

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
        "bt-100",
        "bt-101",
    ]
    assert failed.download_urls == []

    deferred = rq.apply_batch_results(row, [ok, BatchResult("", PROCESSING)], 1, NOW)
    assert (deferred.status, deferred.iteration, deferred.dt_job_completed) == (SUBMITTED, 0, None)
    assert rq.parse_processed_batches(deferred.processed_batches)[1] == ProcessedBatch(
        "lf-org-heron", "bt-101", "new.csv", 12
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
