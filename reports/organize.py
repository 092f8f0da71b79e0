"""What the three course reports share (B4.4, B4.5, B9; docs/flows/progress-exhaust.md).

* ``select_learners`` — B4.4 steps 1-3 for one batch: the enrolment filters, the **inner** join
  with the Redis user cache (learners without a ``user:<id>`` hash are dropped; their ids are
  returned so the caller can report them) and ``filterUsers`` (another tenant's admin only sees
  users whose ``rootorgid`` is its org).
* ``organize`` — Sunbird's ``organizeDF``: ``BatchId_`` prefix, display names, fixed order then
  the remaining columns in DataFrame order (duplicates removed), nulls -> ``""`` in string
  columns only.
* Spark value semantics the reports rely on: the lenient string -> date cast behind
  ``to_date``, ``date_format`` with ``dd/MM/yyyy`` (Spark rewrites ``y`` to ``u``), the CSV
  timestamp format, Java's string -> double parse and ``ceil`` to a ``long``.

Behaviour is Sunbird's (RPT-5.4); nothing here deviates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from lernflow.kernel.java import java_trim
from lernflow.reports.model import Batch, BatchFailed, Enrolment, UserCache

BATCH_ID_PREFIX = "BatchId_"

_LONG_MAX = 2**63 - 1
_LONG_MIN = -(2**63)


class Learner(NamedTuple):
    """One enrolment that survived B4.4 steps 1-3, with its user-cache hash."""

    enrolment: Enrolment
    user: UserCache


def is_loaded_enrolment(enrolment: Enrolment) -> bool:
    """B4.4 step 1: ``lower(active) == "true"`` and at least one enrolment date not null."""
    return enrolment.active is True and (
        enrolment.enrolleddate is not None or enrolment.enrolled_date is not None
    )


def select_learners(
    batch: Batch, enrolments: Iterable[Enrolment], users: Mapping[str, UserCache]
) -> tuple[list[Learner], list[str]]:
    """B4.4 steps 1-3 for ``batch``: (learners in enrolment order, ids dropped as uncached).

    Only enrolments of this batch *and* its collection count (``batchid == b AND courseid ==
    collectionId``). A learner whose ``user:<id>`` hash is missing is dropped (Sunbird's inner
    join, B9.1) and listed once in the second value. ``filterUsers`` then keeps, when the
    requesting org is not the collection's, only users whose cached ``rootorgid`` equals it
    (users without ``rootorgid`` are dropped, B9.2); those are not listed as dropped.
    """
    foreign = batch.requested_org_id != batch.collection_org_id
    learners: list[Learner] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for enrolment in enrolments:
        if enrolment.batchid != batch.batch_id or enrolment.courseid != batch.collection_id:
            continue
        if not is_loaded_enrolment(enrolment):
            continue
        user = users.get(enrolment.userid)
        if user is None:
            if enrolment.userid not in seen:
                seen.add(enrolment.userid)
                dropped.append(enrolment.userid)
            continue
        if foreign and user.get("rootorgid") != batch.requested_org_id:
            continue
        learners.append(Learner(enrolment, user))
    return learners, dropped


def organize(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    mapping: Mapping[str, str],
    order: Sequence[str],
    string_columns: Collection[str],
) -> tuple[list[str], list[dict[str, Any]]]:
    """Sunbird's ``organizeDF`` over rows keyed by internal column name (B4.5).

    ``columns`` is the DataFrame's column order (internal names), ``mapping`` internal ->
    display name, ``order`` the fixed display order, ``string_columns`` the internal names of
    string-typed columns (only those get ``""`` for null). Returns (header, rows keyed by
    header). A fixed display column missing from ``columns`` fails the batch, like Spark's
    ``select`` (message ``cannot resolve '<name>' given input columns: [...]``; Spark appends
    the logical plan, which is not reproduced).
    """
    display = [mapping.get(name, name) for name in columns]
    dynamic = [name for name in columns if name not in mapping]
    header = list(dict.fromkeys([*order, *dynamic]))
    available = set(display)
    for name in header:
        if name not in available:
            msg = f"cannot resolve '{name}' given input columns: [{', '.join(display)}]"
            raise BatchFailed(msg)
    strings = set(string_columns)
    # each display column takes its value from the last internal column of that display name
    source = {mapping.get(name, name): name for name in columns}
    plan = [(name, source[name], source[name] == "batchid", source[name] in strings) for name in header]  # fmt: skip
    out: list[dict[str, Any]] = []
    for row in rows:
        values: dict[str, Any] = {}
        for name, internal, is_batch, is_string in plan:
            value = row.get(internal)
            if value is None:
                if is_string:
                    value = ""
            elif is_batch:
                value = BATCH_ID_PREFIX + str(value)
            values[name] = value
        out.append(values)
    return header, out


# --- time zones and dates ------------------------------------------------------------------

_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


@lru_cache(maxsize=32)
def zone_info(zone: str) -> tzinfo:
    """The session time zone: an IANA name, ``UTC``/``Z`` or a ``±HH:MM`` offset."""
    if zone in ("UTC", "Z"):
        return UTC
    match = _OFFSET.fullmatch(zone)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return timezone(sign * delta)
    return ZoneInfo(zone)


def instant(value: datetime) -> datetime:
    """An aware datetime; naive values are UTC (the cassandra-driver convention)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def local_datetime(value: datetime, zone: str) -> datetime:
    """``value`` in the session time zone."""
    return instant(value).astimezone(zone_info(zone))


