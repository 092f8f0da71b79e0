"""Scoring: the distinct questions of an attempt and their totals, then the best score per content.

See docs/flows/assessment-aggregator.md#5-question-dedup, #7-score and
#10-best-score-aggregation. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from decimal import Decimal
from typing import Final

from lernflow.flows.assessment_aggregator.counters import Metric
from lernflow.flows.assessment_aggregator.events import (
    AssessAnswer,
    BatchAssessEvent,
    RecomputeRequest,
)
from lernflow.flows.assessment_aggregator.formats import agg_detail, format_grand_total
from lernflow.flows.assessment_aggregator.rows import (
    ACTIVITY_TYPE,
    CurrentActivityAgg,
    QuestionUdt,
    StoredScore,
    UserActivityAggUpdate,
)
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import java_double_to_string

DEFAULT_AGG_TYPE: Final = "attempt_metrics"
"""Default of ``user.activity.agg.type``, the ``type`` field of each ``agg_details`` entry."""


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
                msg = f"{path}[{i}].{k} is null (Cassandra refuses nulls inside collections)"
                raise InvalidEvent(msg)
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
    msg = f"{what} overflows a double"
    try:
        total = math.fsum(values) + 0.0  # + 0.0: Sunbird starts from 0.0, never -0.0
    except OverflowError:
        raise InvalidEvent(msg) from None
    if not math.isfinite(total):
        raise InvalidEvent(msg)
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
class ScoreAggregation:
    """The score step's result: the update to run, if any, and the certificate's ``attemptId``."""

    update: UserActivityAggUpdate | None
    certificate_attempt_id: str
    aggregates: dict[str, float]
    agg_details: tuple[str, ...]
    counters: tuple[Metric, ...]


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


def _best_scores(by_content: dict[str, list[StoredScore]]) -> dict[str, float]:
    """``score:``, ``max_score:`` and ``attempts_count:`` of each content (best row: the first
    with the highest ``total_score``)."""
    aggregates: dict[str, float] = {}
    for content_id, attempts in by_content.items():
        best = attempts[0]
        for row in attempts[1:]:
            if (row.total_score or 0.0) > (best.total_score or 0.0):
                best = row
        aggregates[f"score:{content_id}"] = best.total_score or 0.0
        aggregates[f"max_score:{content_id}"] = best.total_max_score or 0.0
        aggregates[f"attempts_count:{content_id}"] = float(len(attempts))
    return aggregates


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
    by_content: dict[str, list[StoredScore]] = {}
    for row in ordered:
        by_content.setdefault(row.content_id, []).append(row)
    aggregates = _best_scores(by_content)
    details = tuple(agg_detail(row, agg_type, tz) for row in ordered)

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
