"""I/O of assessment-aggregator: batched reads and writes around the pure rules in ``logic``.

Items of one window are processed in rounds (the k-th message of every ``(user, course)``), so
each round's Redis and Cassandra calls are batched while one learner's messages still see each
other's writes, as Sunbird's chained operators do. Order inside a round, per message:
attempt row → certificate request (produced and acknowledged) → ``user_activity_agg`` update.
A crash between two of these is healed on replay (see ``logic`` "Replays heal").

The servers sit behind :class:`~flows.assessment_aggregator.store.AssessmentStore` and
:class:`~flows.assessment_aggregator.store.Outbox`; the clock, the request ids and the content
read API are parameters too, so tests run this round logic with in-memory stand-ins.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from flows._runtime import Item, failed_message, rounds
from flows.assessment_aggregator import logic
from flows.assessment_aggregator.store import AssessmentStore, Outbox, ServerStore
from lernflow.kernel import metrics
from lernflow.kernel.errors import InvalidEvent, TransientError
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

logger = logging.getLogger(__name__)

FLOW = "assessment-aggregator"

Event = logic.BatchAssessEvent | logic.RecomputeRequest


def entity(event: Event) -> str:
    """Shard entity: all messages of one learner in one course stay in order."""
    return f"{event.user_id}|{event.course_id}"


@dataclass
class Outcome:
    """What happened to one input item, with the Sunbird counters it adds.

    ``decision`` is None when the item was parked before a decision (unparseable, or an
    :class:`~lernflow.kernel.errors.InvalidEvent` from the rules); ``parked`` is then the reason.
    ``certificate`` is the certificate request sent for it, if any.
    See docs/flows/assessment-aggregator.md#12-metrics for the counters.
    """

    item: Item[Any]
    decision: logic.AssessDecision | None = None
    parked: str | None = None
    certificate: str | None = None
    counters: list[logic.Metric] = field(default_factory=list)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _request_id() -> str:
    return str(uuid.uuid4())


class AssessmentProcessor:
    """Per-worker processor: owns its store (Cassandra session, Redis clients) and producer."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: AssessmentStore | None = None,
        outbox: Outbox | None = None,
        content_read: Callable[[str], str] | None = None,
        clock: Callable[[], int] = _now_ms,
        request_id: Callable[[], str] = _request_id,
    ) -> None:
        self._s = settings
        self._store: AssessmentStore = store if store is not None else ServerStore(settings, FLOW)
        self._producer: Outbox = (
            outbox
            if outbox is not None
            else DeliveryTrackingProducer(settings.kafka, client_id=FLOW)
        )
        self._content_read_api = content_read if content_read is not None else self._content_read
        self._clock = clock
        self._request_id = request_id
        topics = settings.topics
        self._failed_topic = topics.full(topics.telemetry_assess_failed)
        self._cert_topic = topics.full(topics.issue_certificate_request)

    # -- lookups -------------------------------------------------------------------------
    def _content_read(self, content_id: str) -> str:
        base = self._s.assessment.content_read_url
        if not base:
            msg = "no content-read API configured (LERNFLOW_ASSESSMENT_CONTENT_READ_URL)"
            raise InvalidEvent(msg)
        url = base + urllib.parse.quote(content_id)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - configured URL
                return str(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                msg = f"content read {url}: HTTP {exc.code}"
                raise TransientError(msg) from exc
            return str(exc.read().decode("utf-8", errors="replace"))
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            msg = f"content read {url}: {exc}"
            raise TransientError(msg) from exc

    # -- processing ----------------------------------------------------------------------
    def process(self, items: list[Item[Any]]) -> None:
        self.handle(items)

    def handle(self, items: list[Item[Any]]) -> list[Outcome]:
        """Process ``items`` (see the module docstring); one :class:`Outcome` per item.

        Outcomes of unparseable items come first, then those of each round in turn.
        """
        outcomes = [
            Outcome(i, parked=i.error or "", counters=[logic.Metric.FAILED])
            for i in items
            if i.error is not None
        ]
        out: list[OutMessage] = [
            failed_message(FLOW, self._failed_topic, o.item, o.parked or "", o.item.error_type)
            for o in outcomes
        ]
        good = [i for i in items if i.error is None]
        if out:
            self._producer.produce_all(out)
        for round_items in rounds(good, entity):
            outcomes.extend(self._round(round_items))
        return outcomes

    def _round(self, items: list[Item[Event]]) -> list[Outcome]:
        now_ms = self._clock()
        store = self._store
        events = [i.value for i in items if i.value is not None]
        courses = sorted({e.course_id for e in events})
        leaf_sets = dict(zip(courses, store.leaf_nodes(courses), strict=True))
        attempts = [e for e in events if isinstance(e, logic.BatchAssessEvent)]
        keys = [e.key for e in attempts]
        stored = dict(zip(keys, store.stored_attempts(keys), strict=True))
        cache_values: dict[str, Any] = {}
        if self._s.assessment.skip_missing_records and attempts:
            cids = sorted({e.content_id for e in attempts})
            cache_values = dict(zip(cids, store.content_cache(cids), strict=True))

        def total_questions(cid: str) -> logic.TotalQuestions:
            return logic.resolve_total_questions(cid, cache_values.get(cid), self._content_read_api)

        outcomes: list[Outcome] = []
        decisions: list[tuple[Outcome, logic.AssessDecision]] = []
        failed: list[OutMessage] = []
        for item in items:
            event = item.value
            assert event is not None
            try:
                decision = logic.evaluate_assess_event(
                    event,
                    leaf_nodes=leaf_sets.get(event.course_id, set()),
                    now_ms=now_ms,
                    stored_attempt=stored.__getitem__,
                    total_questions=total_questions
                    if self._s.assessment.skip_missing_records
                    else None,
                )
            except InvalidEvent as exc:
                counters = [*getattr(exc, "counters", ()), logic.Metric.FAILED]
                outcomes.append(Outcome(item, parked=exc.reason, counters=counters))
                failed.append(
                    failed_message(FLOW, self._failed_topic, item, exc.reason, type(exc).__name__)
                )
                continue
            outcome = Outcome(item, decision, counters=list(decision.counters))
            if decision.to_failed_topic:
                outcome.parked = decision.reason
                failed.append(
                    failed_message(
                        FLOW, self._failed_topic, item, decision.reason, decision.verdict.value
                    )
                )
            elif not decision.aggregate:
                metrics.EVENTS_SKIPPED.labels(FLOW, decision.verdict.value).inc()
            outcomes.append(outcome)
            decisions.append((outcome, decision))
        if failed:
            self._producer.produce_all(failed)

        # 1. attempt rows
        store.write_attempts([d.row for _o, d in decisions if d.row is not None])

        # 2. score step reads
        to_agg = [(o, d) for o, d in decisions if d.aggregate]
        if not to_agg:
            return outcomes
        score_rows = store.scores(
            [(d.event.user_id, d.event.course_id, d.event.batch_id) for _o, d in to_agg]
        )
        replayed = [(o, d) for o, d in to_agg if d.verdict is logic.Verdict.REPLAYED]
        current_rows = store.current_aggs(
            [(d.event.user_id, d.event.course_id, d.event.batch_id) for _o, d in replayed]
        )
        current = {id(o): c for (o, _d), c in zip(replayed, current_rows, strict=True)}

        certs: list[OutMessage] = []
        updates: list[logic.UserActivityAggUpdate] = []
        for (outcome, decision), scores in zip(to_agg, score_rows, strict=True):
            if decision.row is not None:
                scores = [*scores, logic.stored_score_of(decision.row)]
            agg = logic.aggregate_scores(
                decision.event, scores, now_ms=now_ms, agg_type=self._s.assessment.agg_type,
                current=current.get(id(outcome)),
            )  # fmt: skip
            outcome.counters.extend(agg.counters)
            if agg.update is not None:
                updates.append(agg.update)
            if logic.should_emit_certificate(decision, agg):
                body = logic.certificate_request(
                    decision.event,
                    agg.certificate_attempt_id,
                    now_ms=now_ms,
                    request_id=self._request_id(),
                )
                outcome.certificate = body
                outcome.counters.append(logic.Metric.CERT_ISSUED)
                certs.append(OutMessage(self._cert_topic, body.encode("utf-8")))

        # 3. certificate requests acknowledged before the aggregates are stored
        if certs:
            self._producer.produce_all(certs)
            metrics.EVENTS_OUT.labels(FLOW, self._cert_topic).inc(len(certs))
        # 4. best-score aggregates
        store.update_aggs(updates)
        return outcomes

    def close(self) -> None:
        self._producer.flush()
        self._store.close()
