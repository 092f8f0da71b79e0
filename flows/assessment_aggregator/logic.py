"""Pure rules of the assessment-aggregator job (``docs/flows/assessment-aggregator.md``).

The job reads batch-assess messages from ``<env>.telemetry.assess``. Each one holds one attempt
at one assessment content of a course batch. The job stores the attempt's score in
``sunbird_courses.assessment_aggregator``, recomputes the user's best score per content into
``user_activity_agg`` and asks for a certificate. This module makes every decision and builds
every value that is written. It does no I/O: the clock (``now_ms``), the request id of the
certificate event and every Redis, Cassandra or HTTP lookup are arguments.

How the flow uses this module
-----------------------------
Process the events of one ``(user_id, course_id)`` one at a time (key the stream by that pair):
step 4 reads what step 3 wrote, as Sunbird's chained single-parallelism operators do.

1. ``event = parse_assess_message(msg.value())``. An :class:`InvalidEvent` goes to the failed
   topic with ``e.reason`` and counts ``failed-event-count``.
2. ``leaf = SMEMBERS leafnodes_key(event.course_id)`` (relation cache, DB 10 of redis-meta).
3. ``decision = evaluate_assess_event(event, leaf_nodes=leaf, now_ms=now,
   stored_attempt=read_by_pk, total_questions=lookup_or_None)``.

   * ``read_by_pk(key: AttemptKey) -> StoredAttempt | None`` runs
     ``SELECT last_attempted_on, created_on FROM assessment_aggregator`` by the full key.
   * ``lookup_or_None`` is ``None`` unless ``assessment.skip.missingRecords`` is true. Then it
     is ``lambda cid: resolve_total_questions(cid, GET cid (content cache, DB 5), http_get)``,
     where ``http_get(cid)`` returns the body of ``GET <content.read.api><cid>``. Network
     errors and 5xx answers should raise ``TransientError`` (retried), not park the event.
   * Increment every name in ``decision.counters``. An :class:`InvalidEvent` raised here (a
     null inside ``params``/``resvalues``, an unusable content-read answer) is handled as in
     step 1; a :class:`ContentMetaUnavailable` also carries ``counters``.
   * ``decision.to_failed_topic``: park the original message with ``decision.reason``.
   * ``decision.row``: ``INSERT INTO assessment_aggregator`` with ``row.columns()``.
     Timestamps are epoch milliseconds (the driver binds ints as timestamps), and each
     :class:`QuestionUdt` binds to the ``question`` UDT by attribute name.
4. If ``decision.aggregate``:

   * ``rows = SELECT content_id, attempt_id, last_attempted_on, total_max_score, total_score
     FROM assessment_aggregator WHERE user_id=? AND course_id=? AND batch_id=?``, each turned
     into a :class:`StoredScore`. ``epoch_ms`` converts the driver's datetimes.
   * Only for ``Verdict.REPLAYED``: also read ``aggregates, agg_details`` of the
     ``user_activity_agg`` row into ``current=CurrentActivityAgg(...)`` (or ``None``).
   * ``agg = aggregate_scores(event, rows, now_ms=now, agg_type=conf, current=current)``.
     Count ``agg.counters``. If ``agg.update`` is set, run ``UPDATE user_activity_agg SET
     aggregates = aggregates + ?, agg_details = ?, agg_last_updated = agg_last_updated + ?
     WHERE activity_type=? AND activity_id=? AND user_id=? AND context_id=?`` with its fields.

5. If ``should_emit_certificate(decision, agg)``: produce ``certificate_request(event,
   agg.certificate_attempt_id, now_ms=now, request_id=str(uuid4()))`` to
   ``<env>.issue.certificate.request`` with no key, and count ``cert-issue-events-count``.

Fixes over Sunbird
------------------
Where Sunbird has a quirk or crashes, this module behaves as follows (see also
docs/flows/assessment-aggregator.md#14-what-we-fix-over-sunbird). Everything else is Sunbird's
behaviour.

* **Replays heal instead of being lost.** Sunbird skips an event whose ``assessmentTs`` equals
  the stored one, so if it crashed between the attempt INSERT and the ``user_activity_agg``
  UPDATE, the replay never fixes the aggregates or sends the certificate. Here an equal
  timestamp is ``Verdict.REPLAYED``. The row is still not written (``skipped-event-count``, as
  in D-B2), but the aggregates are recomputed. They are written, and the certificate sent, only
  if the stored aggregates differ. A full replay therefore writes nothing and emits nothing, so
  the rows stay identical. The only visible difference is ``db-score-read-count`` +1.
* **Order-independent totals.** Totals use a correctly rounded sum (``math.fsum``) over the
  distinct questions, and the question list follows the answer time. Sunbird adds in hash-map
  order, so the last bit could depend on that order.
* **No crash loops in the score step.** Sunbird's score step has no error handling. A stored
  row with a null ``last_attempted_on`` crashes it when it picks the certificate
  ``attemptId``, and an infinite total score crashes Gson. Here the score step never raises
  on stored data, and a null time sorts as the oldest attempt. ``NaN``/``Infinity`` and
  out-of-range numbers are rejected when the message is parsed, and totals that overflow a
  double are rejected when it is scored. For the same reason a recompute request must carry
  ``batchId`` and ``userId``: Sunbird forwards it without them and then crashes.
* **Latest attempt to the millisecond.** Sunbird formats ``last_attempted_on`` without
  milliseconds and then parses it back to pick the latest attempt, so two attempts in the same
  second tie. Here they are compared in milliseconds; true ties still go to row order.
* **Null times in stored rows.** A stored row with a null ``last_attempted_on`` is overwritten
  (Sunbird throws a NullPointerException). A null ``created_on`` becomes ``now_ms``.
* **Ids must be non-empty strings.** An empty id is rejected (Sunbird would write a row with an
  empty key). A question without ``edata.item.id`` is rejected; Sunbird would merge all such
  questions into one under a null id.
* **Unreadable content cache.** A content-cache value that is not a JSON object counts as a
  miss, so the content read API is asked (Sunbird parks the event).
* **Valid certificate JSON.** The ids in the certificate request are JSON-escaped. This gives
  the same bytes for ordinary ids and valid JSON when an id contains ``"`` or ``\\``.

Choices Sunbird leaves open
------------------------------
* Types are strict. Ids and texts must be JSON strings, scores JSON numbers (missing or null
  reads as 0.0), and ``assessmentTs``/``ets`` JSON integers. Sunbird's Gson would also coerce
  numeric strings. Unlike Sunbird's ``Long`` cast, small integers are accepted.
* Nested objects in ``params``/``resvalues`` keep their input key order. Sunbird's order for
  objects with more than 4 keys follows Scala's hash-map iteration.
* A null inside a kept answer's ``params``/``resvalues`` raises when the attempt is scored,
  before the stored row is read. The Java driver fails in the same place, when it builds the
  UDT value.
* ``RecomputeRequest`` still type-checks ``attemptId``/``assessmentTs`` when they are present.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum
from typing import Any, Final, NoReturn

from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import gson_roundtrip_json, gson_string, java_double_to_string

__all__ = [
    "ACTIVITY_TYPE",
    "DEFAULT_AGG_TYPE",
    "AssessAnswer",
    "AssessDecision",
    "AssessmentAggregatorRow",
    "AttemptKey",
    "AttemptScore",
    "BatchAssessEvent",
    "ContentCheck",
    "ContentMetaUnavailable",
    "CurrentActivityAgg",
    "Metric",
    "QuestionUdt",
    "RecomputeRequest",
    "ScoreAggregation",
    "StoredAttempt",
    "StoredScore",
    "TotalQuestions",
    "UserActivityAggUpdate",
    "Verdict",
    "aggregate_scores",
    "certificate_request",
    "check_content",
    "decide_attempt",
    "epoch_ms",
    "evaluate_assess_event",
    "format_agg_date",
    "format_grand_total",
    "latest_answers",
    "leafnodes_key",
    "parse_assess_message",
    "question_count_ok",
    "resolve_total_questions",
    "score_answers",
    "should_emit_certificate",
    "stored_score_of",
    "total_questions_from_cache",
    "total_questions_from_content_read",
]

ACTIVITY_TYPE: Final = "Course"
"""``user_activity_agg.activity_type`` of every row this job writes."""

DEFAULT_AGG_TYPE: Final = "attempt_metrics"
"""Default of ``user.activity.agg.type``, the ``type`` field of each ``agg_details`` entry."""

_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
_INT_MAX: Final = 2**31 - 1


class Metric(StrEnum):
    """Sunbird's counter names, listed in the ``counters`` of each result.

    See docs/flows/assessment-aggregator.md#12-metrics.
    """

    CACHE_HIT = "cache-hit-count"
    CACHE_MISS = "cache-hit-miss-count"
    DB_READ = "db-read-count"
    DB_UPDATE = "db-update-count"
    BATCH_SUCCESS = "batch-success-event-count"
    SKIPPED = "skipped-event-count"
    FAILED = "failed-event-count"
    IGNORED = "ignored-event-count"
    RECOMPUTE = "recompute-agg-event-count"
    API_SUCCESS = "api-hit-success-count"
    API_FAILED = "api-hit-failed-count"
    DB_SCORE_READ = "db-score-read-count"
    DB_SCORE_UPDATE = "db-score-update-count"
    CERT_ISSUED = "cert-issue-events-count"


class ContentMetaUnavailable(InvalidEvent):
    """The content read API did not give a usable answer.

    See docs/flows/assessment-aggregator.md#6-question-count-check.

    Sunbird parks the event with ``Failed to fetch the content meta for the content ID: <id>``.
    ``counters`` lists the counters of the lookup, including ``api-hit-failed-count`` when
    the answer was not ``OK``.
    """

    def __init__(self, reason: str, counters: tuple[Metric, ...]) -> None:
        super().__init__(reason)
        self.counters = counters


# --------------------------------------------------------------------------------------------
# Input model and parsing (docs/flows/assessment-aggregator.md#1-inputs, #3-parsing-and-validation)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssessAnswer:
    """One ASSESS telemetry event in ``events``, reduced to the fields Sunbird reads.

    ``params`` and ``resvalues`` are already converted to ``map<text,text>`` values by Sunbird's
    rule (docs/flows/assessment-aggregator.md#7-score, step 3): a string stays, and anything else
    becomes its Gson JSON text. A JSON ``null`` stays ``None``. Cassandra rejects it, so scoring
    such an answer raises. ``position`` is the index in ``events`` and is used in reasons only.
    """

    ets: int
    question_id: str
    max_score: float
    score: float
    type: str | None
    title: str | None
    description: str | None
    duration: float
    params: tuple[dict[str, str | None], ...]
    resvalues: tuple[dict[str, str | None], ...]
    position: int = 0


@dataclass(frozen=True)
class AttemptKey:
    """Primary key of an ``assessment_aggregator`` row."""

    user_id: str
    course_id: str
    batch_id: str
    content_id: str
    attempt_id: str


@dataclass(frozen=True)
class BatchAssessEvent:
    """A batch-assess message with a non-empty ``events`` list (one attempt to score)."""

    course_id: str
    batch_id: str
    user_id: str
    content_id: str
    attempt_id: str
    assessment_ts: int
    answers: tuple[AssessAnswer, ...]

    @property
    def key(self) -> AttemptKey:
        """The attempt's ``assessment_aggregator`` primary key."""
        return AttemptKey(
            self.user_id, self.course_id, self.batch_id, self.content_id, self.attempt_id
        )


@dataclass(frozen=True)
class RecomputeRequest:
    """A batch-assess message whose ``events`` is missing, null or empty.

    See docs/flows/assessment-aggregator.md#9-recompute-requests.

    It asks only for the user's aggregates to be recomputed and a certificate request to be
    sent. ``attempt_id`` and ``assessment_ts`` are optional and unused.
    """

    course_id: str
    batch_id: str
    user_id: str
    content_id: str
    attempt_id: str | None = None
    assessment_ts: int | None = None


def _fail(reason: str) -> NoReturn:
    raise InvalidEvent(reason)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _reject_constant(name: str) -> NoReturn:
    _fail(f"message is not valid JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _fail(f"message is not valid JSON: number {text} is out of the double range")
    return value


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)


def _text(value: str, path: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _fail(f"{path} contains an unpaired surrogate")
    return value


def _required_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    if key not in obj:
        _fail(f"{path} is missing")
    value = obj[key]
    if not isinstance(value, str):
        _fail(f"{path} must be a string, got {_kind(value)}")
    if not value:
        _fail(f"{path} is empty")
    return _text(value, path)


def _optional_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        _fail(f"{path} must be a string or null, got {_kind(value)}")
    return _text(value, path)


def _long(value: object, path: str) -> int:
    if value is None:
        _fail(f"{path} is null")
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{path} must be an integer (epoch milliseconds), got {_kind(value)} {value!r}")
    if not _LONG_MIN <= value <= _LONG_MAX:
        _fail(f"{path} {value} does not fit a 64-bit timestamp")
    return value


def _number_or_zero(obj: Mapping[str, Any], key: str, path: str) -> float:
    value = obj.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(f"{path} must be a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        _fail(f"{path} {value} is out of the double range")
    return number


def _object(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    if key not in obj or obj[key] is None:
        _fail(f"{path} is missing")
    value = obj[key]
    if not isinstance(value, dict):
        _fail(f"{path} must be an object, got {_kind(value)}")
    return value


def _text_maps(obj: Mapping[str, Any], key: str, path: str) -> tuple[dict[str, str | None], ...]:
    """``params``/``resvalues``: a list of objects, each value converted to ``text``.

    See docs/flows/assessment-aggregator.md#7-score.
    """
    if key not in obj or obj[key] is None:
        _fail(f"{path} is missing")
    value = obj[key]
    if not isinstance(value, list):
        _fail(f"{path} must be an array, got {_kind(value)}")
    out: list[dict[str, str | None]] = []
    for i, element in enumerate(value):
        if not isinstance(element, dict):
            _fail(f"{path}[{i}] must be an object, got {_kind(element)}")
        converted: dict[str, str | None] = {}
        for k, v in element.items():
            text = None if v is None else (v if isinstance(v, str) else _gson_text(v))
            converted[_text(k, f"{path}[{i}] key")] = (
                None if text is None else _text(text, f"{path}[{i}].{k}")
            )
        out.append(converted)
    return tuple(out)


def _parse_answer(raw: object, position: int) -> AssessAnswer:
    path = f"events[{position}]"
    if not isinstance(raw, dict):
        _fail(f"{path} must be an object, got {_kind(raw)}")
    if "ets" not in raw:
        _fail(f"{path}.ets is missing")
    ets = _long(raw["ets"], f"{path}.ets")
    edata = _object(raw, "edata", f"{path}.edata")
    item = _object(edata, "item", f"{path}.edata.item")
    ipath = f"{path}.edata.item"
    return AssessAnswer(
        ets=ets,
        question_id=_required_str(item, "id", f"{ipath}.id"),
        max_score=_number_or_zero(item, "maxscore", f"{ipath}.maxscore"),
        score=_number_or_zero(edata, "score", f"{path}.edata.score"),
        type=_optional_str(item, "type", f"{ipath}.type"),
        title=_optional_str(item, "title", f"{ipath}.title"),
        description=_optional_str(item, "desc", f"{ipath}.desc"),
        duration=_number_or_zero(edata, "duration", f"{path}.edata.duration"),
        params=_text_maps(item, "params", f"{ipath}.params"),
        resvalues=_text_maps(edata, "resvalues", f"{path}.edata.resvalues"),
        position=position,
    )


def parse_assess_message(value: bytes | str) -> BatchAssessEvent | RecomputeRequest:
    """Parse one ``<env>.telemetry.assess`` message value.

    See docs/flows/assessment-aggregator.md#1-inputs.

    Returns :class:`BatchAssessEvent` when ``events`` is a non-empty array, and
    :class:`RecomputeRequest` when it is missing, null or empty
    (docs/flows/assessment-aggregator.md#9-recompute-requests). Raises :class:`InvalidEvent` with a
    precise reason in these cases: bytes that are not UTF-8 JSON, ``NaN``/``Infinity`` or
    out-of-range numbers, a top level that is not an object, a missing/empty/non-string id, a
    non-integer ``assessmentTs``/``ets``, a missing ``edata``, ``edata.item``, ``item.params`` or
    ``edata.resvalues``, or a non-number score. These are the cases where Sunbird's job throws and
    parks the event. Sunbird's unparseable-message case (D-B3) raises here as well.
    """
    if isinstance(value, bytes | bytearray):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            _fail(f"message is not UTF-8: {exc}")
    else:
        text = value
    try:
        return _parse_document(_loads(text))
    except json.JSONDecodeError as exc:
        _fail(f"message is not valid JSON: {exc}")
    except RecursionError:
        _fail("message is nested too deeply")


def _parse_document(doc: object) -> BatchAssessEvent | RecomputeRequest:
    if not isinstance(doc, dict):
        _fail(f"message must be a JSON object, got {_kind(doc)}")

    course_id = _required_str(doc, "courseId", "courseId")
    content_id = _required_str(doc, "contentId", "contentId")
    batch_id = _required_str(doc, "batchId", "batchId")
    user_id = _required_str(doc, "userId", "userId")
    events = doc.get("events")
    if events is not None and not isinstance(events, list):
        _fail(f"events must be an array, got {_kind(events)}")
    if not events:
        attempt_id = _optional_str(doc, "attemptId", "attemptId")
        ts = doc.get("assessmentTs")
        return RecomputeRequest(
            course_id=course_id,
            batch_id=batch_id,
            user_id=user_id,
            content_id=content_id,
            attempt_id=attempt_id,
            assessment_ts=None if ts is None else _long(ts, "assessmentTs"),
        )
    attempt_id = _required_str(doc, "attemptId", "attemptId")
    if "assessmentTs" not in doc:
        _fail("assessmentTs is missing")
    assessment_ts = _long(doc["assessmentTs"], "assessmentTs")
    answers = tuple(_parse_answer(raw, i) for i, raw in enumerate(events))
    return BatchAssessEvent(
        course_id=course_id,
        batch_id=batch_id,
        user_id=user_id,
        content_id=content_id,
        attempt_id=attempt_id,
        assessment_ts=assessment_ts,
        answers=answers,
    )


# --------------------------------------------------------------------------------------------
# Java/Gson formatting (the exact text Sunbird writes)
# --------------------------------------------------------------------------------------------


def _gson_text(value: object) -> str:
    """Sunbird's Gson text of a parsed JSON value; a number beyond the double range is invalid."""
    try:
        return gson_roundtrip_json(value)
    except OverflowError as e:
        _fail(str(e))


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


# --------------------------------------------------------------------------------------------
# Stage 1: content validation, question dedup, question count, scoring, upsert decision
# (docs/flows/assessment-aggregator.md#4-content-validation to #8-upsert-decision)
# --------------------------------------------------------------------------------------------


def leafnodes_key(course_id: str) -> str:
    """Relation-cache key (DB 10) of the course's leaf contents: ``<course>:<course>:leafnodes``."""
    return f"{course_id}:{course_id}:leafnodes"


@dataclass(frozen=True)
class ContentCheck:
    """Result of the leaf-node check (docs/flows/assessment-aggregator.md#4-content-validation)."""

    valid: bool
    cache_hit: bool

    @property
    def metric(self) -> Metric:
        """``cache-hit-count`` for a non-empty set, ``cache-hit-miss-count`` for an empty one."""
        return Metric.CACHE_HIT if self.cache_hit else Metric.CACHE_MISS


def check_content(content_id: str, leaf_nodes: Collection[str]) -> ContentCheck:
    """Sunbird's content validation (docs/flows/assessment-aggregator.md#4-content-validation).

    A content is valid when the course's leaf-node set is empty or missing (a cache miss), or
    when the set contains it. It is invalid only if the set exists and lacks the content.
    """
    if not leaf_nodes:
        return ContentCheck(valid=True, cache_hit=False)
    return ContentCheck(valid=content_id in leaf_nodes, cache_hit=True)


def latest_answers(answers: Iterable[AssessAnswer]) -> tuple[AssessAnswer, ...]:
    """Question dedup: the answer with the latest ``ets`` per question id.

    See docs/flows/assessment-aggregator.md#5-question-dedup.

    If two answers to one question have equal ``ets``, the earlier one in ``events`` wins, as
    in Sunbird's stable sort. Sunbird leaves the order of the result unspecified (hash order);
    here it is by the winning answer's ``ets``, then question id.
    """
    best: dict[str, AssessAnswer] = {}
    for answer in answers:
        kept = best.get(answer.question_id)
        if kept is None or answer.ets > kept.ets:
            best[answer.question_id] = answer
    return tuple(sorted(best.values(), key=lambda a: (a.ets, a.question_id)))


def question_count_ok(unique_questions: int, total_questions: int | None) -> bool:
    """The ``assessment.skip.missingRecords`` check.

    See docs/flows/assessment-aggregator.md#6-question-count-check.

    An unknown count (``None``, only from the API) passes. Otherwise the attempt passes when
    ``unique_questions <= total_questions``.
    """
    return total_questions is None or unique_questions <= total_questions


@dataclass(frozen=True)
class TotalQuestions:
    """A content's question count and the counters its lookup adds.

    See docs/flows/assessment-aggregator.md#6-question-count-check.
    """

    value: int | None
    counters: tuple[Metric, ...]


def total_questions_from_cache(cache_value: str | bytes | None) -> int:
    """``totalquestions`` of a content-cache value (DB 5), where 0 means unknown.

    See docs/flows/assessment-aggregator.md#6-question-count-check.

    The keys are compared after lower-casing them and removing ``_``, and ``""`` values are
    ignored, as Sunbird's ``DataCache`` does. A number or numeric string is truncated to an int.
    Anything else, a missing key or an unreadable value gives 0, so the API is asked.
    """
    if cache_value is None:
        return 0
    try:
        text = cache_value.decode("utf-8") if isinstance(cache_value, bytes) else cache_value
        doc = json.loads(text) if text.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return 0
    if not isinstance(doc, dict):
        return 0
    found: object = None
    for key, val in doc.items():
        if val != "" and key.lower().replace("_", "") == "totalquestions":
            found = val
    if isinstance(found, bool):
        return 0
    if isinstance(found, str):
        try:
            found = float(found)
        except ValueError:
            return 0
    if isinstance(found, int | float):
        if math.isnan(found):
            return 0
        if math.isinf(found):
            return _INT_MAX if found > 0 else -_INT_MAX - 1
        return max(-_INT_MAX - 1, min(_INT_MAX, int(found)))  # Java's double-to-int
    return 0


def _meta_unavailable(reason: str, counters: tuple[Metric, ...]) -> NoReturn:
    raise ContentMetaUnavailable(reason, counters)


def total_questions_from_content_read(body: str | bytes, content_id: str) -> int | None:
    """``result.content.totalQuestions`` of a content read API answer.

    See docs/flows/assessment-aggregator.md#6-question-count-check.

    Raises :class:`ContentMetaUnavailable` when ``responseCode`` is not ``OK``
    (case-insensitive), is missing, or the body is not a JSON object. It also raises when
    ``totalQuestions`` is present but is not an integer, because Sunbird's cast fails there.
    Returns ``None`` when the count is absent or null.
    """
    prefix = f"Failed to fetch the content meta for the content ID: {content_id}"
    unread = (Metric.CACHE_HIT, Metric.CACHE_MISS)
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        doc = json.loads(text.replace("\r", "").replace("\n", ""))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        _meta_unavailable(f"{prefix} (unreadable answer: {exc!r})", unread)
    code = doc.get("responseCode") if isinstance(doc, dict) else None
    if not isinstance(code, str):
        _meta_unavailable(f"{prefix} (no responseCode)", unread)
    if code.upper() != "OK":
        failed = (*unread, Metric.API_FAILED)
        _meta_unavailable(f"{prefix} (responseCode {code})", failed)
    ok = (*unread, Metric.API_SUCCESS)
    result = doc.get("result")
    content = result.get("content") if isinstance(result, dict) else None
    if (result is not None and not isinstance(result, dict)) or (
        content is not None and not isinstance(content, dict)
    ):
        _meta_unavailable(f"{prefix} (result.content is not an object)", ok)
    count = None if content is None else content.get("totalQuestions")
    if count is None:
        return None
    if (
        isinstance(count, bool)
        or not isinstance(count, int)
        or not -_INT_MAX - 1 <= count <= _INT_MAX
    ):
        _meta_unavailable(f"{prefix} (totalQuestions is not an int: {count!r})", ok)
    return count


def resolve_total_questions(
    content_id: str,
    cache_value: str | bytes | None,
    fetch_content_read: Callable[[str], str | bytes],
) -> TotalQuestions:
    """Question count of a content: the content cache first, then the API.

    See docs/flows/assessment-aggregator.md#6-question-count-check, #12-metrics.

    ``fetch_content_read(content_id)`` is called only when the cache gives 0. Every lookup
    counts ``cache-hit-count``. A cache count of 0 also counts ``cache-hit-miss-count`` and
    then ``api-hit-success-count`` or, raised with :class:`ContentMetaUnavailable`,
    ``api-hit-failed-count``.
    """
    cached = total_questions_from_cache(cache_value)
    if cached != 0:
        return TotalQuestions(cached, (Metric.CACHE_HIT,))
    value = total_questions_from_content_read(fetch_content_read(content_id), content_id)
    return TotalQuestions(value, (Metric.CACHE_HIT, Metric.CACHE_MISS, Metric.API_SUCCESS))


@dataclass(frozen=True)
class QuestionUdt:
    """A value of the ``sunbird_courses.question`` UDT, field names as in the UDT.

    See docs/flows/assessment-aggregator.md#22-cassandra-keyspace-sunbird_courses.

    ``assess_ts`` is in epoch ms. ``duration`` is ``BigDecimal.valueOf(double)``, so ``14``
    becomes ``Decimal('14.0')``.
    """

    id: str
    assess_ts: int
    max_score: float
    score: float
    type: str | None
    title: str | None
    resvalues: tuple[dict[str, str], ...]
    params: tuple[dict[str, str], ...]
    description: str | None
    duration: Decimal


@dataclass(frozen=True)
class AttemptScore:
    """Score: the distinct questions of one attempt and their totals.

    See docs/flows/assessment-aggregator.md#7-score.
    """

    questions: tuple[QuestionUdt, ...]
    total_score: float
    total_max_score: float
    grand_total: str


def _no_nulls(maps: tuple[dict[str, str | None], ...], path: str) -> tuple[dict[str, str], ...]:
    out: list[dict[str, str]] = []
    for i, m in enumerate(maps):
        for k, v in m.items():
            if v is None:
                _fail(f"{path}[{i}].{k} is null (Cassandra refuses nulls inside collections)")
        out.append({k: v for k, v in m.items() if v is not None})
    return tuple(out)


def _question(answer: AssessAnswer) -> QuestionUdt:
    path = f"events[{answer.position}]"
    return QuestionUdt(
        id=answer.question_id,
        assess_ts=answer.ets,
        max_score=answer.max_score,
        score=answer.score,
        type=answer.type,
        title=answer.title,
        resvalues=_no_nulls(answer.resvalues, f"{path}.edata.resvalues"),
        params=_no_nulls(answer.params, f"{path}.edata.item.params"),
        description=answer.description,
        duration=Decimal(java_double_to_string(answer.duration)),
    )


def _sum(values: Iterable[float], what: str) -> float:
    try:
        total = math.fsum(values) + 0.0  # + 0.0: Sunbird starts from 0.0, never -0.0
    except OverflowError:
        _fail(f"{what} overflows a double")
    if not math.isfinite(total):
        _fail(f"{what} overflows a double")
    return total


def score_answers(answers: Iterable[AssessAnswer]) -> AttemptScore:
    """Score one attempt: dedup, totals, ``grand_total``, UDTs.

    See docs/flows/assessment-aggregator.md#5-question-dedup, #7-score.

    ``total_score`` is the sum of ``edata.score`` and ``total_max_score`` the sum of
    ``item.maxscore``, over the latest answer of each distinct question. Raises
    :class:`InvalidEvent` when a kept answer has a null value inside ``params``/``resvalues``
    (Cassandra refuses it, so Sunbird parks the event) or a total overflows.
    """
    kept = latest_answers(answers)
    questions = tuple(_question(a) for a in kept)
    total_score = _sum((a.score for a in kept), "total score")
    total_max_score = _sum((a.max_score for a in kept), "total max score")
    return AttemptScore(
        questions=questions,
        total_score=total_score,
        total_max_score=total_max_score,
        grand_total=format_grand_total(total_score, total_max_score),
    )


@dataclass(frozen=True)
class StoredAttempt:
    """``last_attempted_on, created_on`` of an existing attempt row (epoch ms; may be null)."""

    last_attempted_on: int | None
    created_on: int | None


@dataclass(frozen=True)
class AssessmentAggregatorRow:
    """The ``INSERT INTO assessment_aggregator`` (an upsert of the whole row).

    See docs/flows/assessment-aggregator.md#22-cassandra-keyspace-sunbird_courses.

    Field names are the column names. Timestamps are epoch milliseconds.
    """

    user_id: str
    course_id: str
    batch_id: str
    content_id: str
    attempt_id: str
    created_on: int
    updated_on: int
    last_attempted_on: int
    total_score: float
    total_max_score: float
    grand_total: str
    question: tuple[QuestionUdt, ...]

    def columns(self) -> dict[str, object]:
        """Column name → value, with ``question`` as a list of :class:`QuestionUdt`."""
        return {
            "user_id": self.user_id,
            "course_id": self.course_id,
            "batch_id": self.batch_id,
            "content_id": self.content_id,
            "attempt_id": self.attempt_id,
            "created_on": self.created_on,
            "updated_on": self.updated_on,
            "last_attempted_on": self.last_attempted_on,
            "total_score": self.total_score,
            "total_max_score": self.total_max_score,
            "grand_total": self.grand_total,
            "question": list(self.question),
        }


class Verdict(StrEnum):
    """What stage 1 decided for one message."""

    WRITE = "write"
    """New attempt, or newer than the stored one: write ``row``, aggregate, send a certificate."""
    RECOMPUTE = "recompute"
    """No ``events``: aggregate and send a certificate, nothing else.

    See docs/flows/assessment-aggregator.md#9-recompute-requests.
    """
    REPLAYED = "replayed"
    """Same ``assessmentTs`` as the stored row: not written; aggregates are healed if stale."""
    OLDER = "older"
    """Older than the stored row: skipped, nothing written or sent.

    See docs/flows/assessment-aggregator.md#8-upsert-decision.
    """
    CONTENT_NOT_IN_COURSE = "content-not-in-course"
    """The course's leaf-node set lacks the content: failed topic, ``failed-event-count``."""
    TOO_MANY_QUESTIONS = "too-many-questions"
    """More distinct questions than ``totalQuestions``: failed topic, ``ignored-event-count``."""


@dataclass(frozen=True)
class AssessDecision:
    """Stage 1's result for one parsed message.

    See docs/flows/assessment-aggregator.md#4-content-validation to #8-upsert-decision.

    ``reason`` explains every verdict except ``WRITE`` and ``RECOMPUTE`` (empty for those).
    ``row`` is set only for ``WRITE``. ``counters`` lists the Sunbird counters to increment.
    """

    verdict: Verdict
    event: BatchAssessEvent | RecomputeRequest
    reason: str
    counters: tuple[Metric, ...]
    row: AssessmentAggregatorRow | None = None
    score: AttemptScore | None = None

    @property
    def to_failed_topic(self) -> bool:
        """Park the original message on the failed topic with ``reason``."""
        return self.verdict in (Verdict.CONTENT_NOT_IN_COURSE, Verdict.TOO_MANY_QUESTIONS)

    @property
    def aggregate(self) -> bool:
        """Run the score step (:func:`aggregate_scores`) for this message."""
        return self.verdict in (Verdict.WRITE, Verdict.RECOMPUTE, Verdict.REPLAYED)


def decide_attempt(
    event: BatchAssessEvent,
    score: AttemptScore,
    stored: StoredAttempt | None,
    now_ms: int,
    counters: Sequence[Metric] = (),
) -> AssessDecision:
    """The upsert decision (docs/flows/assessment-aggregator.md#8-upsert-decision).

    With no stored row, the attempt is written with ``created_on = now_ms``. A stored row is
    overwritten only if ``assessmentTs`` is strictly newer, and its ``created_on`` is kept.
    An equal timestamp is ``REPLAYED`` and an older one ``OLDER``: both count
    ``skipped-event-count`` and write no row.
    """
    base = tuple(counters)
    created_on = now_ms
    if stored is not None:
        base += (Metric.DB_READ,)
        last = stored.last_attempted_on
        if last is not None and event.assessment_ts <= last:
            verdict = Verdict.REPLAYED if event.assessment_ts == last else Verdict.OLDER
            relation = "equals" if verdict is Verdict.REPLAYED else "is older than"
            reason = (
                f"assessmentTs {event.assessment_ts} {relation} the stored last_attempted_on "
                f"{last} of attempt {event.attempt_id}"
            )
            return AssessDecision(verdict, event, reason, (*base, Metric.SKIPPED), score=score)
        if stored.created_on is not None:
            created_on = stored.created_on
    row = AssessmentAggregatorRow(
        user_id=event.user_id,
        course_id=event.course_id,
        batch_id=event.batch_id,
        content_id=event.content_id,
        attempt_id=event.attempt_id,
        created_on=created_on,
        updated_on=now_ms,
        last_attempted_on=event.assessment_ts,
        total_score=score.total_score,
        total_max_score=score.total_max_score,
        grand_total=score.grand_total,
        question=score.questions,
    )
    counters_out = (*base, Metric.DB_UPDATE, Metric.BATCH_SUCCESS)
    return AssessDecision(Verdict.WRITE, event, "", counters_out, row=row, score=score)


def evaluate_assess_event(
    event: BatchAssessEvent | RecomputeRequest,
    *,
    leaf_nodes: Collection[str],
    now_ms: int,
    stored_attempt: Callable[[AttemptKey], StoredAttempt | None],
    total_questions: Callable[[str], TotalQuestions] | None = None,
) -> AssessDecision:
    """All of stage 1 in Sunbird's order: validate, dedup, count, score, decide.

    See docs/flows/assessment-aggregator.md#4-content-validation to #8.

    ``leaf_nodes`` is the course's relation-cache set. ``stored_attempt`` reads the attempt row
    by its key, and is called only for an attempt that passed every check.
    ``total_questions`` is given only when ``assessment.skip.missingRecords`` is on, and is
    called only for a non-recompute message with valid content. Raises :class:`InvalidEvent`
    where Sunbird's stage 1 throws.
    """
    check = check_content(event.content_id, leaf_nodes)
    counters: list[Metric] = [check.metric]
    if not check.valid:
        reason = (
            f"content {event.content_id} is not a leaf node of course {event.course_id} "
            f"(relation cache {leafnodes_key(event.course_id)})"
        )
        return AssessDecision(
            Verdict.CONTENT_NOT_IN_COURSE, event, reason, (*counters, Metric.FAILED)
        )
    if isinstance(event, RecomputeRequest):
        return AssessDecision(Verdict.RECOMPUTE, event, "", (*counters, Metric.RECOMPUTE))
    kept = latest_answers(event.answers)
    if total_questions is not None:
        tq = total_questions(event.content_id)
        counters.extend(tq.counters)
        if not question_count_ok(len(kept), tq.value):
            reason = (
                f"{len(kept)} distinct questions exceed totalQuestions {tq.value} "
                f"of content {event.content_id}"
            )
            return AssessDecision(
                Verdict.TOO_MANY_QUESTIONS, event, reason, (*counters, Metric.IGNORED)
            )
    score = score_answers(kept)
    return decide_attempt(event, score, stored_attempt(event.key), now_ms, counters)


# --------------------------------------------------------------------------------------------
# Score step: best score per content, agg_details, certificate attempt
# (docs/flows/assessment-aggregator.md#10-best-score-aggregation)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredScore:
    """One row of the score step's read of ``assessment_aggregator``.

    See docs/flows/assessment-aggregator.md#10-best-score-aggregation.

    The timestamp is in epoch ms. Nulls are allowed, as in rows written by other writers: a
    null score reads as 0.0 (the driver's ``getDouble``).
    """

    content_id: str
    attempt_id: str
    last_attempted_on: int | None
    total_max_score: float | None
    total_score: float | None


def stored_score_of(row: AssessmentAggregatorRow) -> StoredScore:
    """The :class:`StoredScore` that reading back ``row`` gives."""
    return StoredScore(
        row.content_id, row.attempt_id, row.last_attempted_on, row.total_max_score, row.total_score
    )


@dataclass(frozen=True)
class CurrentActivityAgg:
    """``aggregates`` and ``agg_details`` as stored, read only to heal a ``REPLAYED`` event."""

    aggregates: Mapping[str, float]
    agg_details: Sequence[str]


@dataclass(frozen=True)
class UserActivityAggUpdate:
    """The ``UPDATE user_activity_agg`` of the score step.

    See docs/flows/assessment-aggregator.md#22-cassandra-keyspace-sunbird_courses.

    ``aggregates`` and ``agg_last_updated`` are merged into the stored maps
    (``col = col + ?``), and ``agg_details`` replaces the stored list. Field names are the
    column names, and ``agg_last_updated`` values are epoch ms.
    """

    activity_type: str
    activity_id: str
    user_id: str
    context_id: str
    aggregates: dict[str, float]
    agg_last_updated: dict[str, int]
    agg_details: tuple[str, ...]


@dataclass(frozen=True)
class ScoreAggregation:
    """The score step's result: the update to run, if any, and the certificate's ``attemptId``."""

    update: UserActivityAggUpdate | None
    certificate_attempt_id: str
    aggregates: dict[str, float]
    agg_details: tuple[str, ...]
    counters: tuple[Metric, ...]


def _agg_detail(row: StoredScore, agg_type: str, tz: tzinfo) -> str:
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


def _latest_attempt_id(rows: Sequence[StoredScore]) -> str:
    """Attempt with the latest ``last_attempted_on``; ties and nulls keep row order."""
    best: StoredScore | None = None
    for row in rows:
        if row.last_attempted_on is None:
            if best is None:
                best = row
            continue
        if (
            best is None
            or best.last_attempted_on is None
            or row.last_attempted_on > best.last_attempted_on
        ):
            best = row
    return "" if best is None else best.attempt_id


def aggregate_scores(
    event: BatchAssessEvent | RecomputeRequest,
    rows: Iterable[StoredScore],
    *,
    now_ms: int,
    agg_type: str = DEFAULT_AGG_TYPE,
    tz: tzinfo = UTC,
    current: CurrentActivityAgg | None = None,
) -> ScoreAggregation:
    """Recompute the user's best scores for the course batch.

    See docs/flows/assessment-aggregator.md#10-best-score-aggregation.

    ``rows`` are all attempts of ``(course, batch, user)``. They are put in clustering order
    (content id, then attempt id), and a repeated key keeps its last occurrence, so the flow
    may append the row it has just written. Per content, the best row is the one with the
    highest ``total_score`` (the first on ties). It gives ``score:<c>`` and ``max_score:<c>``,
    and ``attempts_count:<c>`` is the number of rows. ``agg_details`` holds one Gson JSON
    string per row. ``agg_last_updated`` maps every aggregate key to ``now_ms``. There is no
    update when there are no rows. If ``current`` is given (``REPLAYED`` only), there is also no
    update when the stored values already match. The certificate ``attemptId`` is the latest
    attempt when the user has attempts on exactly one content, otherwise ``""``.
    """
    by_key: dict[tuple[str, str], StoredScore] = {}
    for row in rows:
        by_key[(row.content_id, row.attempt_id)] = row
    ordered = [by_key[k] for k in sorted(by_key)]

    aggregates: dict[str, float] = {}
    by_content: dict[str, list[StoredScore]] = {}
    for row in ordered:
        by_content.setdefault(row.content_id, []).append(row)
    for content_id, attempts in by_content.items():
        best = attempts[0]
        for row in attempts[1:]:
            if (row.total_score or 0.0) > (best.total_score or 0.0):
                best = row
        aggregates[f"score:{content_id}"] = best.total_score or 0.0
        aggregates[f"max_score:{content_id}"] = best.total_max_score or 0.0
        aggregates[f"attempts_count:{content_id}"] = float(len(attempts))
    details = tuple(_agg_detail(row, agg_type, tz) for row in ordered)

    counters: tuple[Metric, ...] = (Metric.DB_SCORE_READ,)
    update: UserActivityAggUpdate | None = None
    up_to_date = current is not None and (
        tuple(current.agg_details) == details
        and all(current.aggregates.get(k) == v for k, v in aggregates.items())
    )
    if (aggregates or details) and not up_to_date:
        update = UserActivityAggUpdate(
            activity_type=ACTIVITY_TYPE,
            activity_id=event.course_id,
            user_id=event.user_id,
            context_id=f"cb:{event.batch_id}",
            aggregates=aggregates,
            agg_last_updated=dict.fromkeys(aggregates, now_ms),
            agg_details=details,
        )
        counters += (Metric.DB_SCORE_UPDATE,)
    attempt_id = _latest_attempt_id(ordered) if len(by_content) == 1 else ""
    return ScoreAggregation(update, attempt_id, aggregates, details, counters)


def should_emit_certificate(decision: AssessDecision, aggregation: ScoreAggregation) -> bool:
    """Send a certificate request for every written or recomputed event.

    See docs/flows/assessment-aggregator.md#11-certificate-request.

    A ``REPLAYED`` event sends one only when it had to heal the aggregates, that is, when the
    earlier run of this event stopped before the score step finished.
    """
    if decision.verdict in (Verdict.WRITE, Verdict.RECOMPUTE):
        return True
    return decision.verdict is Verdict.REPLAYED and aggregation.update is not None


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
    random UUID from the caller. The ids are JSON-escaped (see "Fixes over Sunbird").
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
