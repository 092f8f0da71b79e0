"""Stage 1 of assessment-aggregator: what to do with one message (write, skip, park, recompute).

See docs/flows/assessment-aggregator.md#4-content-validation to #9-recompute-requests, and
#11-certificate-request for when a certificate is asked for. Pure: the stored row and the
question count are read through callables.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from lernflow.flows.assessment_aggregator.content import (
    TotalQuestions,
    check_content,
    leafnodes_key,
    question_count_ok,
)
from lernflow.flows.assessment_aggregator.counters import Metric
from lernflow.flows.assessment_aggregator.events import (
    AttemptKey,
    BatchAssessEvent,
    RecomputeRequest,
)
from lernflow.flows.assessment_aggregator.rows import AssessmentAggregatorRow, StoredAttempt
from lernflow.flows.assessment_aggregator.scoring import (
    AttemptScore,
    ScoreAggregation,
    latest_answers,
    score_answers,
)


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


def should_emit_certificate(decision: AssessDecision, aggregation: ScoreAggregation) -> bool:
    """Send a certificate request for every written or recomputed event.

    See docs/flows/assessment-aggregator.md#11-certificate-request.

    A ``REPLAYED`` event sends one only when it had to heal the aggregates, that is, when the
    earlier run of this event stopped before the score step finished.
    """
    if decision.verdict in (Verdict.WRITE, Verdict.RECOMPUTE):
        return True
    return decision.verdict is Verdict.REPLAYED and aggregation.update is not None
