"""One batch of activity-aggregate-updater: read through the store, plan, apply in a safe order.

The shell hands the whole batch over as one round (``round_key`` is None); the records of one
enrolment are planned one after another in memory and written once
(docs/flows/activity-aggregate-updater.md#71-one-write-per-enrolment-and-batch). Per batch:

1. read the applied-offset ledger and the dedup keys; a request whose offset is already counted
   is a *replay* (counts nothing twice), one whose completions are all known is dropped;
2. read the consumption and enrolment rows (``userid IN ?``), the relation-cache sets (two
   pipelined round trips) and, for courses without leaf nodes, the collection status — once
   per enrolment, later steps plan on the state the earlier ones leave (a replay keeps the
   rows and the sets between rounds: :class:`planner.ConsumptionMemory`,
   :class:`planner.RelationMemory`);
3. plan each enrolment's records in steps (:mod:`planner`, :func:`rules.plan_enrolment`): a
   live course without leaf nodes is parked and writes nothing; a Retired one is counted as
   skipped; the unit aggregates are planned once, on each enrolment's last plan;
4. produce the content AUDIT events and wait for the acknowledgements;
5. one LOGGED batch per enrolment: consumption counters, the ledger row (applied offsets and,
   on completion, the completing record), the enrolment row and the aggregates;
6. produce the certificate requests and enrol-complete AUDITs (also those of a replayed
   completing record whose request is not on the topic: §7.2); nothing is deleted;
7. SETEX the dedup checksums (last: a crash before it lets the completions through again).
"""

from __future__ import annotations

import time

from lernflow.config import Settings
from lernflow.flows.activity_aggregate_updater import planner, rules
from lernflow.flows.activity_aggregate_updater.planner import Reads, RoundPlan, Work
from lernflow.flows.activity_aggregate_updater.store import FLOW, ActivityServerStore, ActivityStore
from lernflow.flows.shell import Item, Round
from lernflow.kernel import metrics
from lernflow.sinks.kafka_producer import OutMessage

Request = rules.EnrolmentRequest


def entity(value: Request) -> str:
    """Shard entity: all requests of one enrolment stay on one worker, in order."""
    return "|".join(value.key)


class ActivityLogic:
    """The flow's logic for the processor shell."""

    def __init__(self, settings: Settings, store: ActivityStore | None = None) -> None:
        self._a = settings.activity
        self._store: ActivityStore = store or ActivityServerStore(settings)
        t = settings.topics
        self._audit_topic = t.full(t.telemetry_raw)
        self._cert_topic = t.full(t.issue_certificate_request)
        self._aggregates = planner.AggregateMemory(self._a.aggregate_memory)
        self._consumption = planner.ConsumptionMemory(self._a.consumption_memory)
        self._relation = planner.RelationMemory(self._a.relation_memory_s)

    def round_key(self, value: Request) -> object:
        return None  # the whole batch is one round; run_round steps through each enrolment

    def run_round(self, round_: Round[Request]) -> None:
        requests = round_.values()
        ledgers = self._store.ledgers(list(dict.fromkeys(r.key for _i, r in requests)))
        seen = set()
        if self._a.dedup_enabled:
            seen = self._store.seen_checksums(planner.checksums(requests))
        view = self._relation.view(time.monotonic())
        state = planner.RoundState(dict(ledgers), set(seen), view=view)
        plans, work = self._plan_steps(requests, state, round_)
        if not work:
            return
        plan = planner.combine(plans)
        round_.send([self._audit(a) for a in plan.audit_events])
        writes = self._aggregates.changed(plan.writes)
        self._store.write_enrolments(writes)
        self._aggregates.remember(writes)
        self._consumption.remember(state, work)
        leftover = planner.leftover_markers(plan, work, ledgers)
        on_topic = self._store.certificate_mids(min(leftover.values())) if leftover else set()
        completions, already_sent = planner.completions(plan, leftover, on_topic)
        round_.send(
            [OutMessage(self._cert_topic, c.certificate_event.encode("utf-8")) for c in completions]
            + [self._audit(c.audit_event) for c in completions]
        )
        legacy = [
            k for k in dict.fromkeys([c.key for c in completions] + already_sent)
            if (ledger := ledgers.get(k)) is not None and ledger.pending_since_ms is not None
        ]  # fmt: skip
        if legacy:  # an older version's marker rows; ours are never deleted (§7.2)
            self._store.delete_markers(legacy)
        if self._a.dedup_enabled:
            self._store.store_checksums(plan.checksums)

    def _plan_steps(
        self,
        requests: list[tuple[Item[Request], Request]],
        state: planner.RoundState,
        round_: Round[Request],
    ) -> tuple[list[RoundPlan], list[Work]]:
        """Plan step by step (the k-th request of every enrolment), each step on the state the
        previous ones leave; nothing is written yet."""
        now_ms = int(time.time() * 1000)
        plans: list[RoundPlan] = []
        work: list[Work] = []
        for step in planner.steps(requests):
            selection = planner.select(step, state.ledgers, state.seen)
            if selection.deduplicated:
                metrics.EVENTS_DEDUPLICATED.labels(FLOW).inc(selection.deduplicated)
            if not selection.work:
                continue
            plan = planner.plan_round(
                selection.work,
                self._read(selection.work, state),
                now_ms,
                module_aggs=False,  # once per enrolment below
                filter_processed=self._a.filter_processed_enrolments,
            )
            for parked in plan.parked:
                round_.park(parked.work.item, parked.reason, "MissingLeafNodes")
            if plan.retired:
                round_.skip("retired-collection", plan.retired)
            state.advance(plan)
            plans.append(plan)
            work += selection.work
        if self._a.module_aggs_enabled:
            plans = planner.with_unit_aggregates(plans, state, now_ms)
        return plans, work

    def _read(self, work: list[Work], state: planner.RoundState) -> Reads:
        """Read into ``state`` what the step needs and earlier steps have not read."""
        new = [k for k in dict.fromkeys(w.request.key for w in work) if k not in state.consumption]
        if new:
            state.consumption.update(self._consumption.recall(new, state.ledgers))
            unread = [k for k in new if k not in state.consumption]
            state.consumption.update(self._store.consumption(unread) if unread else {})
            if self._a.filter_processed_enrolments:
                state.enrolments.update(self._consumption.enrolments(new))
                unread = [k for k in new if k not in state.enrolments]
                state.enrolments.update(self._store.enrolments(unread) if unread else {})
        relation = state.view
        ancestors = planner.ancestor_keys(work, state.consumption, relation)
        relation.add(self._store.relation_sets(planner.relation_keys(ancestors) - relation.keys()))
        units = rules.unit_relation_keys(ancestors, relation)
        relation.add(self._store.relation_sets(units - relation.keys()))
        no_leaf = [
            c for c in planner.courses_without_leaf_nodes(work, relation) if c not in state.statuses
        ]
        if no_leaf:
            state.statuses.update(self._store.collection_status(no_leaf))
        return state.reads()

    def _audit(self, event: str) -> OutMessage:
        return OutMessage(self._audit_topic, event.encode("utf-8"))

    def close(self) -> None:
        self._store.close()
