"""I/O of activity-aggregate-updater around the pure rules in ``rules``.

Items of a window are processed in rounds (the k-th request of every enrolment), so a round's
Redis and Cassandra calls are batched while one enrolment's requests still see each other's
writes. Per round:

1. dedup EXISTS (pipelined), applied-offset ledger, consumption and enrolment rows (concurrent);
2. relation-cache sets (two pipelined round trips), collection status for courses without leaf
   nodes (hierarchy store);
3. :func:`rules.plan_enrolment` per enrolment;
4. produce audit events, certificate requests and failed-topic envelopes, and wait for acks;
5. one LOGGED batch per enrolment: consumption counters, the applied offset (so a record is
   never counted twice), the enrolment row, on completion a pending-certificate marker, and
   the aggregates (those of courses with more than 16 units go separately);
6. produce the certificate requests and enrol-complete AUDITs (also those of markers left by an
   interrupted run), then delete the markers;
7. SETEX the dedup checksums.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from typing import Any

from config import Settings
from flows._runtime import Item, failed_message, rounds
from flows.activity_aggregate_updater import rules
from flows.activity_aggregate_updater.store import FLOW, ActivityStore, EnrolmentKey
from flows.skipped import Skipped
from lernflow.kernel import metrics
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

logger = logging.getLogger(__name__)

#: ``lernflow_activity_applied.source`` of the pending-certificate marker of an enrolment.
PENDING = "certificate-pending"
#: up to this many aggregate updates join their enrolment's logged batch (course + units)
_AGGREGATES_IN_BATCH = 16
#: enrolments' logged batches are joined up to about this size (Cassandra warns from 5 KiB)
_BATCH_BYTES = 4000

Value = rules.EnrolmentRequest | Skipped


def entity(value: Value) -> str:
    """Shard entity: all requests of one enrolment stay on one worker, in order."""
    if isinstance(value, rules.EnrolmentRequest):
        return "|".join(value.key)
    return ""


class ActivityProcessor:
    """Per-worker processor: owns the store connections and a producer."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._store = ActivityStore(settings)
        self._producer = DeliveryTrackingProducer(settings.kafka, client_id=FLOW)
        t = settings.topics
        self._failed_topic = t.full(t.activity_agg_failed)
        self._audit_topic = t.full(t.telemetry_raw)
        self._cert_topic = t.full(t.issue_certificate_request)
        ks = self._store.keyspace
        self._q_consumption = (
            f"UPDATE {ks}.user_content_consumption SET viewcount=?, completedcount=? "
            "WHERE userid=? AND courseid=? AND batchid=? AND contentid=?"
        )
        self._q_applied = (
            f"UPDATE {ks}.lernflow_activity_applied SET applied_offset=? "
            "WHERE userid=? AND courseid=? AND batchid=? AND source=?"
        )
        self._q_agg = (
            f"UPDATE {ks}.user_activity_agg SET aggregates = aggregates + ?, "
            "agg_last_updated = agg_last_updated + ? "
            "WHERE activity_type=? AND activity_id=? AND user_id=? AND context_id=?"
        )
        self._q_progress = (
            f"UPDATE {ks}.user_enrolments SET status=?, progress=?, contentstatus=?, datetime=? "
            "WHERE userid=? AND courseid=? AND batchid=?"
        )
        self._q_pending_del = (
            f"DELETE FROM {ks}.lernflow_activity_applied "
            "WHERE userid=? AND courseid=? AND batchid=? AND source=?"
        )
        self._q_complete = (
            f"UPDATE {ks}.user_enrolments SET status=?, progress=?, contentstatus=?, datetime=?, "
            "completedon=? WHERE userid=? AND courseid=? AND batchid=?"
        )

    def process(self, items: list[Item[Any]]) -> None:
        failed = [
            failed_message(FLOW, self._failed_topic, i, i.error or "", i.error_type)
            for i in items
            if i.error is not None
        ]
        if failed:
            self._producer.produce_all(failed)
        requests: list[Item[rules.EnrolmentRequest]] = []
        for item in items:
            if isinstance(item.value, Skipped):
                metrics.EVENTS_SKIPPED.labels(FLOW, item.value.kind).inc()
            elif isinstance(item.value, rules.EnrolmentRequest):
                requests.append(item)
        for round_items in rounds(requests, lambda r: r.key):
            self._round(round_items)

    def _round(self, items: list[Item[rules.EnrolmentRequest]]) -> None:
        now_ms = int(time.time() * 1000)
        reqs = [(i, i.value) for i in items if i.value is not None]
        dedup = self._s.activity.dedup_enabled
        seen: set[str] = set()
        if dedup:
            seen = self._store.seen_checksums(
                [
                    rules.checksum(r.course_id, r.batch_id, r.user_id, c)
                    for _i, r in reqs
                    for c in r.completed
                ]
            )
        keys: list[EnrolmentKey] = [r.key for _i, r in reqs]
        applied = self._store.applied_offsets(keys)

        work: list[
            tuple[Item[rules.EnrolmentRequest], rules.EnrolmentRequest, dict[str, int], list[str]]
        ] = []
        for item, req in reqs:
            source = f"{item.record.topic}:{item.record.partition}"
            if item.record.offset <= applied[req.key].get(source, -1):
                work.append((item, req, {}, list(req.completed)))  # already counted: a replay
                continue
            fresh = [
                c
                for c in req.completed
                if rules.checksum(req.course_id, req.batch_id, req.user_id, c) not in seen
            ]
            if not fresh:
                metrics.EVENTS_DEDUPLICATED.labels(FLOW).inc()
                continue
            work.append((item, req, dict(Counter(fresh)), []))
        if not work:
            return
        wkeys = [req.key for _i, req, _n, _r in work]
        stored_rows = self._store.consumption(wkeys)
        enrolments = (
            self._store.enrolments(wkeys) if self._s.activity.filter_processed_enrolments else {}
        )

        relation_keys: set[str] = set()
        for _item, req, new, replayed in work:
            relation_keys.update(rules.course_keys(req.course_id))
            for content in [*new, *replayed, *(r.contentid for r in stored_rows[req.key])]:
                relation_keys.add(rules.ancestor_key(req.course_id, content))
        relation = self._store.relation_sets(relation_keys)
        unit_keys: set[str] = set()
        for _item, req, _new, _replayed in work:
            for key, members in relation.items():
                if key.startswith(f"{req.course_id}:") and key.endswith(":ancestors"):
                    for unit in members:
                        if unit != req.course_id:
                            unit_keys.update(rules.unit_keys(req.course_id, unit))
        relation.update(self._store.relation_sets(unit_keys - relation.keys()))
        no_leaf = sorted(
            {
                req.course_id
                for _i, req, _n, _r in work
                if not relation.get(rules.leaf_key(req.course_id, req.course_id))
            }
        )
        statuses = self._store.collection_status(no_leaf) if no_leaf else {}

        out: list[OutMessage] = []
        plans: list[tuple[Item[rules.EnrolmentRequest], rules.EnrolmentPlan, dict[str, int]]] = []
        for item, req, new, replayed in work:
            row = enrolments.get(req.key)
            plan = rules.plan_enrolment(
                req.key,
                new_completions=new,
                replayed=replayed,
                stored={
                    r.contentid: rules.StoredContent(r.status, r.viewcount, r.completedcount)
                    for r in stored_rows[req.key]
                },
                relation=relation,
                enrolment_status=row.status if row else None,
                enrolment_exists=row is not None
                or not self._s.activity.filter_processed_enrolments,
                collection_status=statuses.get(req.course_id),
                now_ms=now_ms,
                module_aggs=self._s.activity.module_aggs_enabled,
                filter_processed=self._s.activity.filter_processed_enrolments,
            )
            if plan.failure is not None:
                out.append(
                    failed_message(FLOW, self._failed_topic, item, plan.failure, "MissingLeafNodes")
                )
                continue
            if plan.retired:
                metrics.EVENTS_SKIPPED.labels(FLOW, "retired-collection").inc()
            out += [OutMessage(self._audit_topic, a.encode("utf-8")) for a in plan.audit_events]
            plans.append((item, plan, new))

        # 1. content AUDIT events and failed envelopes (at-least-once)
        self._send(out)

        # 2. state: one logged batch per enrolment, then the aggregates
        batches = []
        separate: list[tuple[Any, ...]] = []  # aggregates of very large courses
        completions: list[tuple[str, str, str, str, str]] = []  # key + the two events
        for item, plan, new in plans:
            user, course, batch = plan.key
            # Only the rows this record counts are written. Rewriting the other stored rows (or
            # a replayed record's rows) with the values read a moment ago could overwrite a
            # newer count: after a kill -9 the dead process's last batch can still be landing
            # in Cassandra while the restarted one reads (found by the 100k kill loop test).
            group: list[tuple[str, tuple[Any, ...]]] = [
                (
                    self._q_consumption,
                    (m.view_count, m.completed_count, user, course, batch, m.content_id),
                )
                for m in plan.merged
                if m.content_id in new
            ]
            if new:
                source = f"{item.record.topic}:{item.record.partition}"
                group.append((self._q_applied, (item.record.offset, user, course, batch, source)))
            e = plan.enrolment
            if e is not None and e.completed_on_ms is None:
                group.append(
                    (
                        self._q_progress,
                        (e.status, e.progress, e.content_status, e.datetime_ms, *plan.key),
                    )
                )
            elif e is not None:
                group.append(
                    (
                        self._q_complete,
                        (
                            e.status,
                            e.progress,
                            e.content_status,
                            e.datetime_ms,
                            e.completed_on_ms,
                            *plan.key,
                        ),
                    )
                )
                group.append((self._q_applied, (now_ms, user, course, batch, PENDING)))
                assert plan.certificate_event is not None and plan.enrol_complete_event is not None
                completions.append(
                    (user, course, batch, plan.certificate_event, plan.enrol_complete_event)
                )
            # The aggregates ride in the same batch: one request per enrolment instead of one
            # per activity (the driver's per-request CPU is what bounds a flow process), and
            # the aggregates can never disagree with the enrolment row. Very large courses
            # keep them separate, under Cassandra's batch size limits.
            aggs = [
                (self._q_agg, ({"completedCount": a.completed_count},
                               {"completedCount": a.updated_ms},
                               rules.ACTIVITY_TYPE, a.activity_id, a.user_id, a.context_id))
                for a in plan.aggregates
            ]  # fmt: skip
            if len(aggs) <= _AGGREGATES_IN_BATCH:
                group += aggs
            else:
                separate += [params for _q, params in aggs]
            if group:
                batches.append(group)
        self._store.executor.execute_logged_batches(
            batches, "write consumption and enrolments", combine_bytes=_BATCH_BYTES
        )
        self._store.executor.execute_many(self._q_agg, separate, "write aggregates")

        # 3. certificate requests: new completions, and markers an interrupted run left behind.
        # A marker's request is rebuilt with the same deterministic mid; it is re-sent only if
        # that mid is not on the certificate topic yet (the crash may have come after the send).
        sent: set[EnrolmentKey] = {(c[0], c[1], c[2]) for c in completions}
        leftover = [
            (ekey, ets) for ekey in wkeys
            if (ets := applied[ekey].get(PENDING)) is not None and ekey not in sent
        ]  # fmt: skip
        already: list[EnrolmentKey] = []
        if leftover:
            on_topic = self._store.mids_on_topic(self._cert_topic, min(e for _k, e in leftover))
            for ekey, ets in leftover:
                if rules.certificate_mid(ekey, ets) in on_topic:
                    already.append(ekey)
                    continue
                user, course, batch = ekey
                completions.append((
                    user, course, batch,
                    rules.certificate_event(user, course, batch, ets, rules.completion_id(ekey, ets)),
                    rules.enrol_complete_audit(user, course, batch, ets, lambda: str(uuid.uuid4())),
                ))  # fmt: skip
                sent.add(ekey)
        self._send(
            [OutMessage(self._cert_topic, c[3].encode("utf-8")) for c in completions]
            + [OutMessage(self._audit_topic, c[4].encode("utf-8")) for c in completions]
        )
        self._store.executor.execute_many(
            self._q_pending_del,
            [(u, c, b, PENDING) for u, c, b, _x, _y in completions]
            + [(*k, PENDING) for k in already],
            "clear markers",
        )
        if dedup:
            self._store.store_checksums(c for _i, p, _c in plans for c in p.checksums)

    def _send(self, messages: list[OutMessage]) -> None:
        if messages:
            self._producer.produce_all(messages)
            for m in messages:
                metrics.EVENTS_OUT.labels(FLOW, m.topic).inc()

    def close(self) -> None:
        self._producer.flush()
        self._store.close()