def format_year(year: int) -> str:
    """Spark's ``yyyy`` (rewritten to ``uuuu``): 4 digits, ``+`` beyond 9999, ``-`` if negative."""
    if year > 9999:
        return f"+{year}"
    if year < 0:
        return f"-{-year:04d}"
    return f"{year:04d}"


def format_ddmmyyyy(year: int, month: int, day: int) -> str:
    """``date_format(..., "dd/MM/yyyy")``."""
    return f"{day:02d}/{month:02d}/{format_year(year)}"


def timestamp_ddmmyyyy(value: datetime, zone: str) -> str:
    """``date_format(timestamp, "dd/MM/yyyy")`` in the session time zone."""
    local = local_datetime(value, zone)
    return format_ddmmyyyy(local.year, local.month, local.day)


def timestamp_csv(value: datetime, zone: str) -> str:
    """A timestamp as Spark 3.2's CSV writer renders it (``yyyy-MM-dd'T'HH:mm:ss.SSSXXX``)."""
    local = local_datetime(value, zone)
    offset = local.utcoffset() or timedelta(0)
    seconds = int(offset.total_seconds())
    if seconds == 0:
        suffix = "Z"
    else:
        sign = "-" if seconds < 0 else "+"
        hours, rest = divmod(abs(seconds), 3600)
        minutes, secs = divmod(rest, 60)
        suffix = f"{sign}{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")
    return (
        f"{format_year(local.year)}-{local.month:02d}-{local.day:02d}T"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}."
        f"{local.microsecond // 1000:03d}{suffix}"
    )


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _month_days(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _valid_segment(segment: int, digits: int) -> bool:
    if segment == 0:
        return 4 <= digits <= 7
    return 0 < digits <= 2


def spark_string_to_date(text: str) -> tuple[int, int, int] | None:
    """Spark 3.2's string -> date cast (what ``to_date(col)`` does), or None if it is null.

    Trims ASCII control characters and spaces, then accepts ``[+-]yyyy``, ``yyyy-[m]m`` and
    ``yyyy-[m]m-[d]d`` optionally followed by ``' '`` or ``'T'`` and anything (so
    ``2019-11-13 05:41:50:382+0000`` is 2019-11-13). The year has 4-7 digits, month/day 1-2.
    """
    start, end = 0, len(text)
    while start < end and (text[start] <= " " or text[start] == "\x7f"):
        start += 1
    while end > start and (text[end - 1] <= " " or text[end - 1] == "\x7f"):
        end -= 1
    if start == end:
        return None
    sign = 1
    pos = start
    if text[pos] in "+-":
        sign = -1 if text[pos] == "-" else 1
        pos += 1
    segments = [1, 1, 1]
    segment = value = digits = 0
    while pos < end and text[pos] not in " T":
        char = text[pos]
        if segment < 2 and char == "-":
            if not _valid_segment(segment, digits):
                return None
            segments[segment] = value
            value = digits = 0
            segment += 1
        elif "0" <= char <= "9":
            value = value * 10 + ord(char) - 48
            digits += 1
        else:
            return None
        pos += 1
    if not _valid_segment(segment, digits):
        return None
    if segment < 2 and pos < end:
        return None
    segments[segment] = value
    year, month, day = sign * segments[0], segments[1], segments[2]
    if not 1 <= month <= 12 or not 1 <= day <= _month_days(year, month):
        return None
    return year, month, day


# --- numbers -------------------------------------------------------------------------------

_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity"
    r"|(?P<dec>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[fFdD]?"
    r"|(?P<hex>0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)[fFdD]?)"
)


def spark_string_to_double(text: str) -> float | None:
    """Spark's (non-ANSI) string -> double cast: Java ``Double.parseDouble``, then the special
    literals ``inf``/``infinity``/``nan`` (any case, optional sign); anything else is null."""
    trimmed = java_trim(text)
    match = _JAVA_DOUBLE.fullmatch(trimmed)
    if match:
        negative = trimmed.startswith("-")
        if match.group("hex") is not None:
            body = match.group("hex")
            try:
                number = float.fromhex(body)
            except OverflowError:
                number = math.inf
            return -number if negative else number
        if match.group("dec") is not None:
            return float(("-" if negative else "") + match.group("dec"))
        return float(trimmed)  # NaN / Infinity with an optional sign
    lowered = trimmed.lower()
    if lowered in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    if lowered in ("-inf", "-infinity"):
        return -math.inf
    if lowered == "nan":
        return math.nan
    return None


def spark_divide(numerator: float | None, denominator: float | None) -> float | None:
    """Spark's (non-ANSI) double division: null operands or a zero divisor give null."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def spark_ceil(value: float) -> int:
    """Spark's ``ceil`` of a double: a ``long`` (``Math.ceil(x).toLong``: NaN -> 0, saturating)."""
    if math.isnan(value):
        return 0
    if math.isinf(value):
        return _LONG_MAX if value > 0 else _LONG_MIN
    return max(_LONG_MIN, min(_LONG_MAX, math.ceil(value)))
