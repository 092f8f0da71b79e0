"""progress-exhaust rows (B5 in docs/flows/progress-exhaust.md; ProgressExhaustJob V1 of RPT-5.4).

``progress_rows`` turns one resolved batch into the report's header and rows:

* learners: B4.4 steps 1-3 (``organize.select_learners``: the user-cache inner join drops
  uncached learners, whose ids are returned; ``filterUsers``);
* Progress: leaf count of the course hierarchy, completed contents (status 2) outside the
  optional nodes, 32-bit float arithmetic and Java ``Math.round`` (1 of 8 -> 13), 100 once
  ``completedon`` is set (B5.2);
* scores: the assessment contents of the hierarchy, one attempt per content (best
  ``total_score``, or the latest attempt), ``Total Score`` and one ``<content> - Score`` column
  per attempted assessment, sorted, with Sunbird's operation order ``ceil((a*100)/b)`` (B5.3);
* Declared Board, Enrolment/Completion Date, Certificate Status (B5.1); ``organizeDF`` (B4.5).

A missing ``content_hierarchy`` row (``hierarchy=None``) fails the batch with Sunbird's
``next on empty iterator``. Behaviour is Sunbird's; nothing here deviates.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lernflow.reports.model import Attempt, Batch, BatchFailed, Enrolment, ReportContext, UserCache
from lernflow.reports.organize import (
    Learner,
    format_ddmmyyyy,
    instant,
    local_datetime,
    organize,
    select_learners,
    spark_ceil,
    spark_divide,
    spark_string_to_date,
    spark_string_to_double,
    timestamp_ddmmyyyy,
)

COLUMN_MAPPING: dict[str, str] = {
    "courseid": "Collection Id",
    "collectionName": "Collection Name",
    "batchid": "Batch Id",
    "batchName": "Batch Name",
    "userid": "User UUID",
    "state": "State",
    "district": "District",
    "orgname": "Org Name",
    "schooludisecode": "School Id",
    "schoolname": "School Name",
    "block": "Block Name",
    "cluster": "Cluster Name",
    "usertype": "User Type",
    "usersubtype": "User Sub Type",
    "board": "Declared Board",
    "enrolleddate": "Enrolment Date",
    "completedon": "Completion Date",
    "completionPercentage": "Progress",
    "total_sum_score": "Total Score",
    "certificatestatus": "Certificate Status",
}
COLUMNS_ORDER: tuple[str, ...] = (
    "Collection Id",
    "Collection Name",
    "Batch Id",
    "Batch Name",
    "User UUID",
    "State",
    "District",
    "Org Name",
    "School Id",
    "School Name",
    "Block Name",
    "Cluster Name",
    "User Type",
    "User Sub Type",
    "Declared Board",
    "Enrolment Date",
    "Completion Date",
    "Certificate Status",
    "Progress",
    "Total Score",
)
# The production csvColumns (B2), in the DataFrame order after the left join on
# (courseid, batchid, userid): join keys first, then the rest of the enrolment side.
_ENROLMENT_SIDE = (
    "courseid",
    "batchid",
    "userid",
    "collectionName",
    "batchName",
    "state",
    "district",
    "orgname",
    "schooludisecode",
    "schoolname",
    "board",
    "block",
    "cluster",
    "usertype",
    "usersubtype",
    "enrolleddate",
    "completedon",
    "certificatestatus",
    "completionPercentage",
)
_CACHE_FIELDS = (
    "state",
    "district",
    "orgname",
    "schooludisecode",
    "schoolname",
    "block",
    "cluster",
    "usertype",
    "usersubtype",
)
SCORE_SUFFIX = " - Score"
_NO_HIERARCHY = "next on empty iterator"
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def progress_rows(
    batch: Batch,
    enrolments: Sequence[Enrolment],
    users: Mapping[str, UserCache],
    hierarchy: Mapping[str, Any] | None,
    optional_nodes: set[str],
    attempts: Sequence[Attempt],
    ctx: ReportContext,
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """(header, rows keyed by header, ids of enrolled learners dropped as uncached).

    ``hierarchy`` is the parsed ``content_hierarchy.hierarchy`` of the course (None: no row ->
    ``BatchFailed("next on empty iterator")``), ``optional_nodes`` the members of
    ``<course>:<course>:optionalnodes`` (relation cache), ``attempts`` the
    ``assessment_aggregator`` rows (any; only this batch's learners' rows of this course count).
    Progress is an ``int``, every other value a ``str``.
    """
    learners, dropped = select_learners(batch, enrolments, users)
    if hierarchy is None:
        raise BatchFailed(_NO_HIERARCHY)
    assessments = assessment_content_ids(hierarchy, ctx)
    leaf = leaf_nodes_count(hierarchy)

    kept = _kept_attempts(batch, learners, attempts, assessments, ctx.best_score)
    pivot = sorted({attempt.content_id + SCORE_SUFFIX for attempt in _flatten(kept.values())})
    columns = [*_ENROLMENT_SIDE, "total_sum_score", *pivot]

    course = _CourseProgress(batch, leaf, optional_nodes, kept, ctx.zone)
    internal = [_learner_row(learner, course) for learner in learners]

    strings = [name for name in columns if name != "completionPercentage"]
    header, rows = organize(internal, columns, COLUMN_MAPPING, COLUMNS_ORDER, strings)
    return header, rows, dropped


@dataclass(frozen=True)
class _CourseProgress:
    """What every learner's row of one batch is computed against."""

    batch: Batch
    leaf_nodes: int
    optional_nodes: set[str]
    kept: dict[str, list[Attempt]]  # the chosen attempts per learner (``_kept_attempts``)
    zone: str


