"""The input of assessment-aggregator: ``<env>.telemetry.assess`` messages, parsed and checked.

See docs/flows/assessment-aggregator.md#1-inputs and #3-parsing-and-validation. A message with a
non-empty ``events`` list is a :class:`BatchAssessEvent` (one attempt to score); one without is a
:class:`RecomputeRequest`. Anything Sunbird's job would throw on raises
:class:`~lernflow.kernel.errors.InvalidEvent` with a precise reason. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import gson_roundtrip_json
from lernflow.kernel.jsondoc import DEFAULT_LIMITS, Limits, check_id, check_size, decode

_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1


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


def parse_assess_message(
    value: bytes | str, *, limits: Limits = DEFAULT_LIMITS
) -> BatchAssessEvent | RecomputeRequest:
    """Parse one ``<env>.telemetry.assess`` message value.

    See docs/flows/assessment-aggregator.md#1-inputs.

    Returns :class:`BatchAssessEvent` when ``events`` is a non-empty array, and
    :class:`RecomputeRequest` when it is missing, null or empty
    (docs/flows/assessment-aggregator.md#9-recompute-requests). Raises :class:`InvalidEvent` with a
    precise reason in these cases: bytes that are not UTF-8 JSON, ``NaN``/``Infinity`` or
    out-of-range numbers, a top level that is not an object, a missing/empty/non-string id, a
    non-integer ``assessmentTs``/``ets``, a missing ``edata``, ``edata.item``, ``item.params`` or
    ``edata.resvalues``, or a non-number score. These are the cases where Sunbird's job throws and
    parks the event. Sunbird's unparseable-message case (D-B3) raises here as well. Beyond
    Sunbird, a message over ``limits`` (size, nesting, an id longer than ``max_id_chars``) is
    invalid too.
    """
    check_size(value, limits, "message")
    if isinstance(value, bytes | bytearray):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            _fail(f"message is not UTF-8: {exc}")
    else:
        text = value
    return _parse_document(decode(text, limits, what="message"), limits)


def _parse_document(doc: object, limits: Limits) -> BatchAssessEvent | RecomputeRequest:
    if not isinstance(doc, dict):
        _fail(f"message must be a JSON object, got {_kind(doc)}")

    def key(name: str) -> str:
        return check_id(_required_str(doc, name, name), name, limits)

    course_id, content_id, batch_id, user_id = (
        key("courseId"), key("contentId"), key("batchId"), key("userId")
    )  # fmt: skip
    events = doc.get("events")
    if events is not None and not isinstance(events, list):
        _fail(f"events must be an array, got {_kind(events)}")
    if not events:
        attempt_id = _optional_str(doc, "attemptId", "attemptId")  # not a key here: unused
        ts = doc.get("assessmentTs")
        return RecomputeRequest(
            course_id=course_id,
            batch_id=batch_id,
            user_id=user_id,
            content_id=content_id,
            attempt_id=attempt_id,
            assessment_ts=None if ts is None else _long(ts, "assessmentTs"),
        )
    attempt_id = key("attemptId")
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


def _gson_text(value: object) -> str:
    """Sunbird's Gson text of a parsed JSON value; a number beyond the double range is invalid."""
    try:
        return gson_roundtrip_json(value)
    except OverflowError as e:
        _fail(str(e))
