"""Report CSV bytes and object keys exactly as Sunbird writes them (B4.4 step 4, B8.1, B8.2 in
docs/flows/progress-exhaust.md).

``to_csv`` reproduces Spark 3.2's ``DataFrameWriter.csv(header=true)`` (univocity 2.9.1 writer
with Spark's options) for one single-partition file:

* ``,`` separator, ``\\n`` after every record (the last too), UTF-8 without BOM, header always;
* null (``None``) -> nothing; an empty string -> ``""``; a value made only of characters
  ``<= ' '`` -> ``""`` as well (whitespace trimming, below);
* leading and trailing characters ``<= ' '`` are trimmed;
* a value is quoted with ``"`` only if its trimmed-at-the-start text contains ``,``, ``"``,
  ``\\n`` or ``\\r`` (a trailing newline still triggers quoting although it is trimmed away), or
  if it is in the first column and starts with ``#`` (univocity's default comment character);
* inside quotes ``"`` becomes ``\\"`` and ``\\`` becomes ``\\\\``; outside quotes a backslash is
  written as is;
* a record that renders empty (one column, null) is skipped.

Values: ``str``; ``bool`` -> ``true``/``false``; ``int`` -> decimal; ``float`` -> Java
``Double.toString`` (``1.0``, ``0.33``, ``1.0E7``; the shortest repr — JDK < 19 occasionally
printed a longer digit string, which is not reproduced); ``Decimal`` -> Java
``BigDecimal.toString``. Anything else is a ``TypeError`` (dates must be rendered by the report).

``report_file_name``/``report_path``: ``<prefix><job id>/<request id>/<batch>_<key>_<yyyyMMdd>.csv``
with the date in IST (+05:30), the request segment omitted when there is none (standalone).

Behaviour is Sunbird's except for two safeguards (issue 15):

* formula cells (CSV injection): with ``neutralise`` (the default; setting
  ``LERNFLOW_REPORTS_NEUTRALISE_FORMULAS``) a *text* cell (a ``str`` value) whose written text
  starts with ``=``, ``+``, ``-`` or ``@`` gets a leading ``'`` (OWASP), unless it is a plain
  number (``-5``, ``+1.5E3``). Leading tabs and carriage returns are trimmed by the writer
  anyway, so ``"\\t=1+1"`` is written ``'=1+1``. Numeric values (``int``, ``float``,
  ``Decimal``) are never touched. ``neutralise=False`` writes Sunbird's bytes exactly;
* ids must be path-safe before they become path parts (:func:`reports.paths.check_id`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

from lernflow.kernel.java import java_double_to_string
from lernflow.reports.paths import check_id

IST = timezone(timedelta(hours=5, minutes=30))

_QUOTE_TRIGGERS = frozenset(',"\n\r')
_COMMENT = "#"


def render_value(value: Any) -> str | None:
    """The text Spark hands to the CSV writer for one value (None for null)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double_to_string(value)
    if isinstance(value, Decimal):
        return str(value)
    msg = f"cannot write {type(value).__name__} to a report CSV: {value!r}"
    raise TypeError(msg)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


_BLANKS = "".join(chr(c) for c in range(0x21))  # what the writer trims: every char <= ' '
_QUOTE_RE = re.compile("[" + re.escape("".join(sorted(_QUOTE_TRIGGERS))) + "]")


_FORMULA_STARTS = frozenset("=+-@")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _is_formula(body: str) -> bool:
    """A (start-trimmed, non-empty) text a spreadsheet would read as a formula: it starts with
    ``= + - @`` and is not a plain number such as ``-5`` or ``+1.5E3``."""
    return body[0] in _FORMULA_STARTS and _NUMBER_RE.fullmatch(body.rstrip(_BLANKS)) is None


@functools.lru_cache(maxsize=65536)
def _field(text: str | None, first_column: bool, neutralise: bool = False) -> str:
    if text is None:
        return ""
    body = text.lstrip(_BLANKS)
    if not body:
        return '""'
    if neutralise and _is_formula(body):
        body = "'" + body
    quoted = (first_column and text[0] == _COMMENT) or _QUOTE_RE.search(body) is not None
    body = body.rstrip(_BLANKS)
    return f'"{_escaped(body)}"' if quoted else body


def csv_line(values: Sequence[Any], *, neutralise: bool = True) -> str:
    """One record without its line ending; ``neutralise``: text cells that would be read as
    formulas get a leading ``'`` (module docstring)."""
    fields = []
    first = True
    for value in values:
        if isinstance(value, str):
            fields.append(_field(value, first, neutralise))
        else:
            fields.append(_field(render_value(value), first, False))
        first = False
    return ",".join(fields)


def to_csv(
    header: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    neutralise: bool = True,
    header_line: bool = True,
) -> bytes:
    """The CSV file Sunbird writes for ``header`` and ``rows`` (rows keyed by header text;
    a missing key is null). ``neutralise=False`` (``LERNFLOW_REPORTS_NEUTRALISE_FORMULAS=false``)
    writes Sunbird's bytes exactly; the default neutralises formula cells. ``header_line=False``
    leaves the header record out (a later part of a file, :func:`write_csv`)."""
    lines = [csv_line(list(header), neutralise=neutralise)] if header_line else []
    lines.extend(
        csv_line([row.get(name) for name in header], neutralise=neutralise) for row in rows
    )
    return "".join(line + "\n" for line in lines if line).encode("utf-8")


def write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Mapping[str, Any]], *, neutralise: bool = True
) -> int:
    """Write :func:`to_csv`'s bytes to ``path`` part by part (``_ROWS_PER_WRITE`` rows at a
    time: the whole file is never held in memory); return its size in bytes."""
    pending = iter(rows)
    with path.open("wb") as out:
        part = list(islice(pending, _ROWS_PER_WRITE))
        size = out.write(to_csv(header, part, neutralise=neutralise))
        while part := list(islice(pending, _ROWS_PER_WRITE)):
            size += out.write(to_csv(header, part, neutralise=neutralise, header_line=False))
    return size


_ROWS_PER_WRITE = 2000


def _ist_day(moment: datetime) -> date:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(IST).date()


def report_file_name(batch_id: str, report_key: str, today: date) -> str:
    """``<batchId>_<reportKey>_<yyyyMMdd>.csv`` (``today`` is already the IST date)."""
    return f"{batch_id}_{report_key}_{today.year:04d}{today.month:02d}{today.day:02d}.csv"


def report_path(
    prefix: str,
    job_id: str,
    request_id: str | None,
    batch_id: str,
    report_key: str,
    now: datetime,
) -> str:
    """``<prefix><jobId>/<requestId>/<batchId>_<reportKey>_<yyyyMMdd IST>.csv``.

    ``prefix`` (``collection.exhaust.store.prefix``, ``""`` in production) is prepended verbatim;
    the report path is the job id plus ``/``; no request segment when ``request_id`` is None or
    empty (standalone mode). ``now`` is converted to IST (naive values are UTC). Ids that are
    not path-safe raise :class:`reports.paths.UnsafeIdError` (beyond Sunbird).
    """
    request = f"{check_id('request_id', request_id)}/" if request_id else ""
    name = report_file_name(check_id("batchId", batch_id), report_key, _ist_day(now))
    return f"{prefix}{job_id}/{request}{name}"
