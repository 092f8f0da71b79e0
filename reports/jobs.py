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

from config import Settings
from reports import packaging
from reports import requests as rq
from reports.decrypt import decrypt_pii
from reports.runner import JOBS, run_batches
from reports.sources import ReportStore

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
    import psycopg

    return psycopg.connect(settings.postgres.conninfo(), autocommit=True)


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
    r_cfg = settings.reports
    salt = r_cfg.encryption_salt.get_secret_value()
    t_start = time.perf_counter()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    run = JobRun()
    table = requests if requests is not None else PostgresRequests(settings)
    pending = rq.select_pending(table.load(), job_id)
    counters = rq.ChannelCounters()
    own_store = store is None
    store = store if store is not None else ReportStore(settings, "reports")
    try:
        for first, duplicates in rq.group_duplicates(pending):
            r = first
            prefs = _preferences(store, r.requested_channel, rq.SECURITY_POLICY_KEY)
            level = rq.security_level(prefs, job_id)
            try:
                if rq.channel_limited(
                    counters,
                    r.requested_channel,
                    r_cfg.batches_per_channel,
                    r_cfg.bytes_per_channel,
                ):
                    r = rq.defer_channel_limited(r)
                else:
                    pii = rq.pii_fields(_preferences(store, r.requested_channel, rq.PII_FIELDS_KEY))
                    security = rq.security_level_error(job_id, level, pii, CSV_COLUMNS[job_id])
                    if security is not None:
                        r = rq.mark_failed(r, security, now)
                    invalid = rq.validate_request(r, job_id)
                    if invalid is not None:
                        r = rq.mark_failed(r, invalid, now)
                    else:
                        r = _process(
                            settings, table, store, r, job_id, level, counters, out_root, now, salt
                        )
                        counters = rq.record_processed(counters, r.processed_batches)
            except Exception as exc:
                logger.exception("request %s failed", r.request_id)
                r = rq.mark_internal_error(r, str(exc), now)
            for d in duplicates:
                dup = rq.mark_duplicate(d, r)
                dup = rq.apply_packaging(dup, [(u, True) for u in dup.download_urls], 0, now,
                                         ignore_zip_errors=rq.zip_errors_ignorable(job_id))  # fmt: skip
                table.update(rq.save_values(dup))
                run.requests.append(dup)
                run.duplicates += 1
            r = _package(r, job_id, level, out_root, now, salt)
            table.update(rq.save_values(r))
            run.requests.append(r)
    finally:
        if own_store:
            store.close()
    run.seconds = time.perf_counter() - t_start
    firsts = [
        q
        for q in run.requests
        if q.request_id in {f.request_id for f, _d in rq.group_duplicates(pending)}
    ]
    run.metrics = rq.job_metrics(len(pending), firsts, run.duplicates, int(run.seconds * 1000))
    return run


def _process(
    settings: Settings,
    table: RequestTable,
    store: ReportStore,
    r: rq.JobRequest,
    job_id: str,
    level: str,
    counters: rq.ChannelCounters,
    out_root: Path,
    now: datetime,
    salt: str,
) -> rq.JobRequest:
    r_cfg = settings.reports
    err = rq.batch_count_error(r, r_cfg.batches_per_request)
    if err is not None:
        return rq.mark_failed(r, err, now)
    r = rq.mark_processing(r)
    table.update(rq.status_update_values(r))
    data = r.request_data
    ids = (
        [data["batchId"]]
        if data.get("batchId") is not None
        else list(dict.fromkeys(data.get("batchFilter") or []))
    )
    known = sorted(store.batches(ids), key=lambda b: b.batch_id)  # deterministic (Spark: any order)
    if not known:
        return rq.mark_failed(r, rq.MSG_NO_DATA, now)
    collections = store.collections([b.course_id for b in known])
    live = [
        b
        for b in known
        if (c := collections.get(b.course_id)) is not None and c.status != "Retired"
    ]
    if not live:
        return rq.mark_failed(r, rq.MSG_RETIRED_COLLECTION, now)
    done = set(rq.completed_batch_ids(r))
    budget = rq.batch_budget(counters, r.requested_channel)
    results: list[rq.BatchResult] = []
    t0 = time.perf_counter()
    for b in (b for b in live if b.batch_id not in done):
        if not budget.allows(r_cfg.batches_per_channel, r_cfg.bytes_per_channel):
            results.append(rq.BatchResult(b.batch_id, rq.PROCESSING))
            continue
        [out] = run_batches(
            settings, job_id, [b.batch_id], out_root, requested_org=r.requested_channel,
            request_id=r.request_id, store=store, decrypt=lambda v: decrypt_pii(v, salt),
        )  # fmt: skip
        if out.error is not None or out.path is None:
            results.append(rq.BatchResult(b.batch_id, rq.FAILED, message=out.error))
            budget = budget.after_batch(None)
            continue
        try:
            pem = None
            if level == packaging.PUBLIC_KEY_ENCRYPTED_DATASET:
                pem = _public_key(store, r.requested_channel)
            secured = packaging.encrypt_csv(
                out.path.read_bytes(),
                level,
                password=r.encryption_key,
                public_key_pem=pem,
                salt=salt,
            )
        except packaging.PackagingError as exc:
            results.append(rq.BatchResult(b.batch_id, rq.FAILED, message=exc.batch_message))
            budget = budget.after_batch(None)
            continue
        out.path.write_bytes(secured)
        rel = str(out.path.relative_to(out_root))
        results.append(rq.BatchResult(b.batch_id, rq.SUCCESS, rel, "", out.size))
        budget = budget.after_batch(out.size)
    return rq.apply_batch_results(r, results, int((time.perf_counter() - t0) * 1000), now)


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
        path = out_root / url
        try:
            made = packaging.zip_secured(
                path.read_bytes(), url, level, password=r.encryption_key, salt=salt
            )
            if made is not None:
                data, name = made
                (out_root / name).write_bytes(data)
            outcomes.append((url, True))
        except (packaging.PackagingError, OSError) as exc:
            logger.warning("packaging %s failed: %s", url, exc)
            outcomes.append((url, False))
    return rq.apply_packaging(r, outcomes, int((time.perf_counter() - t0) * 1000), now,
                              ignore_zip_errors=rq.zip_errors_ignorable(job_id))  # fmt: skip
