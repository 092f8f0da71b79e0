"""``job_request`` rows and their life cycle, as Sunbird's exhaust jobs drive them (B1, B4;
docs/flows/progress-exhaust.md).

Pure: no database, no clock, no randomness — callers pass ``now`` and persist what these
functions return. Every transition returns a *new* :class:`JobRequest`; inputs are never
mutated.

Per run of one job (OnDemand mode), behaviour-identical to ``BaseCollectionExhaustJob``:

1. ``pending = select_pending(rows, job_id, batch_number)`` (B4.1 step 1, DB order).
2. ``groups = group_duplicates(pending)``; each ``(first, duplicates)`` pair is handled in
   order; only ``first`` is processed (B4.1 step 2).
3. For each ``first`` (``counters`` starts as ``ChannelCounters()``):

   * ``level = security_level(prefs, job_id)``; ``pii = pii_fields(prefs)`` (step 1).
   * if ``channel_limited(counters, channel, ...)``: ``r = defer_channel_limited(r)``; save.
   * if ``security_level_error(job_id, level, pii, csv_columns)``: ``r = mark_failed(...)``
     and **carry on** (step 3 quirk).
   * if ``validate_request(r, job_id)`` gives a message: ``r = mark_failed(r, msg, now)``;
     save.
   * else (the "process request" part, step 5; any exception ->
     ``mark_internal_error``):
     ``batch_count_error`` -> ``mark_failed``; else ``r = mark_processing(r)`` and write
     ``status_update_values(r)``; resolve batches (resolver failure -> ``mark_failed(r,
     message)``); skip ``completed_batch_ids(r)``; run the batches with a
     ``batch_budget(counters, channel)``; ``r = apply_batch_results(r, results, ms, now)``;
     then ``counters = record_processed(counters, r.processed_batches)``.
   * duplicates: ``mark_duplicate(d, r)`` for each, saved *before* ``r`` itself.
   * save: ``apply_packaging(r, outcomes, zip_ms, now, ignore_zip_errors=...)`` then
     ``UPDATE`` with ``save_values(r)`` (step 8).

4. ``job_metrics(len(pending), saved_first_requests, duplicate_count, elapsed_ms)``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from lernflow.kernel.java import jackson_string, java_length
from lernflow.reports.packaging import (
    PASSWORD_PROTECTED_DATASET,
    PUBLIC_KEY_ENCRYPTED_DATASET,
    TEXT_KEY_ENCRYPTED_DATASET,
    download_url,
)

__all__ = [
    "ERR_MESSAGE_COLUMN_WIDTH",
    "FAILED",
    "MAX_ERROR_MESSAGE_LENGTH",
    "MAX_ITERATIONS",
    "MSG_INVALID_REQUEST",
    "MSG_NO_DATA",
    "MSG_RETIRED_COLLECTION",
    "MSG_SECURITY_LEVEL",
    "MSG_ZIP_FAILED",
    "PII_FIELDS_KEY",
    "PROCESSING",
    "SECURITY_POLICY_KEY",
    "STATUSES",
    "SUBMITTED",
    "SUCCESS",
    "USERINFO_JOB_ID",
    "BatchBudget",
    "BatchResult",
    "ChannelCounters",
    "JobRequest",
    "ProcessedBatch",
    "abbreviate_error",
    "apply_batch_results",
    "apply_packaging",
    "batch_budget",
    "batch_count_error",
    "batch_limit_message",
    "channel_limited",
    "completed_batch_ids",
    "dedup_key",
    "defer_channel_limited",
    "group_duplicates",
    "job_metrics",
    "mark_duplicate",
    "mark_failed",
    "mark_internal_error",
    "mark_processing",
    "mark_submitted",
    "mark_success",
    "parse_processed_batches",
    "pii_fields",
    "processed_batches_json",
    "record_processed",
    "request_data_json",
    "request_id",
    "save_values",
    "security_level",
    "security_level_error",
    "select_pending",
    "status_update_values",
    "submit",
    "tenant_preference_request",
    "validate_request",
    "zip_errors_ignorable",
]

STATUSES = ("SUBMITTED", "PROCESSING", "SUCCESS", "FAILED")
SUBMITTED, PROCESSING, SUCCESS, FAILED = STATUSES

MAX_ITERATIONS = 3
"""Rows with ``iteration >= 3`` are never picked again (B4.1 step 1, B9.10)."""

MAX_ERROR_MESSAGE_LENGTH = 250
"""Default ``modelParams.maxErrorMessageLength`` (exception text kept in ``Internal Server Error``)."""

ERR_MESSAGE_COLUMN_WIDTH = 300
"""``err_message`` is abbreviated to this many characters when saved (297 + ``...``)."""

USERINFO_JOB_ID = "userinfo-exhaust"
SECURITY_POLICY_KEY = "dataSecurityPolicy"
PII_FIELDS_KEY = "userPrivateFields"

MSG_INVALID_REQUEST = (
    "Request should have either of batchId, batchFilter, searchFilter or encrption key"
)
MSG_NO_DATA = "No data found"
MSG_RETIRED_COLLECTION = "The request is made for retired collection"
MSG_SECURITY_LEVEL = (
    "Request Security Level is not matching with PII fields or csvColumns CSV columns "
    "configured. Please check."
)
MSG_ZIP_FAILED = "Zip, encrypt and upload failed"

_PROTECTED_LEVELS = (
    PASSWORD_PROTECTED_DATASET,
    TEXT_KEY_ENCRYPTED_DATASET,
    PUBLIC_KEY_ENCRYPTED_DATASET,
)
_USERINFO_PII_COLUMNS = ("email", "phone", "username")


@dataclass
class JobRequest:
    """One ``job_request`` row (column names as in ``job_request_postgres.sql``).

    ``request_data`` is the parsed ``json`` column; ``download_urls`` is the ``text[]``
    column (``[]`` for NULL); ``processed_batches`` is the raw JSON text. ``batch_number``
    is the production-only column used by ``modelParams.batchNumber``.
    """

    tag: str
    request_id: str
    job_id: str
    status: str
    request_data: dict[str, Any]
    requested_by: str
    requested_channel: str
    dt_job_submitted: datetime | None
    download_urls: list[str]
    dt_file_created: datetime | None
    dt_job_completed: datetime | None
    execution_time: int | None
    err_message: str | None
    iteration: int
    encryption_key: str | None
    processed_batches: str | None
    batch_number: int | None = None


@dataclass(frozen=True)
class ProcessedBatch:
    """One entry of ``processed_batches``: ``{"channel","batchId","filePath","fileSize"}``.

    Fields absent from stored JSON are ``None`` (``fileSize``: 0), and are left out again when
    serialised (Jackson ``NON_NULL``), e.g. the channel-less entries of older rows.
    """

    channel: str | None
    batch_id: str | None
    file_path: str | None
    file_size: int = 0


@dataclass(frozen=True)
class BatchResult:
    """What processing one batch produced (``CollectionBatchResponse``).

    ``status`` is ``SUCCESS`` (``file`` = the ``.csv`` path, ``file_size`` = CSV bytes),
    ``FAILED`` (``message`` = the exception text; ``None`` stands for a Java ``null`` message)
    or ``PROCESSING`` (deferred by the per-channel limits).
    """

    batch_id: str
    status: str
    file: str = ""
    message: str | None = ""
    file_size: int = 0


@dataclass
class ChannelCounters:
    """Completed batches and CSV bytes per ``requested_channel`` within one job run (B4.1 step 4)."""

    batches: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchBudget:
    """The per-channel counters *inside* one request's batch loop (``processBatches``).

    Starts from the run's :class:`ChannelCounters` for the channel; each processed batch —
    successful or not — adds one batch and a size. A failed batch adds the size of the last
    *successful* batch of this request (Sunbird keeps that value in a variable that is only
    reassigned on success), or 0 if there was none.
    """

    batches: int
    bytes: int
    last_file_size: int = 0

    def allows(self, batch_limit: int, byte_limit: int) -> bool:
        """True when the next batch may run; otherwise its result is ``PROCESSING``."""
        return self.batches < batch_limit and self.bytes < byte_limit

    def after_batch(self, file_size: int | None) -> BatchBudget:
        """Account for one processed batch: ``file_size`` of its CSV, or ``None`` if it failed."""
        size = self.last_file_size if file_size is None else file_size
        return BatchBudget(self.batches + 1, self.bytes + size, size)


# --- Java-compatible text helpers -------------------------------------------------------


def _utf16_take(text: str, units: int) -> str:
    """First ``units`` UTF-16 code units (Java ``take``/``substring(0, n)``)."""
    if java_length(text) <= units:
        return text
    raw = text.encode("utf-16-le", "surrogatepass")[: 2 * units]
    return raw.decode("utf-16-le", "surrogatepass")


def _jackson_json(value: Any) -> str:
    """Compact JSON as Sunbird's Jackson ``JSONUtils.serialize`` writes it.

    Key order is kept, non-ASCII is written raw, control characters use upper-case
    ``\\uXXXX``. Floats use Python's ``repr`` (Jackson would write e.g. ``1.0E20``).
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return jackson_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"non-finite number {value!r} cannot be written as JSON"
            raise ValueError(msg)
        return repr(value)
    if isinstance(value, Mapping):
        items = (f"{jackson_string(str(k))}:{_jackson_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, Iterable):
        return "[" + ",".join(_jackson_json(v) for v in value) + "]"
    msg = f"cannot serialise {type(value).__name__} as JSON"
    raise TypeError(msg)


def _java_to_string(value: Any) -> str:
    """How a JSON value prints when the JVM string-concatenates it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return str(value)


def _md5_upper_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


# --- B1: submission ---------------------------------------------------------------------


def request_id(
    dataset: str,
    tag: str,
    requested_by: str,
    channel: str,
    day: date,
    dataset_type: str | None = None,
) -> str:
    """Upper-case hex MD5 of ``dataset|tag|requestedBy|channel|yyyy-MM-dd[|type]`` (B1).

    ``tag`` is the tag as submitted (without ``:<channel>``); ``day`` is the submission date
    in the API server's time zone.
    """
    parts = [dataset, tag, requested_by, channel, f"{day.year:04d}-{day.month:02d}-{day.day:02d}"]
    if dataset_type is not None:
        parts.append(dataset_type)
    return _md5_upper_hex("|".join(parts))


def submit(
    dataset: str,
    tag: str,
    requested_by: str,
    channel: str,
    dataset_config: dict[str, Any],
    encryption_key: str | None,
    now: datetime,
    existing: JobRequest | None,
) -> JobRequest:
    """The row the submit API leaves behind (B1).

    ``existing`` is the row already stored under the same ``request_id`` and
    ``"<tag>:<channel>"`` (look it up with :func:`request_id` of ``now.date()``), or ``None``:

    * none -> a new ``SUBMITTED`` row, iteration 0;
    * ``FAILED`` (any case) -> reset: ``status=SUBMITTED``, ``dt_job_submitted=now`` and
      job id, request data, requester, channel and key overwritten; ``iteration`` and every
      other column (URLs, error, processed batches, ...) kept;
    * any other status -> ``existing`` unchanged (a request is computed once per day).

    ``datasetConfig.type``, when present, is appended to the request-id key.
    """
    dataset_type = _java_to_string(dataset_config["type"]) if "type" in dataset_config else None
    rid = request_id(dataset, tag, requested_by, channel, now.date(), dataset_type)
    stored_tag = f"{tag}:{channel}"
    if existing is None:
        return JobRequest(
            tag=stored_tag,
            request_id=rid,
            job_id=dataset,
            status=SUBMITTED,
            request_data=dict(dataset_config),
            requested_by=requested_by,
            requested_channel=channel,
            dt_job_submitted=now,
            download_urls=[],
            dt_file_created=None,
            dt_job_completed=None,
            execution_time=None,
            err_message=None,
            iteration=0,
            encryption_key=encryption_key,
            processed_batches=None,
        )
    if existing.request_id != rid or existing.tag != stored_tag:
        msg = f"existing row {existing.request_id}/{existing.tag} is not {rid}/{stored_tag}"
        raise ValueError(msg)
    if existing.status.upper() == FAILED:
        return replace(
            existing,
            dt_job_submitted=now,
            job_id=dataset,
            status=SUBMITTED,
            request_data=dict(dataset_config),
            requested_by=requested_by,
            requested_channel=channel,
            encryption_key=encryption_key,
        )
    return existing


# --- B4.1: selection and duplicates -----------------------------------------------------


def select_pending(
    rows: Sequence[JobRequest], job_id: str, batch_number: int | None = None
) -> list[JobRequest]:
    """Rows a run of ``job_id`` picks up, in the given (database) order (B4.1 step 1).

    ``job_id`` equal, ``iteration < 3``, status exactly ``SUBMITTED`` or ``FAILED``, and
    ``batch_number`` equal when one is configured (rows without one are then skipped). A
    NULL ``iteration`` is excluded by Sunbird's SQL; map it to ``MAX_ITERATIONS`` or drop
    the row when reading, not to 0.
    """
    return [
        r
        for r in rows
        if r.job_id == job_id
        and r.iteration < MAX_ITERATIONS
        and r.status in (SUBMITTED, FAILED)
        and (batch_number is None or r.batch_number == batch_number)
    ]


def request_data_json(request_data: Mapping[str, Any]) -> str:
    """``request_data`` as the submit API stores it: compact Jackson-style JSON, keys in order."""
    return _jackson_json(request_data)


def dedup_key(r: JobRequest) -> str:
    """Upper-hex MD5 of ``request_data|encryption_key-or-""|requested_by`` (B4.1 step 2).

    Tag and channel are not part of it. Sunbird hashes the stored JSON text; this hashes
    :func:`request_data_json`, which equals the text the API writes (rows typed in by hand
    with other spacing would be told apart upstream but grouped here).
    """
    key = "|".join(
        [request_data_json(r.request_data), r.encryption_key or "", _java_to_string(r.requested_by)]
    )
    return _md5_upper_hex(key)


def group_duplicates(rows: Sequence[JobRequest]) -> list[tuple[JobRequest, list[JobRequest]]]:
    """``(first, duplicates)`` for every distinct :func:`dedup_key`, in order of first appearance.

    The firsts, in this order, are exactly the requests Sunbird processes; ``duplicates``
    (later rows with the same key, possibly empty) copy the first's outcome
    (:func:`mark_duplicate`). The duplicate count of the run is
    ``sum(len(d) for _, d in groups)``.
    """
    groups: dict[str, list[JobRequest]] = {}
    for r in rows:
        groups.setdefault(dedup_key(r), []).append(r)
    return [(members[0], members[1:]) for members in groups.values()]


def mark_duplicate(duplicate: JobRequest, reference: JobRequest) -> JobRequest:
    """``duplicate`` with the first request's status, URLs, timings, batches, iteration and error.

    Use the reference as it stands after processing but *before* its own packaging (Sunbird
    saves duplicates first; their URLs then go through :func:`apply_packaging` too, with no
    zip written for them, which rewrites ``.csv`` to ``.zip`` all the same).
    """
    return replace(
        duplicate,
        status=reference.status,
        download_urls=list(reference.download_urls),
        execution_time=reference.execution_time,
        dt_job_completed=reference.dt_job_completed,
        processed_batches=reference.processed_batches,
        iteration=reference.iteration,
        err_message=reference.err_message,
    )


# --- B4.2: tenant preferences and checks ------------------------------------------------


def tenant_preference_request(org_id: str, key: str) -> dict[str, Any]:
    """Body of the tenant-preference read (``key`` = ``dataSecurityPolicy``/``userPrivateFields``)."""
    return {"request": {"orgId": org_id, "key": key}}


def _preference_data(preferences: Mapping[str, Any] | None) -> Mapping[str, Any]:
    node: Any = preferences or {}
    for key in ("result", "response", "data"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def security_level(preferences: Mapping[str, Any] | None, job_id: str) -> str:
    """``data.job.<jobId>.level`` if non-empty, else ``data.level``, else ``""`` (B4.2 step 1).

    ``preferences`` is the parsed ``dataSecurityPolicy`` response; pass ``None`` for an HTTP
    error (documented: level ``""``).
    """
    data = _preference_data(preferences)
    jobs = data.get("job")
    job = jobs.get(job_id) if isinstance(jobs, Mapping) else None
    job_level = job.get("level") if isinstance(job, Mapping) else None
    if isinstance(job_level, str) and job_level:
        return job_level
    level = data.get("level")
    return level if isinstance(level, str) else ""


def pii_fields(preferences: Mapping[str, Any] | None) -> list[str]:
    """``result.response.data.piiFields`` of the ``userPrivateFields`` response, or ``[]``."""
    fields = _preference_data(preferences).get("piiFields")
    return [f for f in fields if isinstance(f, str)] if isinstance(fields, list) else []


def security_level_error(
    job_id: str, level: str, pii: Sequence[str], csv_columns: Sequence[str]
) -> str | None:
    """The CSV-column/PII check (B4.2 step 3, B7.4): :data:`MSG_SECURITY_LEVEL` or ``None``.

    Only userinfo checks: it passes only for the three protected levels and only if each of
    ``email``, ``phone``, ``username`` is in both ``csvColumns`` and ``piiFields``. On
    failure Sunbird marks the request FAILED and keeps processing it.
    """
    if job_id != USERINFO_JOB_ID:
        return None
    if level in _PROTECTED_LEVELS and all(
        c in csv_columns and c in pii for c in _USERINFO_PII_COLUMNS
    ):
        return None
    return MSG_SECURITY_LEVEL


def validate_request(r: JobRequest, job_id: str) -> str | None:
    """B4.2 step 4: :data:`MSG_INVALID_REQUEST` or ``None``.

    ``request_data`` needs a non-null ``batchId``, ``searchFilter`` or ``batchFilter`` (an
    empty string or list counts); the userinfo job also needs a non-null
    ``encryption_key`` (an empty key counts).
    """
    data = r.request_data
    if all(data.get(k) is None for k in ("batchId", "searchFilter", "batchFilter")):
        return MSG_INVALID_REQUEST
    if job_id == USERINFO_JOB_ID and r.encryption_key is None:
        return MSG_INVALID_REQUEST
    return None


def batch_limit_message(limit: int) -> str:
    """``Number of batches in request exceeded. It should be within <N>``."""
    return f"Number of batches in request exceeded. It should be within {limit}"


def batch_count_error(r: JobRequest, limit: int) -> str | None:
    """B4.2 step 5: too many batches -> :func:`batch_limit_message`, else ``None``.

    Counts 1 for a ``batchId``, else the raw length of ``batchFilter`` (duplicates and
    unknown ids included), else 0. (A ``batchFilter`` that is not a list makes Sunbird's
    JSON mapping throw, i.e. an ``Internal Server Error``; that check is the caller's.)
    """
    data = r.request_data
    if data.get("batchId") is not None:
        count = 1
    else:
        batch_filter = data.get("batchFilter")
        count = len(batch_filter) if isinstance(batch_filter, list) else 0
    return batch_limit_message(limit) if count > limit else None


# --- per-channel limits -----------------------------------------------------------------


def channel_limited(c: ChannelCounters, channel: str, batch_limit: int, byte_limit: int) -> bool:
    """True if ``channel`` already reached a limit in this run (B4.2 step 2).

    Limits: ``exhaust.batches.limit.per.channel`` (prod 30) and
    ``exhaust.file.size.limit.per.channel`` (prod 1073741824 bytes); reaching either stops.
    """
    return c.batches.get(channel, 0) >= batch_limit or c.bytes.get(channel, 0) >= byte_limit


def record_processed(
    c: ChannelCounters, processed: Sequence[ProcessedBatch] | str | None
) -> ChannelCounters:
    """Counters after a request that went through batch processing.

    Sunbird adds *all* entries of the request's ``processed_batches`` (including batches
    completed in earlier runs) after ``processRequest`` returns — also when it failed, as
    long as the request passed :func:`validate_request` and raised nothing. Entries without a
    channel are skipped (Sunbird would hit a null channel on the next comparison).
    """
    entries = (
        parse_processed_batches(processed)
        if processed is None or isinstance(processed, str)
        else processed
    )
    batches = dict(c.batches)
    sizes = dict(c.bytes)
    for entry in entries:
        if entry.channel is None:
            continue
        batches[entry.channel] = batches.get(entry.channel, 0) + 1
        sizes[entry.channel] = sizes.get(entry.channel, 0) + entry.file_size
    return ChannelCounters(batches=batches, bytes=sizes)


def batch_budget(c: ChannelCounters, channel: str) -> BatchBudget:
    """The starting :class:`BatchBudget` of a request of ``channel``."""
    return BatchBudget(c.batches.get(channel, 0), c.bytes.get(channel, 0))


# --- processed_batches ------------------------------------------------------------------


def parse_processed_batches(text: str | None) -> list[ProcessedBatch]:
    """Entries of a ``processed_batches`` value (``None`` and ``"[]"`` -> ``[]``).

    Malformed JSON raises ``ValueError`` (Sunbird: an ``Internal Server Error`` for the request).
    """
    if text is None or text == "[]":
        return []
    raw = json.loads(text)
    if not isinstance(raw, list):
        msg = "processed_batches is not a JSON list"
        raise ValueError(msg)
    out: list[ProcessedBatch] = []
    for item in raw:
        entry = item if isinstance(item, Mapping) else {}
        size = entry.get("fileSize")
        out.append(
            ProcessedBatch(
                channel=_opt_str(entry.get("channel")),
                batch_id=_opt_str(entry.get("batchId")),
                file_path=_opt_str(entry.get("filePath")),
                file_size=int(size) if isinstance(size, int | float) else 0,
            )
        )
    return out


def _opt_str(value: Any) -> str | None:
    return None if value is None else _java_to_string(value)


def processed_batches_json(batches: Sequence[ProcessedBatch]) -> str:
    """``[{"channel":…,"batchId":…,"filePath":"….csv","fileSize":N}]``, compact, nulls omitted."""
    items: list[str] = []
    for b in batches:
        obj: dict[str, Any] = {}
        if b.channel is not None:
            obj["channel"] = b.channel
        if b.batch_id is not None:
            obj["batchId"] = b.batch_id
        if b.file_path is not None:
            obj["filePath"] = b.file_path
        obj["fileSize"] = b.file_size
        items.append(_jackson_json(obj))
    return "[" + ",".join(items) + "]"


def completed_batch_ids(r: JobRequest) -> list[str]:
    """Batch ids already completed in earlier runs; those batches are not processed again."""
    return [b.batch_id for b in parse_processed_batches(r.processed_batches) if b.batch_id]


# --- B4.2 steps 5-8: transitions --------------------------------------------------------


def mark_processing(r: JobRequest) -> JobRequest:
    """Status ``PROCESSING`` (then written with :func:`status_update_values`)."""
    return replace(r, status=PROCESSING)


def mark_failed(
    r: JobRequest, message: str, now: datetime, processed_batches: str | None = None
) -> JobRequest:
    """``FAILED``: ``dt_job_completed=now``, ``iteration+1``, ``err_message=message`` (step 7).

    ``processed_batches`` replaces the stored value only when given.
    """
    return replace(
        r,
        status=FAILED,
        dt_job_completed=now,
        iteration=r.iteration + 1,
        err_message=message,
        processed_batches=r.processed_batches if processed_batches is None else processed_batches,
    )


def mark_internal_error(
    r: JobRequest, message: str, now: datetime, max_length: int = MAX_ERROR_MESSAGE_LENGTH
) -> JobRequest:
    """Any exception while handling the request: ``Internal Server Error: <message[:max]>`` (step 6).

    ``message`` is the exception's message (``str(exc)``); ``max_length`` is
    ``modelParams.maxErrorMessageLength``.
    """
    return mark_failed(r, f"Internal Server Error: {_utf16_take(message, max_length)}", now)


def mark_submitted(r: JobRequest, processed_batches: str) -> JobRequest:
    """Back to ``SUBMITTED`` with the given ``processed_batches`` (nothing else changes)."""
    return replace(r, status=SUBMITTED, processed_batches=processed_batches)


def defer_channel_limited(r: JobRequest) -> JobRequest:
    """The channel already hit its limit: ``SUBMITTED`` with ``processed_batches="[]"`` (step 2).

    Earlier progress stored in ``processed_batches`` is lost (B9.9).
    """
    return mark_submitted(r, "[]")


def mark_success(
    r: JobRequest, completed: Sequence[ProcessedBatch], execution_time_ms: int, now: datetime
) -> JobRequest:
    """``SUCCESS``: URLs of all completed batches (earlier ones first), time, batches JSON.

    ``iteration`` and ``err_message`` are left as they are.
    """
    return replace(
        r,
        status=SUCCESS,
        download_urls=[b.file_path or "" for b in completed],
        execution_time=execution_time_ms,
        dt_job_completed=now,
        processed_batches=processed_batches_json(completed),
    )


def apply_batch_results(
    r: JobRequest, results: Sequence[BatchResult], execution_time_ms: int, now: datetime
) -> JobRequest:
    """The request's outcome from its batch results (B4.2 step 5).

    Completed = earlier ``processed_batches`` + this run's successes (channel =
    ``requested_channel``). No results -> FAILED ``No data found`` (batches untouched); any
    FAILED -> FAILED with the failure messages joined by ``,`` and the completed batches;
    any PROCESSING -> SUBMITTED with the completed batches; else SUCCESS.
    """
    completed = parse_processed_batches(r.processed_batches) + [
        ProcessedBatch(r.requested_channel, b.batch_id, b.file, b.file_size)
        for b in results
        if b.status == SUCCESS
    ]
    if not results:
        return mark_failed(r, MSG_NO_DATA, now)
    failed = [b for b in results if b.status == FAILED]
    if failed:
        message = ",".join(_java_to_string(b.message) for b in failed)
        return mark_failed(r, message, now, processed_batches_json(completed))
    if any(b.status == PROCESSING for b in results):
        return mark_submitted(r, processed_batches_json(completed))
    return mark_success(r, completed, execution_time_ms, now)


def zip_errors_ignorable(job_id: str) -> bool:
    """Zip/encrypt failures keep the ``.csv`` URL, except for userinfo (request FAILED)."""
    return job_id != USERINFO_JOB_ID


def apply_packaging(
    r: JobRequest,
    outcomes: Sequence[tuple[str, bool]],
    zip_time_ms: int,
    now: datetime,
    *,
    ignore_zip_errors: bool,
) -> JobRequest:
    """Rewrite the URLs after packaging each one (step 8).

    ``outcomes`` holds ``(url, packaged_ok)`` for every URL of ``r.download_urls`` in order
    (``packaged_ok`` is True also for a level that writes no zip). OK -> ``.csv`` becomes
    ``.zip``; failed -> the URL unchanged when ``ignore_zip_errors``, otherwise ``""`` and
    the request marked FAILED ``Zip, encrypt and upload failed`` (once per failed URL, so
    ``iteration`` grows each time). ``zip_time_ms`` is added to ``execution_time``.
    """
    urls: list[str] = []
    for url, ok in outcomes:
        if ok:
            urls.append(download_url(url))
        elif ignore_zip_errors:
            urls.append(url)
        else:
            r = mark_failed(r, MSG_ZIP_FAILED, now)
            urls.append("")
    return replace(r, download_urls=urls, execution_time=zip_time_ms + (r.execution_time or 0))


def abbreviate_error(message: str | None, width: int = ERR_MESSAGE_COLUMN_WIDTH) -> str:
    """``StringUtils.abbreviate(message or "", width)``: longer text -> first ``width-3`` + ``...``."""
    text = message or ""
    if java_length(text) <= width:
        return text
    return _utf16_take(text, width - 3) + "..."


def status_update_values(r: JobRequest) -> dict[str, Any]:
    """Column values of the ``PROCESSING`` update (``WHERE tag=? AND request_id=?``)."""
    return {
        "iteration": r.iteration,
        "status": r.status,
        "dt_job_completed": r.dt_job_completed,
        "execution_time": r.execution_time or 0,
        "err_message": abbreviate_error(r.err_message),
        "tag": r.tag,
        "request_id": r.request_id,
    }


def save_values(r: JobRequest) -> dict[str, Any]:
    """Column values of the final update (step 8); ``dt_file_created`` is always NULL."""
    return {
        "iteration": r.iteration,
        "status": r.status,
        "download_urls": list(r.download_urls),
        "dt_file_created": None,
        "dt_job_completed": r.dt_job_completed,
        "execution_time": r.execution_time or 0,
        "err_message": abbreviate_error(r.err_message),
        "processed_batches": r.processed_batches if r.processed_batches is not None else "[]",
        "tag": r.tag,
        "request_id": r.request_id,
    }


def job_metrics(
    total_requests: int,
    processed: Sequence[JobRequest],
    duplicate_requests: int,
    elapsed_ms: int,
) -> list[dict[str, Any]]:
    """The run's metric list (B4.2 step 9).

    ``processed`` are the non-duplicate requests as saved; success/failed counts ignore
    duplicates, ``total_requests`` includes them. ``time-taken-secs`` is whole seconds as a
    float (``ms / 1000`` in integer arithmetic).
    """
    return [
        {"id": "total-requests", "value": total_requests},
        {"id": "success-requests", "value": sum(r.status.upper() == SUCCESS for r in processed)},
        {"id": "failed-requests", "value": sum(r.status.upper() == FAILED for r in processed)},
        {"id": "duplicate-requests", "value": duplicate_requests},
        {"id": "time-taken-secs", "value": float(elapsed_ms // 1000)},
    ]
