"""What assessment-aggregator checks about a content: course membership and question count.

See docs/flows/assessment-aggregator.md#4-content-validation and #6-question-count-check. The
Redis values and the content read API's answer are arguments; pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final, NoReturn

from lernflow.flows.assessment_aggregator.counters import Metric
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.jsondoc import decode

_INT_MAX: Final = 2**31 - 1


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
    if not cache_value.strip():
        return 0
    try:  # Gson-written: NaN and Infinity are numbers there
        doc = decode(cache_value, what="content cache value", stored=True, constants=True)
    except InvalidEvent:
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
        doc = decode(
            text.replace("\r", "").replace("\n", ""), what="answer", stored=True, constants=True
        )
    except UnicodeDecodeError as exc:
        _meta_unavailable(f"{prefix} (unreadable answer: {exc!r})", unread)
    except InvalidEvent as exc:
        _meta_unavailable(f"{prefix} (unreadable answer: {exc.reason})", unread)
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