def _learner_row(learner: Learner, course: _CourseProgress) -> dict[str, Any]:
    """One learner's internal row: the enrolment side, the cached fields, then the scores."""
    enrolment, user = learner
    row: dict[str, Any] = {
        "courseid": enrolment.courseid,
        "batchid": enrolment.batchid,
        "userid": enrolment.userid,
        "collectionName": course.batch.collection_name,
        "batchName": course.batch.batch_name,
        "board": declared_board(user.get("board")),
        "enrolleddate": enrolment_date(enrolment, course.zone),
        "completedon": (
            timestamp_ddmmyyyy(enrolment.completedon, course.zone)
            if enrolment.completedon is not None
            else ""
        ),
        "certificatestatus": certificate_status(enrolment),
        "completionPercentage": (
            100
            if enrolment.completedon is not None
            else completion_percentage(
                enrolment.contentstatus, course.leaf_nodes, course.optional_nodes
            )
        ),
    }
    for name in _CACHE_FIELDS:
        row[name] = user.get(name)
    chosen = course.kept.get(enrolment.userid)
    if chosen:
        row["total_sum_score"] = total_score(chosen)
        for attempt in chosen:
            row[attempt.content_id + SCORE_SUFFIX] = grand_total_score(attempt.grand_total)
    return row


def _flatten(groups: Iterable[list[Attempt]]) -> Iterable[Attempt]:
    for group in groups:
        yield from group


# --- hierarchy ------------------------------------------------------------------------------


def _node_text(node: Mapping[str, Any], key: str) -> str | None:
    value = node.get(key, "")
    if value is not None and not isinstance(value, str):
        msg = f"hierarchy node {node.get('identifier')!r}: {key} is not a string: {value!r}"
        raise BatchFailed(msg)
    return value


