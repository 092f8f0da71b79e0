"""The exact texts assessment-aggregator writes, as Sunbird's Java code formats them.

``grand_total`` (Java's ``DecimalFormat("0.0#")``), the ``agg_details`` dates (Gson's default
``Date`` text on Java 11), the ``agg_details`` entries (Gson) and the certificate request.
The Java/Gson primitives come from :mod:`lernflow.kernel.java`. Pure.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Final

from lernflow.flows.assessment_aggregator.events import BatchAssessEvent, RecomputeRequest
from lernflow.flows.assessment_aggregator.rows import StoredScore
from lernflow.kernel.java import gson_string, java_double_to_string


def format_grand_total(total_score: float, total_max_score: float) -> str:
    """``grand_total`` = ``fmt(total_score) + "/" + fmt(total_max_score)``.

    See docs/flows/assessment-aggregator.md#7-score.

    ``fmt`` is Java's ``DecimalFormat("0.0#")``: 1 or 2 decimals, HALF_EVEN on the exact binary
    value, no grouping (``1.33/2.0``, ``0.125`` → ``0.12``, ``2.675`` → ``2.67``).
    """
    return f"{_decimal_format(total_score)}/{_decimal_format(total_max_score)}"


def _decimal_format(value: float) -> str:
    if not math.isfinite(value):
        msg = f"grand_total of a non-finite value {value}"
        raise ValueError(msg)
    with localcontext() as ctx:
        ctx.prec = 400  # enough for every finite double with 2 decimals
        rounded = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    text = format(rounded, "f")
    return text[:-1] if text.endswith("0") else text


_MONTHS: Final = "JanFebMarAprMayJunJulAugSepOctNovDec"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _civil_utc(epoch_millis: int) -> tuple[int, int, int, int, int, int]:
    """(year, month, day, hour, minute, second) in UTC for any 64-bit ms value."""
    days, rem = divmod(epoch_millis // 1000, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day, rem // 3600, rem % 3600 // 60, rem % 60


def format_agg_date(epoch_millis: int, tz: tzinfo = UTC) -> str:
    """Gson's default ``Date`` text on Java 11 (``MMM d, y, h:mm:ss a``, en_US), no milliseconds.

    Example: ``1587988642000`` → ``Apr 27, 2020, 11:57:22 AM`` in UTC. This is used for
    ``agg_details.last_attempted_on`` (step 3 of
    docs/flows/assessment-aggregator.md#10-best-score-aggregation). Dates outside Python's
    datetime range are formatted in UTC on the proleptic Gregorian calendar.
    """
    try:
        dt = (_EPOCH + timedelta(milliseconds=epoch_millis)).astimezone(tz)
        fields = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)
    except OverflowError:
        fields = _civil_utc(epoch_millis)
    year, month, day, hour, minute, second = fields
    year_of_era = year if year > 0 else 1 - year
    hour12 = hour % 12 or 12
    half = "AM" if hour < 12 else "PM"
    month_name = _MONTHS[3 * month - 3 : 3 * month]
    return f"{month_name} {day}, {year_of_era}, {hour12}:{minute:02d}:{second:02d} {half}"


def epoch_ms(value: datetime | int | None) -> int | None:
    """Epoch milliseconds of a driver timestamp. A naive ``datetime`` is taken as UTC, which is
    how the Cassandra driver returns timestamps."""
    if value is None or isinstance(value, int):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(milliseconds=1)


def agg_detail(row: StoredScore, agg_type: str, tz: tzinfo) -> str:
    """Gson text of Sunbird's ``AggDetails``; null fields are omitted as Gson does."""
    parts = [f'"attempt_id":{gson_string(row.attempt_id)}']
    if row.last_attempted_on is not None:
        parts.append(
            f'"last_attempted_on":{gson_string(format_agg_date(row.last_attempted_on, tz))}'
        )
    parts.append(f'"score":{java_double_to_string(row.total_score or 0.0)}')
    parts.append(f'"content_id":{gson_string(row.content_id)}')
    parts.append(f'"max_score":{java_double_to_string(row.total_max_score or 0.0)}')
    parts.append(f'"type":{gson_string(agg_type)}')
    return "{" + ",".join(parts) + "}"


def certificate_request(
    event: BatchAssessEvent | RecomputeRequest,
    attempt_id: str,
    *,
    now_ms: int,
    request_id: str,
) -> str:
    """The ``BE_JOB_REQUEST`` for ``<env>.issue.certificate.request``, byte for byte.

    See docs/flows/assessment-aggregator.md#11-certificate-request.

    ``ets`` is ``now_ms`` and ``mid`` is ``LP.<ets>.<request_id>``, where ``request_id`` is a
    random UUID from the caller. The ids are JSON-escaped
    (docs/flows/assessment-aggregator.md#14-what-we-fix-over-sunbird).
    """

    def q(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    return (
        f'{{"eid": "BE_JOB_REQUEST","ets": {now_ms},"mid": {q(f"LP.{now_ms}.{request_id}")},'
        '"actor": {"id": "Course Certificate Generator","type": "System"},'
        '"context": {"pdata": {"ver": "1.0","id": "org.sunbird.platform"}},'
        f'"object": {{"id": {q(f"{event.batch_id}_{event.course_id}")},'
        '"type": "CourseCertificateGeneration"},'
        f'"edata": {{"userIds": [{q(event.user_id)}],"action": "issue-certificate",'
        f'"iteration": 1, "trigger": "auto-issue","batchId": {q(event.batch_id)},'
        f'"reIssue": false,"courseId": {q(event.course_id)},"attemptId":{q(attempt_id)}}}}}'
    )
