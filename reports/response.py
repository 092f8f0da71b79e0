"""response-exhaust rows (B6 in docs/flows/response-exhaust.md; ResponseExhaustJob V1 of RPT-5.4).

``response_rows`` gives one row per question of every attempt of the batch's learners:

* learners: B4.4 steps 1-3 (``organize.select_learners``; uncached learners lose all their
  responses and are returned as dropped);
* attempts: ``assessment_aggregator`` rows joined on user **and course only** — V1 does not
  match ``batch_id``, so attempts recorded under another batch of the same course appear too,
  with this batch's Batch Id (B9.13);
* ``explode_outer(question)``: an attempt without questions still gives one row, whose question
  columns are empty and whose Question Options/Response read ``null`` (Sunbird's ``toJSON`` UDF
  serialises the missing value) [derived];
* QuestionSet Title: a left join with the content search result for the attempted content ids
  (``content_names``: id -> names in response order; duplicate ids duplicate rows, unknown ids
  give ``""``);
* Attempted On: the timestamp as Spark's CSV writer renders it (session zone); Question Duration
  ``round(decimal)`` HALF_UP; scores as doubles; options/responses as Sunbird's sanitised JSON.

Behaviour is Sunbird's. The one addition: Sunbird reads titles from the content search only;
when the caller has no search result (``content_names=None``) the names of the course
hierarchy's nodes are used instead — pass ``content_names`` for Sunbird-identical output.

``response_rows_v2`` is ResponseExhaustJobV2 (B6.3, the ``response-exhaust-v2`` entry), whose
differences from V1 are:

* Cassandra attempts are those ``WHERE batch_id = <batch>``, joined on user, course **and**
  batch;
* archived attempts (blob CSVs under ``archive_glob``, parsed by ``parse_archived_attempts`` /
  ``read_archive``) are exploded like the Cassandra rows, unioned by name after them, and the
  union is ``dropDuplicates(course_id, batch_id, user_id, attempt_id, questionid)`` — the first
  row of a key wins, i.e. Cassandra before the archive [derived: Spark keeps the first row it
  meets, and the union's Cassandra partitions come first]; the key has no ``content_id``;
* Attempted On is the value cast to a string, ``yyyy-MM-dd HH:mm:ss[.fraction]`` in the session
  zone (archived ``last_attempted_on`` is epoch ms, truncated to seconds by ``from_unixtime``);
* Question Duration: ``round`` of the Cassandra decimal widened to double by the union (``1.0``),
  the archive's value being a JSON double (HALF_UP);
* when the archive cannot be read (no file matches the glob, or its columns differ) Sunbird
  catches the error and uses the Cassandra rows alone: no union, **no** ``dropDuplicates``, and
  the duration stays a decimal (``1``). Pass ``archived=None`` for that case; ``[]`` is an archive
  read without rows (union and de-duplication still apply).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

from lernflow.kernel.errors import LernflowError
from lernflow.kernel.java import jackson_string, java_string_hash
from lernflow.reports.model import Attempt, Batch, BatchFailed, Enrolment, ReportContext, UserCache
from lernflow.reports.organize import (
    format_year,
    local_datetime,
    organize,
    select_learners,
    spark_string_to_double,
    timestamp_csv,
)

COLUMN_MAPPING: dict[str, str] = {
    "courseid": "Collection Id",
    "collectionName": "Collection Name",
    "batchid": "Batch Id",
    "batchName": "Batch Name",
    "userid": "User UUID",
    "content_id": "QuestionSet Id",
    "contentname": "QuestionSet Title",
    "attempt_id": "Attempt Id",
    "last_attempted_on": "Attempted On",
    "questionid": "Question Id",
    "questiontype": "Question Type",
    "questiontitle": "Question Title",
    "questiondescription": "Question Description",
    "questionduration": "Question Duration",
    "questionscore": "Question Score",
    "questionmaxscore": "Question Max Score",
    "questionoption": "Question Options",
    "questionresponse": "Question Response",
}
COLUMNS_ORDER: tuple[str, ...] = tuple(COLUMN_MAPPING.values())
# The production csvColumns (B2) = the DataFrame's columns after the select.
_COLUMNS: tuple[str, ...] = tuple(COLUMN_MAPPING)
_NOT_STRINGS = frozenset(
    {"last_attempted_on", "questionduration", "questionscore", "questionmaxscore"}
)
_STRING_COLUMNS = tuple(name for name in _COLUMNS if name not in _NOT_STRINGS)


def response_rows(
    batch: Batch,
    enrolments: Sequence[Enrolment],
    users: Mapping[str, UserCache],
    attempts: Sequence[Attempt],
    hierarchy: Mapping[str, Any] | None,
    ctx: ReportContext,
    *,
    content_names: Mapping[str, Sequence[str | None]] | None = None,
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """(header, rows keyed by header, ids of enrolled learners dropped as uncached).

    ``attempts`` may be the whole ``assessment_aggregator`` table (rows of other users/courses
    are ignored). ``content_names`` maps a content id to the ``name`` of every search result
    with that identifier, in response order (Sunbird's search of the attempted ids); when None,
    ``hierarchy`` (the course's parsed ``content_hierarchy``) supplies the names instead.
    Value types: Attempted On ``str``/None, Question Duration ``int``/None, Question Score and
    Max Score ``float``/None, everything else ``str``.
    """
    learners, dropped = select_learners(batch, enrolments, users)
    names = content_names if content_names is not None else hierarchy_names(hierarchy)
    by_learner: dict[tuple[str, str], list[Attempt]] = {}
    for attempt in attempts:
        by_learner.setdefault((attempt.user_id, attempt.course_id), []).append(attempt)

    internal: list[dict[str, Any]] = []
    for learner in learners:
        enrolment = learner.enrolment
        for attempt in by_learner.get((enrolment.userid, enrolment.courseid), []):
            attempted = (
                timestamp_csv(attempt.last_attempted_on, ctx.zone)
                if attempt.last_attempted_on is not None
                else None
            )
            titles: Sequence[str | None] = list(names.get(attempt.content_id) or ()) or [None]
            questions: list[Mapping[str, Any] | None] = [*attempt.question] or [None]
            for question in questions:
                values = question_values(question)
                for title in titles:
                    internal.append(
                        {
                            "courseid": enrolment.courseid,
                            "collectionName": batch.collection_name,
                            "batchid": enrolment.batchid,
                            "batchName": batch.batch_name,
                            "userid": enrolment.userid,
                            "content_id": attempt.content_id,
                            "contentname": title,
                            "attempt_id": attempt.attempt_id,
                            "last_attempted_on": attempted,
                            **values,
                        }
                    )
    header, rows = organize(internal, _COLUMNS, COLUMN_MAPPING, COLUMNS_ORDER, _STRING_COLUMNS)
    return header, rows, dropped


def hierarchy_names(hierarchy: Mapping[str, Any] | None) -> dict[str, list[str | None]]:
    """identifier -> [name] for every node of a course hierarchy (first occurrence wins)."""
    names: dict[str, list[str | None]] = {}
    pending: list[Any] = [hierarchy] if hierarchy is not None else []
    while pending:
        node = pending.pop()
        if not isinstance(node, Mapping):
            continue
        identifier, name = node.get("identifier"), node.get("name")
        if isinstance(identifier, str) and identifier not in names:
            names[identifier] = [name if isinstance(name, str) else None]
        children = node.get("children")
        if isinstance(children, list):
            pending.extend(reversed(children))
    return names


def question_values(question: Mapping[str, Any] | None) -> dict[str, Any]:
    """The question columns of one exploded ``question`` UDT value (None: no question)."""
    if question is None:
        return {
            "questionid": None,
            "questiontype": None,
            "questiontitle": None,
            "questiondescription": None,
            "questionduration": None,
            "questionscore": None,
            "questionmaxscore": None,
            "questionoption": sanitised_json(None),
            "questionresponse": sanitised_json(None),
        }
    return {
        "questionid": question.get("id"),
        "questiontype": question.get("type"),
        "questiontitle": question.get("title"),
        "questiondescription": question.get("description"),
        "questionduration": question_duration(question.get("duration")),
        "questionscore": _double(question.get("score")),
        "questionmaxscore": _double(question.get("max_score")),
        # a null list field reads as an empty list (driver collection codecs, B3)
        "questionoption": sanitised_json(question.get("params") or []),
        "questionresponse": sanitised_json(question.get("resvalues") or []),
    }


def _double(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        msg = f"not a number: {value!r}"
        raise TypeError(msg)
    return float(value)


_SCALE_18 = Decimal(1).scaleb(-18)
_DECIMAL_38_18_LIMIT = Decimal(10) ** 20


def question_duration(value: Any) -> int | None:
    """``round(duration)``: the CQL decimal read as Spark ``decimal(38,18)`` (HALF_UP to 18
    places, null if it does not fit), then rounded HALF_UP to an integer."""
    if value is None:
        return None
    if isinstance(value, bool):
        msg = f"not a decimal: {value!r}"
        raise TypeError(msg)
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | float | str):
        number = Decimal(str(value))
    else:
        msg = f"not a decimal: {value!r}"
        raise TypeError(msg)
    if not number.is_finite() or number.adjusted() >= 21:
        return None
    with localcontext(Context(prec=80)):
        scaled = number.quantize(_SCALE_18, rounding=ROUND_HALF_UP)
        if abs(scaled) >= _DECIMAL_38_18_LIMIT:
            return None
        return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- Sunbird's UDFUtils.toJSON ----------------------------------------------------------------


def _improve(hash_code: int) -> int:
    mask = 0xFFFFFFFF
    value = (hash_code + (~(hash_code << 9) & mask)) & mask
    value ^= value >> 14
    value = (value + (value << 4)) & mask
    return value ^ (value >> 10)


def _trie_position(key: str) -> tuple[int, ...]:
    hashed = _improve(java_string_hash(key) & 0xFFFFFFFF)
    return tuple((hashed >> shift) & 0x1F for shift in range(0, 32, 5))


def scala_map_order(keys: Sequence[str]) -> list[str]:
    """Iteration order of a Scala 2.12 immutable ``Map`` built from ``keys`` in this order:
    insertion order up to 4 entries (``Map1``..``Map4``), hash-trie order beyond (collisions
    keep insertion order)."""
    if len(keys) <= 4:
        return list(keys)
    return sorted(keys, key=_trie_position)


def _to_json(value: Any, *, cassandra_maps: bool = True) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return jackson_string(value)
    if isinstance(value, Mapping):
        # Cassandra returns map<text, text> entries sorted by key (UTF-8 byte order); a map
        # deserialised from archived JSON keeps the document's order
        keys = sorted(value) if cassandra_maps else list(value)
        return (
            "{"
            + ",".join(
                f"{jackson_string(key)}:{_to_json(value[key], cassandra_maps=cassandra_maps)}"
                for key in scala_map_order(keys)
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_to_json(item, cassandra_maps=cassandra_maps) for item in value) + "]"
    msg = f"unexpected value in a question list: {value!r}"
    raise TypeError(msg)


def sanitised_json(value: Any, *, cassandra_maps: bool = True) -> str:
    """``UDFUtils.toJSON``: compact JSON, then drop every backslash+``n``, every backslash,
    and turn ``"`` into ``'`` (B6.2). None serialises as ``null``.

    Map entries are taken in Cassandra's key order by default; ``cassandra_maps=False`` keeps
    each map's own order (maps parsed from an archived question, response V2)."""
    return (
        _to_json(value, cassandra_maps=cassandra_maps)
        .replace("\\n", "")
        .replace("\\", "")
        .replace('"', "'")
    )


# --- ResponseExhaustJobV2 (B6.3) --------------------------------------------------------------

ARCHIVE_COLUMNS: tuple[str, ...] = (
    "content_id",
    "attempt_id",
    "user_id",
    "course_id",
    "batch_id",
    "created_on",
    "last_attempted_on",
    "total_max_score",
    "total_score",
    "updated_on",
    "grand_total",
    "question",
)
"""The columns of an archived ``assessment_aggregator`` CSV (the table's columns, B3)."""

_QUESTION_TEXT_FIELDS = ("id", "assess_ts", "type", "title", "description")
_QUESTION_DOUBLE_FIELDS = ("max_score", "score", "duration")
_QUESTION_MAP_LISTS = ("resvalues", "params")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ArchiveReadError(LernflowError, ValueError):
    """The archive cannot be read or unioned (Spark's load/``unionByName`` throws inside
    Sunbird's ``try``): the report falls back to the Cassandra rows alone (``archived=None``)."""


def archive_glob(
    batch_id: str, collection_id: str, file_path: str = "archival-data/", file_format: str = "csv"
) -> str:
    """The blob path V2 loads: ``<filePath><batchId>_<collectionId>/*-*-*.<format>`` (B6.3;
    ``assessmentFetcherConfig.filePath`` default ``archival-data/``, ``format`` default ``csv``;
    the files are named ``<year>-<week>-<timestamp>``)."""
    return f"{file_path}{batch_id}_{collection_id}/*-*-*.{file_format}"


def parse_archived_attempts(csv_text: str) -> list[Attempt]:
    """One archived CSV file as ``Attempt`` rows, read the way V2 reads it (B6.3).

    CSV: Spark's reader (``header=true``, all columns strings): one record per line (no
    multi-line values), blank lines skipped, ``,`` separator; inside ``"``-quoted values
    ``\\"`` is a quote and ``\\\\`` a backslash (any other backslash stays); empty values
    are null; short records are padded with nulls, extra values dropped. The header must name
    exactly ``ARCHIVE_COLUMNS`` (any order, case-insensitive), otherwise ``unionByName`` fails:
    ``ArchiveReadError``.

    Values: ``last_attempted_on`` is epoch ms (``from_unixtime(ms / 1000)``: whole seconds,
    UTC-aware here; unparsable such as the archiver's ``null`` -> None); ``total_*`` Spark
    doubles; ``question`` is deserialised like Sunbird's ``convertStringToList`` (Jackson into
    ``Question``): every element a dict with all ten UDT field names, ``max_score``/``score``/
    ``duration`` as ``float`` (missing or null -> ``0.0``, Scala ``Double``), text fields
    ``str``/None (JSON numbers keep their text), ``resvalues``/``params`` a list of ``{str:
    str | None}`` maps in document order (null elements kept) or None when missing; a null
    element of the list becomes ``{}`` (a null question, like an exploded empty list); a JSON
    ``null`` document gives ``[]``. A question value that Jackson cannot deserialise (null,
    empty, malformed, wrong shapes) fails the batch when Spark evaluates the UDF:
    ``BatchFailed``.

    Rows whose ``course_id``, ``batch_id`` or ``user_id`` is null can never join a learner and
    are left out; a null ``content_id``/``attempt_id`` becomes ``""``.
    """
    records = [_csv_fields(line) for line in _LINE_BREAK.split(csv_text) if line]
    if not records:
        msg = "archived CSV has no header"
        raise ArchiveReadError(msg)
    header = [name.lower() if name is not None else None for name in records[0]]
    if len(header) != len(ARCHIVE_COLUMNS) or set(header) != set(ARCHIVE_COLUMNS):
        msg = f"archived CSV columns {records[0]} do not match {list(ARCHIVE_COLUMNS)}"
        raise ArchiveReadError(msg)
    index = {name: position for position, name in enumerate(header) if name is not None}
    attempts: list[Attempt] = []
    for record in records[1:]:
        values = [*record[: len(header)], *([None] * (len(header) - len(record)))]

        def value(column: str, values: list[str | None] = values) -> str | None:
            return values[index[column]]

        course_id, batch_id, user_id = value("course_id"), value("batch_id"), value("user_id")
        if course_id is None or batch_id is None or user_id is None:
            continue
        attempts.append(
            Attempt(
                course_id=course_id,
                batch_id=batch_id,
                user_id=user_id,
                content_id=value("content_id") or "",
                attempt_id=value("attempt_id") or "",
                grand_total=value("grand_total"),
                total_score=_spark_double(value("total_score")),
                total_max_score=_spark_double(value("total_max_score")),
                last_attempted_on=_from_unixtime_ms(value("last_attempted_on")),
                question=_archived_questions(value("question")),
            )
        )
    return attempts


def read_archive(csv_texts: Iterable[str]) -> list[Attempt] | None:
    """Every file matched by ``archive_glob`` (their texts, in listing order) as one archive;
    None when the read fails as Spark's would — no file at all (``Path does not exist``) or a
    file whose columns do not match (``ArchiveReadError``). Each file is read with its own
    header (Spark names the columns from one header and maps the other files by position; the
    archiver writes one layout, where both agree). ``BatchFailed`` propagates."""
    attempts: list[Attempt] = []
    found = False
    for text in csv_texts:
        found = True
        try:
            attempts.extend(parse_archived_attempts(text))
        except ArchiveReadError:
            return None
    return attempts if found else None


def response_rows_v2(
    batch: Batch,
    enrolments: Sequence[Enrolment],
    users: Mapping[str, UserCache],
    attempts: Sequence[Attempt],
    archived: Sequence[Attempt] | None,
    hierarchy: Mapping[str, Any] | None,
    ctx: ReportContext,
    *,
    content_names: Mapping[str, Sequence[str | None]] | None = None,
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """ResponseExhaustJobV2's rows: (header, rows keyed by header, ids of enrolled learners
    dropped as uncached) — see the module notes for the differences from ``response_rows``.

    ``attempts``: the ``assessment_aggregator`` rows of the batch (rows of other batches are
    ignored, as by the ``WHERE``); ``archived``: the parsed archive (``read_archive``), None
    when reading it failed. Learners, titles (``content_names``/``hierarchy``), Batch Id and the
    other columns are as in V1. Rows: learners in enrolment order, then the union's order.
    Value types: Attempted On ``str``/None; Question Duration ``float``/None (``int``/None when
    ``archived`` is None); scores ``float``/None; everything else ``str``.
    """
    learners, dropped = select_learners(batch, enrolments, users)
    names = content_names if content_names is not None else hierarchy_names(hierarchy)
    by_learner = _v2_responses_by_learner(batch, attempts, archived)
    rows_of = _V2Rows(batch, names, union=archived is not None, zone=ctx.zone)
    internal: list[dict[str, Any]] = []
    for learner in learners:
        enrolment = learner.enrolment
        key = _LearnerKey(enrolment.userid, enrolment.courseid, enrolment.batchid)
        for response in by_learner.get(key, []):
            internal.extend(_v2_rows(enrolment, response, rows_of))
    header, rows = organize(internal, _COLUMNS, COLUMN_MAPPING, COLUMNS_ORDER, _STRING_COLUMNS)
    return header, rows, dropped


@dataclass(frozen=True)
class _LearnerKey:
    """The V2 join of responses to enrolments: user, course and batch."""

    user_id: str
    course_id: str
    batch_id: str


@dataclass(frozen=True)
class _V2Rows:
    """What every V2 row of a batch is built with."""

    batch: Batch
    names: Mapping[str, Sequence[str | None]]  # content id -> QuestionSet Titles
    union: bool  # the archive was read: Cassandra rows unioned with it
    zone: str


def _v2_responses_by_learner(
    batch: Batch, attempts: Sequence[Attempt], archived: Sequence[Attempt] | None
) -> dict[_LearnerKey, list[_Response]]:
    """This batch's Cassandra responses (unioned with the archive's and de-duplicated when
    ``archived`` is not None), grouped by learner in the union's order."""
    responses = _exploded((a for a in attempts if a.batch_id == batch.batch_id), archived=False)
    if archived is not None:
        responses = _drop_duplicates([*responses, *_exploded(archived, archived=True)])
    by_learner: dict[_LearnerKey, list[_Response]] = {}
    for response in responses:
        attempt = response.attempt
        key = _LearnerKey(attempt.user_id, attempt.course_id, attempt.batch_id)
        by_learner.setdefault(key, []).append(response)
    return by_learner


def _v2_rows(enrolment: Enrolment, response: _Response, rows_of: _V2Rows) -> list[dict[str, Any]]:
    """The internal rows of one response: one per QuestionSet Title (one if it has none)."""
    attempt = response.attempt
    attempted = (
        timestamp_string(attempt.last_attempted_on, rows_of.zone)
        if attempt.last_attempted_on is not None
        else None
    )
    values = _v2_question_values(response, union=rows_of.union)
    titles: Sequence[str | None] = list(rows_of.names.get(attempt.content_id) or ()) or [None]
    return [
        {
            "courseid": enrolment.courseid,
            "collectionName": rows_of.batch.collection_name,
            "batchid": enrolment.batchid,
            "batchName": rows_of.batch.batch_name,
            "userid": enrolment.userid,
            "content_id": attempt.content_id,
            "contentname": title,
            "attempt_id": attempt.attempt_id,
            "last_attempted_on": attempted,
            **values,
        }
        for title in titles
    ]


def timestamp_string(value: datetime, zone: str) -> str:
    """A timestamp cast to a string (Spark 3.2): ``yyyy-MM-dd HH:mm:ss`` in the session zone,
    then ``.`` and the fraction of a second without trailing zeros when it is not zero."""
    local = local_datetime(value, zone)
    text = (
        f"{format_year(local.year)}-{local.month:02d}-{local.day:02d} "
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    )
    if local.microsecond:
        text += "." + f"{local.microsecond:06d}".rstrip("0")
    return text


def round_double(value: Any) -> float | None:
    """Spark's ``round`` of a double to 0 places: ``BigDecimal(d).setScale(0, HALF_UP)``
    (NaN and infinities unchanged; no negative zero)."""
    number = _double(value)
    if number is None or math.isnan(number) or math.isinf(number):
        return number
    if abs(number) >= 2.0**52:  # already a whole number
        return number
    rounded = Decimal(repr(number)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return float(rounded) + 0.0


@dataclass(frozen=True)
class _Response:
    """One row of ``prepareReportDf``: an attempt with one exploded question (None: none)."""

    attempt: Attempt
    question: Mapping[str, Any] | None
    archived: bool

    def key(self) -> tuple[str, str, str, str, Any]:
        question_id = self.question.get("id") if self.question is not None else None
        attempt = self.attempt
        return (
            attempt.course_id,
            attempt.batch_id,
            attempt.user_id,
            attempt.attempt_id,
            question_id,
        )


def _exploded(attempts: Iterable[Attempt], *, archived: bool) -> list[_Response]:
    """``explode_outer(question)``: an empty list gives one row without a question; so does a
    null element (an archived ``{}``)."""
    out: list[_Response] = []
    for attempt in attempts:
        questions: list[Mapping[str, Any] | None] = [*attempt.question] or [None]
        for question in questions:
            if archived and question is not None and not question:
                question = None
            out.append(_Response(attempt, question, archived))
    return out


def _drop_duplicates(responses: Sequence[_Response]) -> list[_Response]:
    """``dropDuplicates(course_id, batch_id, user_id, attempt_id, questionid)``: the first row
    of each key (null ids are equal to each other)."""
    seen: set[tuple[str, str, str, str, Any]] = set()
    out: list[_Response] = []
    for response in responses:
        key = response.key()
        if key not in seen:
            seen.add(key)
            out.append(response)
    return out


def _v2_question_values(response: _Response, *, union: bool) -> dict[str, Any]:
    question = response.question
    if question is None or not response.archived:
        values = question_values(question)
        if union and values["questionduration"] is not None:
            # round(decimal) widened to double by unionByName with the archive's double
            values["questionduration"] = float(values["questionduration"])
        return values
    return {
        "questionid": question.get("id"),
        "questiontype": question.get("type"),
        "questiontitle": question.get("title"),
        "questiondescription": question.get("description"),
        "questionduration": round_double(question.get("duration")),
        "questionscore": _double(question.get("score")),
        "questionmaxscore": _double(question.get("max_score")),
        # Jackson leaves a missing list null: toJSON(null) reads "null"
        "questionoption": sanitised_json(question.get("params"), cassandra_maps=False),
        "questionresponse": sanitised_json(question.get("resvalues"), cassandra_maps=False),
    }


# --- reading the archive ----------------------------------------------------------------------


def _csv_fields(line: str) -> list[str | None]:
    """One CSV record (Spark/univocity reader options: quote ``"``, escape ``\\``)."""
    fields: list[str | None] = []
    position, end = 0, len(line)
    while True:
        if position < end and line[position] == '"':
            chars: list[str] = []
            position += 1
            while position < end:
                char = line[position]
                if char == "\\" and position + 1 < end and line[position + 1] in '"\\':
                    chars.append(line[position + 1])
                    position += 2
                    continue
                position += 1
                if char == '"':
                    break
                chars.append(char)
            stop = line.find(",", position)
            stop = end if stop < 0 else stop
            chars.append(line[position:stop])  # text after the closing quote stays
            text = "".join(chars)
        else:
            stop = line.find(",", position)
            stop = end if stop < 0 else stop
            text = line[position:stop]
        fields.append(text or None)
        if stop >= end:
            return fields
        position = stop + 1


def _spark_double(text: str | None) -> float | None:
    return spark_string_to_double(text) if text is not None else None


_LONG_MAX = 2**63 - 1
_LONG_MIN = -(2**63)


def _from_unixtime_ms(text: str | None) -> datetime | None:
    """``from_unixtime(col / 1000)``: the string cast to a double, divided, cast to a long
    (Java: truncated, NaN -> 0, saturating); None when null or beyond Python's datetime."""
    millis = _spark_double(text)
    if millis is None:
        return None
    seconds_double = millis / 1000
    if math.isnan(seconds_double):
        seconds = 0
    elif math.isinf(seconds_double):
        seconds = _LONG_MAX if seconds_double > 0 else _LONG_MIN
    else:
        seconds = max(_LONG_MIN, min(_LONG_MAX, math.trunc(seconds_double)))
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None


class _JsonNumber(str):
    """A JSON number token, kept as its text (Jackson coerces it per target type)."""

    __slots__ = ()


def _reject_constant(token: str) -> Any:
    msg = f"Non-standard token '{token}'"
    raise ValueError(msg)


def _udf_failure(detail: str) -> BatchFailed:
    return BatchFailed(f"Failed to execute user defined function (convertStringToList): {detail}")


def _archived_questions(text: str | None) -> list[dict[str, Any]]:
    if text is None:
        detail = 'argument "content" is null'
        raise _udf_failure(detail)
    decoder = json.JSONDecoder(
        parse_float=_JsonNumber, parse_int=_JsonNumber, parse_constant=_reject_constant
    )
    try:
        document, _ = decoder.raw_decode(text, len(text) - len(text.lstrip(" \t\r\n")))
    except ValueError as exc:  # trailing content after the value is ignored, as by Jackson
        detail = f"cannot parse question JSON: {exc}"
        raise _udf_failure(detail) from exc
    if document is None:
        return []
    if not isinstance(document, list):
        detail = "question JSON is not a list"
        raise _udf_failure(detail)
    questions: list[dict[str, Any]] = []
    for element in document:
        if element is None:
            questions.append({})
        elif isinstance(element, dict):
            questions.append(_archived_question(element))
        else:
            detail = f"question element is not an object: {element!r}"
            raise _udf_failure(detail)
    return questions


def _archived_question(element: Mapping[str, Any]) -> dict[str, Any]:
    question: dict[str, Any] = {}
    for name in ("id", "assess_ts", "max_score", "score", "type", "title"):
        question[name] = _question_field(name, element.get(name))
    for name in _QUESTION_MAP_LISTS:
        question[name] = _map_list(name, element.get(name))
    for name in ("description", "duration"):
        question[name] = _question_field(name, element.get(name))
    return question


def _question_field(name: str, value: Any) -> Any:
    if name in _QUESTION_DOUBLE_FIELDS:
        return _jackson_double(name, value)
    return _jackson_text(name, value)


def _jackson_text(name: str, value: Any) -> str | None:
    """Jackson's ``String``: scalars as their text, null as null, containers rejected."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    detail = f"cannot deserialize a String from {value!r} ({name})"
    raise _udf_failure(detail)


def _jackson_double(name: str, value: Any) -> float:
    """Jackson's primitive ``double``: null/missing 0.0, numbers and numeric text parsed."""
    if value is None:
        return 0.0
    if isinstance(value, _JsonNumber):
        return float(value)
    if isinstance(value, str):
        if not value.strip():
            return 0.0
        number = spark_string_to_double(value)
        if number is not None:
            return number
    detail = f"cannot deserialize a double from {value!r} ({name})"
    raise _udf_failure(detail)


def _map_list(name: str, value: Any) -> list[dict[str, str | None] | None] | None:
    """Jackson's ``List[Map[String, String]]`` (null stays null)."""
    if value is None:
        return None
    if not isinstance(value, list):
        detail = f"cannot deserialize a List from {value!r} ({name})"
        raise _udf_failure(detail)
    out: list[dict[str, str | None] | None] = []
    for item in value:
        if item is None:
            out.append(None)
        elif isinstance(item, dict):
            out.append({str(key): _jackson_text(name, entry) for key, entry in item.items()})
        else:
            detail = f"cannot deserialize a Map from {item!r} ({name})"
            raise _udf_failure(detail)
    return out