def assessment_content_ids(hierarchy: Mapping[str, Any], ctx: ReportContext) -> set[str]:
    """B5.3 step 1: ids of the nodes (root included) that are assessments.

    A node qualifies if its ``contentType`` is a supported content type, or its ``objectType``
    a supported object type and its ``primaryCategory`` a supported primary category. Sunbird
    fails the batch on nodes it cannot read (a non-string field, a qualifying node without
    ``identifier``, ``children`` that is not a list of objects); so does this.
    """
    found: set[str] = set()
    pending: list[Any] = [hierarchy]
    while pending:
        node = pending.pop()
        if not isinstance(node, Mapping):
            msg = f"hierarchy node is not an object: {node!r}"
            raise BatchFailed(msg)
        content_type = _node_text(node, "contentType")
        object_type = _node_text(node, "objectType")
        category = _node_text(node, "primaryCategory")
        if content_type in ctx.supported_content_types or (
            object_type in ctx.supported_object_types
            and category in ctx.supported_primary_categories
        ):
            if "identifier" not in node:
                msg = "None.get"  # Scala's Option.get on the missing identifier
                raise BatchFailed(msg)
            identifier = node["identifier"]
            if isinstance(identifier, str):
                found.add(identifier)
            elif identifier is not None:  # a null id is kept by Sunbird but never matches
                msg = f"hierarchy node identifier is not a string: {identifier!r}"
                raise BatchFailed(msg)
        children = node.get("children", [])
        if children is None:
            continue
        if not isinstance(children, list):
            msg = f"hierarchy node {node.get('identifier')!r}: children is not a list"
            raise BatchFailed(msg)
        pending.extend(reversed(children))
    return found


def leaf_nodes_count(hierarchy: Mapping[str, Any]) -> int:
    """The root's ``leafNodesCount`` (missing or null -> 0; anything but a 32-bit integer fails
    the batch, as Sunbird's ``asInstanceOf[Int]`` does)."""
    value = hierarchy.get("leafNodesCount")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not _INT_MIN <= value <= _INT_MAX:
        msg = f"leafNodesCount is not an Int: {value!r}"
        raise BatchFailed(msg)
    return value


# --- per-learner values ---------------------------------------------------------------------


def _float32(value: float) -> float:
    packed: float = struct.unpack("f", struct.pack("f", value))[0]
    return packed


def completion_percentage(
    contentstatus: Mapping[str, int], leaf_nodes: int, optional_nodes: Iterable[str]
) -> int:
    """B5.2: 100 if the completed non-optional contents reach the leaf count, else
    ``Math.round(completed.toFloat / leaf * 100)`` in 32-bit floats (round half up)."""
    optional = set(optional_nodes)
    completed = sum(
        1 for content, status in contentstatus.items() if status == 2 and content not in optional
    )
    return _percentage(completed, leaf_nodes)


@functools.lru_cache(maxsize=4096)
def _percentage(completed: int, leaf_nodes: int) -> int:
    if completed >= leaf_nodes:
        return 100
    ratio = _float32(_float32(float(completed)) / _float32(float(leaf_nodes)))
    percent = _float32(ratio * _float32(100.0))
    return math.floor(percent + 0.5)


def enrolment_date(enrolment: Enrolment, zone: str) -> str | None:
    """B4.4 step 1 + B5.1 #16: ``enrolled_date`` (its date in the session zone) if set, else the
    ``enrolleddate`` text through Spark's lenient date cast; ``dd/MM/yyyy``, None if unparsable."""
    if enrolment.enrolled_date is not None:
        local = local_datetime(enrolment.enrolled_date, zone)
        return format_ddmmyyyy(local.year, local.month, local.day)
    if enrolment.enrolleddate is None:
        return None
    parsed = spark_string_to_date(enrolment.enrolleddate)
    return format_ddmmyyyy(*parsed) if parsed is not None else None


def certificate_status(enrolment: Enrolment) -> str:
    """``Issued`` if either certificate list is non-empty, else ``""`` (never ``Failed``)."""
    return "Issued" if enrolment.certificates or enrolment.issued_certificates else ""


def _reject_constant(name: str) -> float:
    msg = f"non-standard JSON number {name}"
    raise ValueError(msg)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@functools.lru_cache(maxsize=4096)  # a pure function of a value with few distinct texts
