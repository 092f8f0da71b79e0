"""``lernflow run-job <report>``: every pending ``job_request`` of one report, as Sunbird's
``run-job.sh`` does (OnDemand mode; docs/flows/progress-exhaust.md), with PostgreSQL as the
request store.

The order of steps, the duplicate handling, the per-channel limits, the status transitions and
the error texts are the pure functions of :mod:`reports.requests`; this module reads and writes
the rows, runs the batches through :mod:`reports.runner` and packages the files
(:mod:`reports.packaging`). Security level and PII fields come from the org's tenant
preferences (``sunbird.tenant_preference_v2``, keys ``dataSecurityPolicy`` /
``userPrivateFields``) — the table behind Sunbird's preferences API.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lernflow.config import Settings
from lernflow.kernel.clients import postgres_connect
from lernflow.reports import packaging
from lernflow.reports import requests as rq
from lernflow.reports.decrypt import decrypt_pii
from lernflow.reports.paths import UnsafePathError, is_safe_id, under_root
from lernflow.reports.runner import JOBS, run_batches
from lernflow.reports.sources import BatchRow, ReportStore

logger = logging.getLogger(__name__)

CSV_COLUMNS = {
    "progress-exhaust": ["courseid", "collectionName", "batchid", "batchName", "userid", "state", "district", "orgname", "schooludisecode", "schoolname", "board", "block", "cluster", "usertype", "usersubtype", "enrolleddate", "completedon", "certificatestatus", "completionPercentage"],
    "response-exhaust": ["courseid", "collectionName", "batchid", "batchName", "userid", "content_id", "contentname", "attempt_id", "last_attempted_on", "questionid", "questiontype", "questiontitle", "questiondescription", "questionduration", "questionscore", "questionmaxscore", "questionoption", "questionresponse"],
    "userinfo-exhaust": ["courseid", "collectionName", "batchid", "batchName", "userid", "username", "state", "district", "orgname", "email", "phone", "consentflag", "consentprovideddate", "block", "cluster", "usertype", "usersubtype", "schooludisecode", "schoolname"],
}  # fmt: skip
COLUMNS = (
    "tag", "request_id", "job_id", "status", "request_data", "requested_by", "requested_channel",
    "dt_job_submitted", "download_urls", "dt_file_created", "dt_job_completed", "execution_time",
    "err_message", "iteration", "encryption_key", "processed_batches", "batch_number",
)  # fmt: skip


@dataclass
class JobRun:
    """What one run did."""

    requests: list[rq.JobRequest] = field(default_factory=list)
    duplicates: int = 0
    seconds: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)


def _conn(settings: Settings) -> Any:
    return postgres_connect(settings.postgres)


def load(settings: Settings) -> list[rq.JobRequest]:
    """Every ``job_request`` row, in submission order."""
    from psycopg import sql

    table = sql.Identifier(settings.postgres.job_request_table)
    with _conn(settings) as conn:
        cur = conn.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY dt_job_submitted NULLS LAST, request_id").format(
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), table
            )
        )
        return [_row(dict(zip(COLUMNS, r, strict=True))) for r in cur.fetchall()]


def _row(d: dict[str, Any]) -> rq.JobRequest:
    data = d["request_data"]
    if isinstance(data, str):
        data = json.loads(data or "{}")
    return rq.JobRequest(
        tag=d["tag"] or "", request_id=d["request_id"], job_id=d["job_id"] or "",
        status=d["status"] or "", request_data=data or {}, requested_by=d["requested_by"] or "",
        requested_channel=d["requested_channel"] or "", dt_job_submitted=d["dt_job_submitted"],
        download_urls=list(d["download_urls"] or []), dt_file_created=d["dt_file_created"],
        dt_job_completed=d["dt_job_completed"], execution_time=d["execution_time"],
        err_message=d["err_message"], iteration=d["iteration"], encryption_key=d["encryption_key"],
        processed_batches=d["processed_batches"], batch_number=d["batch_number"],
    )  # fmt: skip


def _update(settings: Settings, values: dict[str, Any]) -> None:
    from psycopg import sql

    keys = [k for k in values if k not in ("tag", "request_id")]
    stmt = sql.SQL("UPDATE {} SET {} WHERE tag = %(tag)s AND request_id = %(request_id)s").format(
        sql.Identifier(settings.postgres.job_request_table),
        sql.SQL(", ").join(
            sql.SQL("{} = %({})s" + ("::json" if k == "processed_batches" else "")).format(
                sql.Identifier(k), sql.SQL(k)
            )
            for k in keys
        ),
    )
    with _conn(settings) as conn:
        conn.execute(stmt, values)


class RequestTable(Protocol):
    """Where the ``job_request`` rows live: read all of them, write one row's changed values."""

    def load(self) -> list[rq.JobRequest]: ...

    def update(self, values: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class PostgresRequests:
    """The ``job_request`` table in PostgreSQL (the production :class:`RequestTable`)."""

    settings: Settings

    def load(self) -> list[rq.JobRequest]:
        return load(self.settings)

    def update(self, values: dict[str, Any]) -> None:
        _update(self.settings, values)


def _preferences(store: ReportStore, org: str, key: str) -> dict[str, Any] | None:
    """The preferences API answer for (org, key), from ``tenant_preference_v2``."""
    text = store.preference(org, key)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return {"result": {"response": {"data": data}}}


def run_job(
    settings: Settings,
    job_id: str,
    out_root: Path,
    now: datetime | None = None,
    *,
    requests: RequestTable | None = None,
    store: ReportStore | None = None,
) -> JobRun:
    """Process every pending request of ``job_id`` (B4); write the rows back; return the run.

    ``requests`` and ``store`` default to PostgreSQL and the Cassandra/Redis store; a caller
    passing its own store keeps ownership of it (it is not closed here).
    """
    if job_id not in JOBS:
        msg = f"unknown report {job_id!r}; known: {', '.join(JOBS)}"
        raise ValueError(msg)
    salt = settings.reports.encryption_salt.get_secret_value()
    t_start = time.perf_counter()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    run = JobRun()
    table = requests if requests is not None else PostgresRequests(settings)
    pending = rq.select_pending(table.load(), job_id)
    own_store = store is None
    store = store if store is not None else ReportStore(settings, "reports")
    job = _Job(
        settings=settings, job_id=job_id, table=table, store=store, out_root=out_root, now=now,
        salt=salt,
    )  # fmt: skip
    try:
        _run_pending(job, pending, run)
    finally:
        if own_store:
            store.close()
    run.seconds = time.perf_counter() - t_start
    run.metrics = _metrics(pending, run)
    return run


def _metrics(pending: list[rq.JobRequest], run: JobRun) -> list[dict[str, Any]]:
    """The job's metric events, over the first request of each duplicate group."""
    firsts = [
        q
        for q in run.requests
        if q.request_id in {f.request_id for f, _d in rq.group_duplicates(pending)}
    ]
    return rq.job_metrics(len(pending), firsts, run.duplicates, int(run.seconds * 1000))


@dataclass(frozen=True)
class _Job:
    """What every request of one ``run_job`` call shares."""

    settings: Settings
    job_id: str
    table: RequestTable
    store: ReportStore
    out_root: Path
    now: datetime
    salt: str


@dataclass(frozen=True)
class _Handled:
    """A request after the limits, the checks and its batches; the channel counters after it."""

    request: rq.JobRequest
    counters: rq.ChannelCounters


def _run_pending(job: _Job, pending: list[rq.JobRequest], run: JobRun) -> None:
    """Each group of duplicates: the first request handled and packaged, the duplicates
    copied from it; every row written back and added to ``run``."""
    counters = rq.ChannelCounters()
    for first, duplicates in rq.group_duplicates(pending):
        prefs = _preferences(job.store, first.requested_channel, rq.SECURITY_POLICY_KEY)
        level = rq.security_level(prefs, job.job_id)
        handled = _handle(job, first, level, counters)
        r, counters = handled.request, handled.counters
        for d in duplicates:
            run.requests.append(_save_duplicate(job, d, r))
            run.duplicates += 1
        r = _package(r, job.job_id, level, job.out_root, job.now, job.salt)
        job.table.update(rq.save_values(r))
        run.requests.append(r)


def _handle(job: _Job, first: rq.JobRequest, level: str, counters: rq.ChannelCounters) -> _Handled:
    """Defer (channel limits), fail (security level, invalid request) or process one request;
    any other error marks it failed with the internal-error text."""
    r_cfg = job.settings.reports
    r = first
    try:
        if rq.channel_limited(
            counters, r.requested_channel, r_cfg.batches_per_channel, r_cfg.bytes_per_channel
        ):
            r = rq.defer_channel_limited(r)
        else:
            r = _security_checked(job, r, level)
            invalid = rq.validate_request(r, job.job_id) or _unsafe_ids(r)
            if invalid is not None:
                r = rq.mark_failed(r, invalid, job.now)
            else:
                r = _process(job, r, level, counters)
                counters = rq.record_processed(counters, r.processed_batches)
    except Exception as exc:
        logger.exception("request %s failed", r.request_id)
        r = rq.mark_internal_error(r, str(exc), job.now)
    return _Handled(r, counters)


MSG_UNSAFE_ID = "Invalid id: {field} {value!r} (letters, digits, _, - and . only)"
"""Beyond Sunbird: a request whose request_id or batch ids cannot be path parts fails."""


def _unsafe_ids(r: rq.JobRequest) -> str | None:
    """The error text for a request whose ``request_id``, ``batchId`` or ``batchFilter``
    entry is not a path-safe id (empty values are left to Sunbird's own checks)."""
    data = r.request_data
    filters = data.get("batchFilter")
    candidates = [("request_id", r.request_id), ("batchId", data.get("batchId"))]
    candidates += [("batchFilter", b) for b in (filters if isinstance(filters, list) else [])]
    for name, value in candidates:
        if isinstance(value, str) and value and not is_safe_id(value):
            return MSG_UNSAFE_ID.format(field=name, value=value)
    return None


def _security_checked(job: _Job, r: rq.JobRequest, level: str) -> rq.JobRequest:
    """``r``, marked failed when the security level does not allow the report's PII columns."""
    pii = rq.pii_fields(_preferences(job.store, r.requested_channel, rq.PII_FIELDS_KEY))
    security = rq.security_level_error(job.job_id, level, pii, CSV_COLUMNS[job.job_id])
    return r if security is None else rq.mark_failed(r, security, job.now)


def _save_duplicate(job: _Job, d: rq.JobRequest, r: rq.JobRequest) -> rq.JobRequest:
    """A duplicate of ``r``: its outcome and files copied from ``r``, written back."""
    dup = rq.mark_duplicate(d, r)
    dup = rq.apply_packaging(dup, [(u, True) for u in dup.download_urls], 0, job.now,
                             ignore_zip_errors=rq.zip_errors_ignorable(job.job_id))  # fmt: skip
    job.table.update(rq.save_values(dup))
    return dup


def _process(
    job: _Job, r: rq.JobRequest, level: str, counters: rq.ChannelCounters
) -> rq.JobRequest:
    """A valid request: marked processing, then its live batches run (or why none can)."""
    err = rq.batch_count_error(r, job.settings.reports.batches_per_request)
    if err is not None:
        return rq.mark_failed(r, err, job.now)
    r = rq.mark_processing(r)
    job.table.update(rq.status_update_values(r))
    data = r.request_data
    ids = (
        [data["batchId"]]
        if data.get("batchId") is not None
        else list(dict.fromkeys(data.get("batchFilter") or []))
    )
    # deterministic order (Spark: any order)
    known = sorted(job.store.batches(ids), key=lambda b: b.batch_id)
    if not known:
        return rq.mark_failed(r, rq.MSG_NO_DATA, job.now)
    collections = job.store.collections([b.course_id for b in known])
    live = [
        b
        for b in known
        if (c := collections.get(b.course_id)) is not None and c.status != "Retired"
    ]
    if not live:
        return rq.mark_failed(r, rq.MSG_RETIRED_COLLECTION, job.now)
    return _run_live(job, r, level, counters, live)


@dataclass(frozen=True)
class _BatchDone:
    """One batch's result; ``size`` is the CSV bytes counted against the channel (None when
    the batch failed)."""

    result: rq.BatchResult
    size: int | None = None


def _run_live(
    job: _Job,
    r: rq.JobRequest,
    level: str,
    counters: rq.ChannelCounters,
    live: list[BatchRow],
) -> rq.JobRequest:
    """The live batches not done yet, within the channel's budget (the rest stay processing)."""
    r_cfg = job.settings.reports
    done = set(rq.completed_batch_ids(r))
    budget = rq.batch_budget(counters, r.requested_channel)
    results: list[rq.BatchResult] = []
    t0 = time.perf_counter()
    for b in (b for b in live if b.batch_id not in done):
        if not budget.allows(r_cfg.batches_per_channel, r_cfg.bytes_per_channel):
            results.append(rq.BatchResult(b.batch_id, rq.PROCESSING))
            continue
        batch = _run_batch(job, r, level, b.batch_id)
        results.append(batch.result)
        budget = budget.after_batch(batch.size)
    return rq.apply_batch_results(r, results, int((time.perf_counter() - t0) * 1000), job.now)


def _run_batch(job: _Job, r: rq.JobRequest, level: str, batch_id: str) -> _BatchDone:
    """One batch's CSV, written and then secured in place (encrypted as ``level`` asks)."""
    salt = job.salt
    [out] = run_batches(
        job.settings, job.job_id, [batch_id], job.out_root, requested_org=r.requested_channel,
        request_id=r.request_id, store=job.store, decrypt=lambda v: decrypt_pii(v, salt),
    )  # fmt: skip
    if out.error is not None or out.path is None:
        return _BatchDone(rq.BatchResult(batch_id, rq.FAILED, message=out.error))
    try:
        pem = None
        if level == packaging.PUBLIC_KEY_ENCRYPTED_DATASET:
            pem = _public_key(job.store, r.requested_channel)
        secured = packaging.encrypt_csv(
            out.path.read_bytes(), level, password=r.encryption_key, public_key_pem=pem, salt=salt
        )
    except packaging.PackagingError as exc:
        return _BatchDone(rq.BatchResult(batch_id, rq.FAILED, message=exc.batch_message))
    under_root(job.out_root, out.path.relative_to(job.out_root)).write_bytes(secured)
    rel = str(out.path.relative_to(job.out_root))
    return _BatchDone(rq.BatchResult(batch_id, rq.SUCCESS, rel, "", out.size), out.size)


def _public_key(store: ReportStore, org: str) -> bytes | None:
    """The org's public key (PEM) for PUBLIC_KEY_ENCRYPTED_DATASET, from its
    ``keys.exhaustEncryptionKey`` URL (``file://``, a path, or http(s)); None when unset."""
    import urllib.request

    url = packaging.exhaust_encryption_key_url(store.org_search(org))
    if not url:
        return None
    if url.startswith(("http://", "https://", "file://")):
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - schemes checked above
            data: bytes = resp.read()
            return data
    return Path(url).read_bytes()


def _package(
    r: rq.JobRequest, job_id: str, level: str, out_root: Path, now: datetime, salt: str
) -> rq.JobRequest:
    outcomes = []
    t0 = time.perf_counter()
    for url in r.download_urls:
        try:
            path = under_root(out_root, url)
            made = packaging.zip_secured(
                path.read_bytes(), url, level, password=r.encryption_key, salt=salt
            )
            if made is not None:
                data, name = made
                under_root(out_root, name).write_bytes(data)
            outcomes.append((url, True))
        except (packaging.PackagingError, UnsafePathError, OSError) as exc:
            logger.warning("packaging %s failed: %s", url, exc)
            outcomes.append((url, False))
    return rq.apply_packaging(r, outcomes, int((time.perf_counter() - t0) * 1000), now,
                              ignore_zip_errors=rq.zip_errors_ignorable(job_id))  # fmt: skip
