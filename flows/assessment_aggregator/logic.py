"""The planner of assessment-aggregator: one message's plan from what its round read. Pure.

A round (:mod:`flows.shell`) runs in two steps, each a batched read through the store, a plan
made here and its application (:mod:`flows.assessment_aggregator.processor`):

1. **attempt step** — :func:`plan_attempt` turns a parsed message and the round's
   :class:`AttemptReads` into an :class:`Outcome`: a :class:`~.decisions.AssessDecision`
   (write the attempt row, skip, or go on to the score step), or the reason to park it;
2. **score step** — :func:`plan_score_step` turns a decision and the learner's stored attempts
   into a :class:`ScoreStep`: the ``user_activity_agg`` update and the certificate request.

The rules live in :mod:`.events` (parsing), :mod:`.content` (course membership, question count),
:mod:`.scoring` (dedup, totals, best scores), :mod:`.decisions` (stage 1) and :mod:`.formats`
(Sunbird's texts). Why a replay heals instead of being skipped, and the write order that makes
that safe: docs/flows/assessment-aggregator.md#design-replays-heal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lernflow.flows.assessment_aggregator.content import TotalQuestions, resolve_total_questions
from lernflow.flows.assessment_aggregator.counters import Metric
from lernflow.flows.assessment_aggregator.decisions import (
    AssessDecision,
    evaluate_assess_event,
    should_emit_certificate,
)
from lernflow.flows.assessment_aggregator.events import (
    AttemptKey,
    BatchAssessEvent,
    RecomputeRequest,
)
from lernflow.flows.assessment_aggregator.formats import certificate_request
from lernflow.flows.assessment_aggregator.rows import (
    CurrentActivityAgg,
    StoredAttempt,
    StoredScore,
    UserActivityAggUpdate,
    stored_score_of,
)
from lernflow.flows.assessment_aggregator.scoring import aggregate_scores
from lernflow.kernel.errors import InvalidEvent

Event = BatchAssessEvent | RecomputeRequest
"""A parsed ``<env>.telemetry.assess`` message."""


@dataclass(frozen=True)
class AttemptReads:
    """What the attempt step of a round read, for all its messages at once.

    ``content_cache`` is None when the question-count check (``assessment.skip.missingRecords``)
    is off; otherwise it holds the content-cache value of every attempt's content.
    """

    leaf_nodes: Mapping[str, set[str]]
    stored: Mapping[AttemptKey, StoredAttempt | None]
    content_cache: Mapping[str, str | bytes | None] | None = None


@dataclass
class Outcome:
    """What happened to one message, with the Sunbird counters it adds.

    ``decision`` is None when the rules raised :class:`~lernflow.kernel.errors.InvalidEvent`;
    ``parked`` is then the reason (also set, with ``decision``, for a verdict that parks).
    ``certificate`` is the certificate request sent for it, if any. See
    docs/flows/assessment-aggregator.md#12-metrics for the counters.
    """

    decision: AssessDecision | None = None
    parked: str | None = None
    error_type: str = ""
    certificate: str | None = None
    counters: list[Metric] = field(default_factory=list)

    @property
    def skipped(self) -> str | None:
        """The verdict of a valid message that needs no work (an older attempt), else None."""
        d = self.decision
        if d is None or self.parked is not None or d.aggregate:
            return None
        return d.verdict.value


def plan_attempt(
    event: Event, reads: AttemptReads, *, now_ms: int, content_read: Callable[[str], str | bytes]
) -> Outcome:
    """Stage 1 of one message: validate, dedup, count, score and decide.

    ``content_read(content_id)`` is the content read API, asked only when the question-count
    check is on and the content cache gives no count.
    """
    total_questions: Callable[[str], TotalQuestions] | None = None
    cache = reads.content_cache
    if cache is not None:

        def total_questions(cid: str) -> TotalQuestions:
            return resolve_total_questions(cid, cache.get(cid), content_read)

    try:
        decision = evaluate_assess_event(
            event,
            leaf_nodes=reads.leaf_nodes.get(event.course_id, set()),
            now_ms=now_ms,
            stored_attempt=reads.stored.__getitem__,
            total_questions=total_questions,
        )
    except InvalidEvent as exc:
        counters = [*getattr(exc, "counters", ()), Metric.FAILED]
        return Outcome(parked=exc.reason, error_type=type(exc).__name__, counters=counters)
    outcome = Outcome(decision, counters=list(decision.counters))
    if decision.to_failed_topic:
        outcome.parked = decision.reason
        outcome.error_type = decision.verdict.value
    return outcome


def score_key(event: Event) -> tuple[str, str, str]:
    """``(user_id, course_id, batch_id)``: whose stored attempts the score step reads."""
    return (event.user_id, event.course_id, event.batch_id)


@dataclass(frozen=True)
class ScoreStep:
    """The score step of one decision: the aggregates to store and the certificate to send."""

    update: UserActivityAggUpdate | None
    certificate: str | None
    counters: tuple[Metric, ...]


def plan_score_step(
    decision: AssessDecision,
    scores: Sequence[StoredScore],
    current: CurrentActivityAgg | None,
    *,
    now_ms: int,
    agg_type: str,
    request_id: Callable[[], str],
) -> ScoreStep:
    """Best scores from the learner's stored attempts (plus the row just written), and the
    certificate request when :func:`~.decisions.should_emit_certificate` says so.

    ``current`` is the stored ``user_activity_agg`` row, read only for a ``REPLAYED`` message;
    ``request_id()`` is called once per certificate request.
    """
    if decision.row is not None:
        scores = [*scores, stored_score_of(decision.row)]
    agg = aggregate_scores(
        decision.event, scores, now_ms=now_ms, agg_type=agg_type, current=current
    )
    if not should_emit_certificate(decision, agg):
        return ScoreStep(agg.update, None, agg.counters)
    body = certificate_request(
        decision.event, agg.certificate_attempt_id, now_ms=now_ms, request_id=request_id()
    )
    return ScoreStep(agg.update, body, (*agg.counters, Metric.CERT_ISSUED))
