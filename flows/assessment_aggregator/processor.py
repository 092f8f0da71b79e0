"""One batch of assessment-aggregator: read through the store, plan with ``logic``, apply.

The shell (:mod:`flows.shell`) parks unparseable messages and hands the whole batch over as one
round (``round_key`` None). The messages are planned in steps, the k-th message of every
``(user, course)`` in step k (:mod:`.steps`), each step on the rows and aggregates the earlier
steps leave, so one learner's messages still see each other's writes, as Sunbird's chained
operators do, while the batch reads each learner once and writes its aggregates once: stored
attempts read → attempts planned step by step → the first step's attempt rows written → scores
read → score steps planned → per step: its attempt rows (after the first) and its certificate
requests, produced and acknowledged → ``user_activity_agg`` updated. A crash
between two of these is healed on replay (docs/flows/assessment-aggregator.md#one-batch).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

from lernflow.config import Settings
from lernflow.flows.assessment_aggregator import logic
from lernflow.flows.assessment_aggregator.decisions import AssessDecision, Verdict
from lernflow.flows.assessment_aggregator.events import BatchAssessEvent
from lernflow.flows.assessment_aggregator.logic import Event, Outcome
from lernflow.flows.assessment_aggregator.steps import BatchState, steps
from lernflow.flows.assessment_aggregator.store import FLOW, AssessmentStore, ServerStore
from lernflow.flows.shell import Item, Round
from lernflow.sinks.kafka_producer import OutMessage

Report = Callable[[Item[Event], Outcome], None]
"""Receives each planned message's :class:`~.logic.Outcome` when its round is done (tests)."""


def entity(event: Event) -> str:
    """Shard entity: all messages of one learner in one course stay in order."""
    return f"{event.user_id}|{event.course_id}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _request_id() -> str:
    return str(uuid.uuid4())


class AssessmentLogic:
    """The flow's logic for the processor shell (clock and request ids replaceable in tests)."""

    def __init__(
        self,
        settings: Settings,
        store: AssessmentStore | None = None,
        *,
        clock: Callable[[], int] = _now_ms,
        request_id: Callable[[], str] = _request_id,
        report: Report | None = None,
    ) -> None:
        self._store: AssessmentStore = store if store is not None else ServerStore(settings, FLOW)
        self._check_questions = settings.assessment.skip_missing_records
        self._agg_type = settings.assessment.agg_type
        self._cert_topic = settings.topics.full(settings.topics.issue_certificate_request)
        self._clock = clock
        self._request_id = request_id
        self._report = report

    def round_key(self, value: Event) -> object:
        return None  # the whole batch is one round; run_round steps through each learner

    def run_round(self, round_: Round[Event]) -> None:
        now_ms = self._clock()
        values = round_.values()
        reads = self._attempt_reads([e for _i, e in values])
        state = BatchState(dict(reads.stored), reads.stored)
        stepped: list[list[tuple[Item[Event], Outcome]]] = []
        for step in steps(values, entity):
            step_reads = logic.AttemptReads(reads.leaf_nodes, state.stored, reads.content_cache)
            planned = [
                (item, logic.plan_attempt(
                    e, step_reads, now_ms=now_ms, content_read=self._store.content_read))
                for item, e in step
            ]  # fmt: skip
            state.write_rows(o.decision for _i, o in planned if o.decision is not None)
            stepped.append(planned)
        for planned in stepped:
            for item, outcome in planned:
                if outcome.parked is not None:
                    round_.park(item, outcome.parked, outcome.error_type)
                elif outcome.skipped is not None:
                    round_.skip(outcome.skipped)
        to_agg = [
            [
                (o, o.decision)
                for _i, o in planned
                if o.decision is not None and o.decision.aggregate
            ]
            for planned in stepped
        ]
        self._store.write_attempts(state.step_rows[0] if state.step_rows else [])
        certs = self._score_steps(to_agg, state, now_ms)
        for n, step_certs in enumerate(certs):  # a step's rows after the earlier steps' requests
            if n and state.step_rows[n]:
                self._store.write_attempts(state.step_rows[n])
            round_.send(step_certs)
        self._store.update_aggs(list(state.updates.values()))
        if self._report is not None:
            for planned in stepped:
                for item, outcome in planned:
                    self._report(item, outcome)

    def _attempt_reads(self, events: Sequence[Event]) -> logic.AttemptReads:
        """Leaf-node sets, stored attempt rows and (when counting questions) content cache."""
        store = self._store
        courses = sorted({e.course_id for e in events})
        leaf_nodes = dict(zip(courses, store.leaf_nodes(courses), strict=True))
        attempts = [e for e in events if isinstance(e, BatchAssessEvent)]
        keys = list(dict.fromkeys(e.key for e in attempts))
        stored = dict(zip(keys, store.stored_attempts(keys), strict=True))
        cache: dict[str, str | bytes | None] | None = None
        if self._check_questions:
            cids = sorted({e.content_id for e in attempts})
            cache = dict(zip(cids, store.content_cache(cids), strict=True)) if cids else {}
        return logic.AttemptReads(leaf_nodes, stored, cache)

    def _score_steps(
        self,
        to_agg: list[list[tuple[Outcome, AssessDecision]]],
        state: BatchState,
        now_ms: int,
    ) -> list[list[OutMessage]]:
        """Aggregate step by step (the scores read after the first step's rows are written);
        each step's certificate requests."""
        keys = list(dict.fromkeys(logic.score_key(d.event) for s in to_agg for _o, d in s))
        base = dict(zip(keys, self._store.scores(keys), strict=True)) if keys else {}
        base = {k: state.base_scores(k, rows) for k, rows in base.items()}
        certs: list[list[OutMessage]] = []
        for n, step in enumerate(to_agg):
            replayed = [logic.score_key(d.event) for _o, d in step if d.verdict is Verdict.REPLAYED]
            unread = list(dict.fromkeys(k for k in replayed if k not in state.stored_aggs))
            if unread:
                state.stored_aggs.update(zip(unread, self._store.current_aggs(unread), strict=True))
            certs.append([])
            for outcome, decision in step:
                key = logic.score_key(decision.event)
                current = state.current(key) if decision.verdict is Verdict.REPLAYED else None
                plan = logic.plan_score_step(
                    decision, state.view(key, base[key], n), current,
                    now_ms=now_ms, agg_type=self._agg_type, request_id=self._request_id,
                )  # fmt: skip
                outcome.counters.extend(plan.counters)
                if plan.update is not None:
                    state.update(key, plan.update)
                if plan.certificate is not None:
                    outcome.certificate = plan.certificate
                    message = OutMessage(self._cert_topic, plan.certificate.encode("utf-8"))
                    certs[-1].append(message)
        return certs

    def close(self) -> None:
        self._store.close()