def declared_board(board: str | None) -> str | None:
    """Sunbird's ``extractFromArrayString``: the first element if the value parses (Jackson,
    trailing content ignored) as a JSON list whose head is a string; a null head gives null;
    anything else (plain text, ``[]``, other JSON) is returned unchanged."""
    if board is None:
        return None
    text = board.lstrip(" \t\r\n")
    try:
        value, _ = _DECODER.raw_decode(text)
    except ValueError:
        return board
    if not isinstance(value, list) or not value:
        return board
    head = value[0]
    if head is None or isinstance(head, str):
        return head
    return board


# --- scores ---------------------------------------------------------------------------------


def _score_key(attempt: Attempt) -> tuple[int, int, float]:
    score = attempt.total_score
    if score is None:
        return (0, 0, 0.0)
    if math.isnan(score):
        return (1, 1, 0.0)  # Spark orders NaN above every number
    return (1, 0, score)


def _time_key(attempt: Attempt) -> tuple[int, int]:
    if attempt.last_attempted_on is None:
        return (0, 0)
    return (1, (instant(attempt.last_attempted_on) - _EPOCH) // _MICROSECOND)


def _best(candidates: list[Attempt], best_score: bool) -> Attempt:
    """``row_number`` over ``desc(total_score)`` (or ``desc(last_attempted_on)``), nulls last;
    ties go to the earliest row given."""
    chosen = candidates[0]
    for attempt in candidates[1:]:
        if best_score:
            if _score_key(attempt) > _score_key(chosen):
                chosen = attempt
        elif _time_key(attempt) > _time_key(chosen):
            chosen = attempt
    return chosen


def _kept_attempts(
    batch: Batch,
    learners: Sequence[Learner],
    attempts: Sequence[Attempt],
    assessments: set[str],
    best_score: bool,
) -> dict[str, list[Attempt]]:
    """B5.3 steps 2-4: per learner, one attempt per assessment content of this course."""
    learner_ids = {learner.enrolment.userid for learner in learners}
    grouped: dict[tuple[str, str], list[Attempt]] = {}
    for attempt in attempts:
        if (
            attempt.user_id in learner_ids
            and attempt.course_id == batch.collection_id
            and attempt.batch_id == batch.batch_id
            and attempt.content_id in assessments
        ):
            grouped.setdefault((attempt.user_id, attempt.content_id), []).append(attempt)
    kept: dict[str, list[Attempt]] = {}
    for (user_id, _content), candidates in grouped.items():
        kept.setdefault(user_id, []).append(_best(candidates, best_score))
    return kept


def _sum(values: Iterable[float | None]) -> float | None:
    total: float | None = None
    for value in values:
        if value is not None:
            total = value if total is None else total + value
    return total


def total_score(chosen: Sequence[Attempt]) -> str | None:
    """B5.3 step 5: ``ceil((Σ total_score * 100) / Σ total_max_score)`` + ``%``; null (later
    ``""``) when a sum is null or the maximum is 0."""
    score = _sum(attempt.total_score for attempt in chosen)
    maximum = _sum(attempt.total_max_score for attempt in chosen)
    ratio = spark_divide(score * 100 if score is not None else None, maximum)
    return None if ratio is None else f"{spark_ceil(ratio)}%"


def grand_total_score(grand_total: str | None) -> str | None:
    """B5.3 step 6: ``"a/b"`` -> ``ceil((a * 100) / b)`` + ``%``; null (later ``""``) without a
    ``/``, with a non-numeric part or a zero ``b`` (Spark's cast and division rules)."""
    if grand_total is None:
        return None
    parts = grand_total.split("/")
    if len(parts) < 2:
        return None
    numerator = spark_string_to_double(parts[0])
    ratio = spark_divide(
        numerator * 100 if numerator is not None else None, spark_string_to_double(parts[1])
    )
    return None if ratio is None else f"{spark_ceil(ratio)}%"
