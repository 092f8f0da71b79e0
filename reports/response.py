"""response-exhaust rows (spec ``usercache-reports.md`` B6, ResponseExhaustJob V1 of RPT-5.4).

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

from reports.model import Attempt, Batch, Enrolment, ReportContext, UserCache
from reports.organize import organize, select_learners, timestamp_csv

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

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _json_string(text: str) -> str:
    """A JSON string as Jackson writes it (non-ASCII raw, ``\\u00XX`` upper-case hex)."""
    out = ['"']
    for char in text:
        escaped = _SHORT_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _java_string_hash(text: str) -> int:
    value = 0
    encoded = text.encode("utf-16-be", "surrogatepass")
    for index in range(0, len(encoded), 2):
        value = (31 * value + (encoded[index] << 8 | encoded[index + 1])) & 0xFFFFFFFF
    return value


def _improve(hash_code: int) -> int:
    mask = 0xFFFFFFFF
    value = (hash_code + (~(hash_code << 9) & mask)) & mask
    value ^= value >> 14
    value = (value + (value << 4)) & mask
    return value ^ (value >> 10)


def _trie_position(key: str) -> tuple[int, ...]:
    hashed = _improve(_java_string_hash(key))
    return tuple((hashed >> shift) & 0x1F for shift in range(0, 32, 5))


def scala_map_order(keys: Sequence[str]) -> list[str]:
    """Iteration order of a Scala 2.12 immutable ``Map`` built from ``keys`` in this order:
    insertion order up to 4 entries (``Map1``..``Map4``), hash-trie order beyond (collisions
    keep insertion order)."""
    if len(keys) <= 4:
        return list(keys)
    return sorted(keys, key=_trie_position)


def _to_json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, Mapping):
        # Cassandra returns map<text, text> entries sorted by key (UTF-8 byte order)
        keys = sorted(value)
        return (
            "{"
            + ",".join(
                f"{_json_string(key)}:{_to_json(value[key])}" for key in scala_map_order(keys)
            )
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_to_json(item) for item in value) + "]"
    msg = f"unexpected value in a question list: {value!r}"
    raise TypeError(msg)


def sanitised_json(value: Any) -> str:
    """``UDFUtils.toJSON``: compact JSON, then drop every backslash+``n``, every backslash,
    and turn ``"`` into ``'`` (B6.2). None serialises as ``null``."""
    return _to_json(value).replace("\\n", "").replace("\\", "").replace('"', "'")
