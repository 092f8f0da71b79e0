"""Running a report: batches in, CSV files out (``lernflow report …``).

One pass per requested batch: resolve the batch and its collection (``course_batch`` and the
published hierarchy), read the batch's enrolments and the rows the report needs, call the
pure report module, write the CSV at Sunbird's path. The user cache is read per batch, for
that batch's learners only, while the enrolments are still being read (``ReportStore.
enrolments_and_users``); the CSV is written to its file as it is rendered.

Beyond Sunbird: the learners of a batch who are left out because their ``user:<id>`` hash is
missing are counted for every batch (and listed with ``--explain``); Sunbird drops them
silently, which is how a report ends up empty.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lernflow.config import Settings
from lernflow.reports import csvout, progress, response, userinfo
from lernflow.reports.model import Batch, ReportContext
from lernflow.reports.paths import check_id, under_root
from lernflow.reports.sources import BatchRow, Collection, ReportStore

logger = logging.getLogger(__name__)

JOBS = {
    "progress-exhaust": "progress",
    "response-exhaust": "response",
    "userinfo-exhaust": "userinfo",
}


@dataclass
class BatchOutcome:
    """What one batch produced."""

    batch_id: str
    path: Path | None = None
    rows: int = 0
    size: int = 0
    dropped: list[str] = field(default_factory=list)
    error: str | None = None


def _batch(row: BatchRow, coll: Collection, requested_org: str | None, custodian: str) -> Batch:
    return Batch(
        custodian_org_id=custodian,
        batch_id=row.batch_id, collection_id=row.course_id, batch_name=row.name or "",
        collection_name=coll.name, requested_org_id=requested_org or coll.channel,
        collection_org_id=coll.channel, user_consent=coll.user_consent,
    )  # fmt: skip


def run_batches(
    settings: Settings,
    job_id: str,
    batch_ids: Sequence[str],
    out_dir: Path,
    *,
    course_id: str | None = None,
    requested_org: str | None = None,
    request_id: str | None = None,
    decrypt: Callable[[str], str] = lambda v: v,
    progress: Callable[[int, int, int], None] | None = None,
    store: ReportStore | None = None,
    now: datetime | None = None,
) -> list[BatchOutcome]:
    """Write one CSV per batch; return what each batch produced (or why it failed).

    Every batch id and the request id must be path-safe (:func:`reports.paths.check_id`):
    :class:`reports.paths.UnsafeIdError` before anything is read or written otherwise.
    """
    if job_id not in JOBS:
        msg = f"unknown report {job_id!r}; known: {', '.join(JOBS)}"
        raise ValueError(msg)
    for batch_id in batch_ids:
        check_id("--batch-id", batch_id)
    if request_id:
        check_id("request_id", request_id)
    own = store is None
    store = store or ReportStore(settings)
    now = now or datetime.now(UTC)
    ctx = ReportContext()
    try:
        run = _Run(
            settings=settings, job_id=job_id, store=store, out_dir=out_dir,
            requested_org=requested_org, request_id=request_id, decrypt=decrypt, now=now,
            ctx=ctx, custodian=store.custodian_org() or "",
        )  # fmt: skip
        return _run_rows(run, batch_ids, course_id, progress)
    finally:
        if own:
            store.close()


@dataclass(frozen=True)
class _Run:
    """What every batch of one ``run_batches`` call shares."""

    settings: Settings
    job_id: str
    store: ReportStore
    out_dir: Path
    requested_org: str | None
    request_id: str | None
    decrypt: Callable[[str], str]
    now: datetime
    ctx: ReportContext
    custodian: str


def _run_rows(
    run: _Run,
    batch_ids: Sequence[str],
    course_id: str | None,
    report_progress: Callable[[int, int, int], None] | None,
) -> list[BatchOutcome]:
    """Unknown batches first (``No data found``), then each found batch in the store's order;
    ``report_progress(done, total, rows)`` after every batch whose collection is live."""
    store = run.store
    rows = [r for r in store.batches(batch_ids) if course_id is None or r.course_id == course_id]
    found = {r.batch_id for r in rows}
    collections = store.collections([r.course_id for r in rows])
    out = [
        BatchOutcome(b, error="No data found") for b in dict.fromkeys(batch_ids) if b not in found
    ]
    done_rows = 0
    for i, row in enumerate(rows):
        coll = collections.get(row.course_id)
        if coll is None or coll.status == "Retired":
            reason = "The request is made for retired collection" if coll else "No data found"
            out.append(BatchOutcome(row.batch_id, error=reason))
            continue
        outcome = _run_batch(run, row, coll)
        out.append(outcome)
        done_rows += outcome.rows
        if report_progress is not None:
            report_progress(i + 1, len(rows), done_rows)
    return out


@contextmanager
def _few_collections() -> Iterator[None]:
    """Rarer cyclic garbage collections while a batch is built: its rows are 100,000s of
    acyclic objects that every collection of the oldest generation walks again (5 of 16 s
    of a 100,000-enrolment batch went to the collector; docs/flows/progress-exhaust.md §15).
    The previous thresholds are restored after the batch. The caller's cyclic garbage is
    collected first: with rarer collections it would otherwise live through the whole batch
    (the benchmark's seeding left 240 MiB of it, peak RSS 930 instead of 690 MiB)."""
    before = gc.get_threshold()
    gc.collect()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run_batch(run: _Run, row: BatchRow, coll: Collection) -> BatchOutcome:
    """One live batch: its report, written as a CSV at Sunbird's path (or why it failed)."""
    with _few_collections():
        return _write_batch(run, row, coll)


def _write_batch(run: _Run, row: BatchRow, coll: Collection) -> BatchOutcome:
    batch = _batch(row, coll, run.requested_org, run.custodian)
    result = _one(run.settings, run.job_id, run.store, batch, run.ctx, run.decrypt)
    if result.error is not None:
        return BatchOutcome(row.batch_id, error=result.error)
    header, data, dropped = result.table
    rel = csvout.report_path(
        "", run.job_id, run.request_id, row.batch_id, JOBS[run.job_id], run.now
    )
    path = under_root(run.out_dir, rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = csvout.write_csv(path, header, data, neutralise=run.settings.reports.neutralise_formulas)
    return BatchOutcome(row.batch_id, path, len(data), size, dropped)


@dataclass
class _Result:
    table: tuple[list[str], list[dict[str, object]], list[str]]
    error: str | None = None


def _one(
    settings: Settings,
    job_id: str,
    store: ReportStore,
    batch: Batch,
    ctx: ReportContext,
    decrypt: Callable[[str], str],
) -> _Result:

    t0 = time.perf_counter()
    enrolments, users = store.enrolments_and_users(batch.batch_id)
    learners = [e.userid for e in enrolments]
    try:
        if job_id == "progress-exhaust":
            hierarchy = store.hierarchy(batch.collection_id)
            scored = hierarchy is not None and bool(progress.assessment_content_ids(hierarchy, ctx))
            table = progress.progress_rows(
                batch, enrolments, users, hierarchy, store.optional_nodes(batch.collection_id),
                store.attempts(batch.collection_id, learners) if scored else [], ctx,
            )  # fmt: skip
        elif job_id == "response-exhaust" and settings.reports.response_version == "v2":
            table = response.response_rows_v2(
                batch, enrolments, users,
                store.attempts(batch.collection_id, learners),
                _archive(settings, batch), store.hierarchy(batch.collection_id), ctx,
            )  # fmt: skip
        elif job_id == "response-exhaust":
            table = response.response_rows(
                batch, enrolments, users,
                store.attempts(batch.collection_id, learners),
                store.hierarchy(batch.collection_id), ctx,
            )  # fmt: skip
        else:
            table = userinfo.userinfo_rows(
                batch, enrolments, users, store.consents(learners), decrypt, ctx
            )
    except Exception as exc:  # a batch failure is reported, the others go on (as Sunbird)
        if type(exc).__name__ != "BatchFailed":
            logger.exception("report %s failed for batch %s", job_id, batch.batch_id)
        return _Result(([], [], []), error=str(exc) or type(exc).__name__)
    logger.info(
        "%s %s: %d rows in %.2fs", job_id, batch.batch_id, len(table[1]), time.perf_counter() - t0
    )
    return _Result(table)


def _archive(settings: Settings, batch: Batch) -> list[Any] | None:
    """Archived attempts of the batch (response V2): every file the archive glob matches
    under ``LERNFLOW_REPORTS_ARCHIVE_DIR``; None when there is none (Cassandra rows only)."""

    pattern = response.archive_glob(
        batch.batch_id, batch.collection_id, settings.reports.archive_path
    )
    files = sorted(settings.reports.archive_dir.glob(pattern))
    if not files:
        return None
    return response.read_archive(f.read_text() for f in files)
