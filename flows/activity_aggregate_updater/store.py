"""Every server call of activity-aggregate-updater: Cassandra, Redis and the certificate check.

Reads are batched per round: one pipelined Redis round trip, or one concurrent set of prepared
Cassandra statements naming many learners of a course batch at once (``userid IN ?``). Writes
are idempotent upserts; an enrolment's state, its ledger row included, is one LOGGED batch (all
or nothing), and
enrolments' batches are joined up to about 4 KB. Every CQL text of the flow is in
:class:`Statements`. No business rules live here (docs/flows/activity-aggregate-updater.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import TopicPartition

from lernflow.config import Settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.clients import kafka_consumer
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.jsondoc import decode
from lernflow.kernel.redis_batch import RedisBatch

logger = logging.getLogger(__name__)

FLOW = "activity-aggregate-updater"

#: ``lernflow_activity_applied.source`` of the pending-certificate marker row of an older
#: version (read and deleted, never written: docs/flows/activity-aggregate-updater.md#72)
PENDING = "certificate-pending"
#: up to this many aggregate updates join their enrolment's logged batch (course + units)
AGGREGATES_IN_BATCH = 16
#: enrolments' logged batches are joined up to about this size (Cassandra warns from 5 KiB)
BATCH_BYTES = 4000


EnrolmentKey = tuple[str, str, str]  # (userId, courseId, batchId)


@dataclass(frozen=True)
class Statements:
    """The flow's CQL (the bench's raw loop issues the same texts)."""

    read_consumption: str
    read_enrolments: str
    read_ledger: str
    read_hierarchy: str
    write_consumption: str
    write_ledger: str
    write_ledger_completion: str
    write_progress: str
    write_completion: str
    write_aggregate: str
    delete_ledger: str

    @classmethod
    def of(cls, courses_keyspace: str, hierarchy_keyspace: str) -> Statements:
        """The statements on the given keyspaces."""
        ks = courses_keyspace
        enrolment = "WHERE userid IN ? AND courseid=? AND batchid=?"
        return cls(
            read_consumption="SELECT userid, contentid, status, viewcount, completedcount "
            f"FROM {ks}.user_content_consumption {enrolment}",
            read_enrolments="SELECT userid, status, progress, completedon "
            f"FROM {ks}.user_enrolments {enrolment}",
            read_ledger="SELECT userid, source, applied_offset, offsets, completion_record, "
            f"completion_ms FROM {ks}.lernflow_activity_applied {enrolment}",
            read_hierarchy="SELECT hierarchy "
            f"FROM {hierarchy_keyspace}.content_hierarchy WHERE identifier=?",
            write_consumption=f"UPDATE {ks}.user_content_consumption SET viewcount=?, "
            "completedcount=? WHERE userid=? AND courseid=? AND batchid=? AND contentid=?",
            write_ledger=f"UPDATE {ks}.lernflow_activity_applied SET offsets = offsets + ? "
            "WHERE userid=? AND courseid=? AND batchid=?",
            write_ledger_completion=f"UPDATE {ks}.lernflow_activity_applied "
            "SET offsets = offsets + ?, completion_record=?, completion_ms=? "
            "WHERE userid=? AND courseid=? AND batchid=?",
            write_progress=f"UPDATE {ks}.user_enrolments SET status=?, progress=?, "
            "contentstatus=?, datetime=? WHERE userid=? AND courseid=? AND batchid=?",
            write_completion=f"UPDATE {ks}.user_enrolments SET status=?, progress=?, "
            "contentstatus=?, datetime=?, completedon=? "
            "WHERE userid=? AND courseid=? AND batchid=?",
            write_aggregate=f"UPDATE {ks}.user_activity_agg SET aggregates = aggregates + ?, "
            "agg_last_updated = agg_last_updated + ? "
            "WHERE activity_type=? AND activity_id=? AND user_id=? AND context_id=?",
            delete_ledger=f"DELETE FROM {ks}.lernflow_activity_applied "
            "WHERE userid=? AND courseid=? AND batchid=? AND source=?",
        )


class ActivityStore(Protocol):
    """What the flow reads and writes (the servers, or dicts in unit tests)."""

    def seen_checksums(self, checksums: Sequence[str]) -> set[str]:
        """The dedup checksums already stored."""

    def ledgers(self, keys: Sequence[EnrolmentKey]) -> dict[EnrolmentKey, rules.Ledger]:
        """Each enrolment's applied offsets and completing record (one ledger row)."""

    def consumption(
        self, keys: Sequence[EnrolmentKey]
    ) -> dict[EnrolmentKey, dict[str, rules.StoredContent]]:
        """Each enrolment's stored consumption rows, by content."""

    def enrolments(
        self, keys: Sequence[EnrolmentKey]
    ) -> dict[EnrolmentKey, rules.EnrolmentRow | None]:
        """Each enrolment's row (None: not enrolled)."""

    def relation_sets(self, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        """The relation-cache sets (a missing key reads as an empty set)."""

    def collection_status(self, course_ids: Sequence[str]) -> dict[str, str | None]:
        """Each course's published status (None: not published)."""

    def write_enrolments(self, writes: Sequence[rules.EnrolmentWrite]) -> None:
        """Write each enrolment's state as one logged batch (with its ledger row)."""

    def certificate_mids(self, since_ms: int) -> set[str]:
        """The ``mid`` of every certificate request produced since ``since_ms``."""

    def delete_markers(self, keys: Sequence[EnrolmentKey]) -> None:
        """Delete the certificate-pending marker rows an older version left."""

    def store_checksums(self, checksums: Iterable[str]) -> None:
        """Store the dedup checksums with the configured expiry."""

    def close(self) -> None:
        """Release connections."""


class ActivityServerStore:
    """The servers: reads and writes of one worker (connections opened on construction)."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._cas = CassandraExecutor(settings.cassandra, settings.run, FLOW)
        self._relation = RedisBatch(
            settings.redis, settings.redis.relation_cache_db, settings.run, FLOW
        )
        self._dedup = RedisBatch(settings.redis, settings.redis.dedup_db, settings.run, FLOW)
        self._q = Statements.of(
            settings.cassandra.courses_keyspace, settings.cassandra.hierarchy_keyspace
        )
        # Reads name many learners of one course batch at once (``userid IN ?``): one request
        # per ``read_in_size`` enrolments instead of one each, the driver's per-request CPU
        # being what bounds a flow process.
        self._in_size = settings.activity.read_in_size
        self._cert_topic = settings.topics.full(settings.topics.issue_certificate_request)

    # -- Redis ---------------------------------------------------------------------------
    def seen_checksums(self, checksums: Sequence[str]) -> set[str]:
        """Return the dedup checksums already present in the dedup DB."""
        if not checksums:
            return set()
        found = self._dedup.pipeline(lambda p: [p.exists(c) for c in checksums], "dedup EXISTS")
        return {c for c, n in zip(checksums, found, strict=True) if n}

    def store_checksums(self, checksums: Iterable[str]) -> None:
        """SETEX each checksum with the configured expiry (value "" as Sunbird writes it)."""
        keys = sorted(set(checksums))
        if keys:
            ttl = self._s.redis.dedup_expiry_s
            self._dedup.pipeline(lambda p: [p.setex(k, ttl, "") for k in keys], "dedup SETEX")

    def relation_sets(self, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        """SMEMBERS of each relation-cache key, one round trip (missing key → empty set)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        values = self._relation.pipeline(lambda p: [p.smembers(k) for k in wanted], "SMEMBERS")
        return {k: frozenset(v) for k, v in zip(wanted, values, strict=True)}

    # -- Cassandra reads -----------------------------------------------------------------
    def _read(self, cql: str, keys: Sequence[EnrolmentKey], what: str) -> list[list[Any]]:
        """Rows of ``cql`` (``userid IN ? AND courseid=? AND batchid=?``) per key, in order."""
        users: dict[tuple[str, str], list[str]] = {}
        for user, course, batch in dict.fromkeys(keys):
            users.setdefault((course, batch), []).append(user)
        n = self._in_size
        params = [
            (ids[i : i + n], course, batch)
            for (course, batch), ids in users.items()
            for i in range(0, len(ids), n)
        ]
        found: dict[EnrolmentKey, list[Any]] = {}
        for (_ids, course, batch), rows in zip(
            params, self._cas.execute_many(cql, params, what), strict=True
        ):
            for r in rows:
                found.setdefault((r.userid, course, batch), []).append(r)
        return [found.get(k, []) for k in keys]

    def consumption(
        self, keys: Sequence[EnrolmentKey]
    ) -> dict[EnrolmentKey, dict[str, rules.StoredContent]]:
        """Stored consumption rows per enrolment (status null → 1, counters null → 0)."""
        results = self._read(self._q.read_consumption, keys, "read consumption")
        return {
            key: {
                r.contentid: rules.StoredContent(
                    rules.NULL_STATUS if r.status is None else int(r.status),
                    int(r.viewcount or 0),
                    int(r.completedcount or 0),
                )
                for r in rows
            }
            for key, rows in zip(keys, results, strict=True)
        }

    def enrolments(
        self, keys: Sequence[EnrolmentKey]
    ) -> dict[EnrolmentKey, rules.EnrolmentRow | None]:
        """The enrolment row per key, or None when the learner is not enrolled."""
        results = self._read(self._q.read_enrolments, keys, "read enrolments")
        out: dict[EnrolmentKey, rules.EnrolmentRow | None] = {}
        for key, rows in zip(keys, results, strict=True):
            if not rows:
                out[key] = None
                continue
            r = rows[0]
            done = r.completedon
            out[key] = rules.EnrolmentRow(
                r.status, r.progress, int(done.timestamp() * 1000) if done is not None else None
            )
        return out

    def ledgers(self, keys: Sequence[EnrolmentKey]) -> dict[EnrolmentKey, rules.Ledger]:
        """Per enrolment, the counted offsets per ``topic:partition`` and the completing record.

        The ledger row's static columns, merged with the clustering rows an older version wrote
        (the higher offset of a source wins; its marker row is reported as pending).
        """
        results = self._read(self._q.read_ledger, keys, "read applied offsets")
        return {key: _ledger(rows) for key, rows in zip(keys, results, strict=True)}

    def collection_status(self, course_ids: Sequence[str]) -> dict[str, str | None]:
        """The published status of each course from the hierarchy store (None: not published).

        Stands in for Sunbird's content-search call: the hierarchy row is what
        relation-cache-updater reads, and it carries the collection's ``status``.
        """
        ids = sorted(set(course_ids))
        results = self._cas.execute_many(
            self._q.read_hierarchy, [(c,) for c in ids], "read hierarchy"
        )
        out: dict[str, str | None] = {}
        for cid, rows in zip(ids, results, strict=True):
            status: str | None = None
            if rows and rows[0].hierarchy:
                try:
                    doc: Any = decode(rows[0].hierarchy, what="hierarchy", stored=True)
                    status = str(doc.get("status")) if isinstance(doc, dict) else None
                except InvalidEvent:
                    status = None
            out[cid] = status
        return out

    # -- Cassandra writes ----------------------------------------------------------------
    def write_enrolments(self, writes: Sequence[rules.EnrolmentWrite]) -> None:
        """One LOGGED batch per enrolment, consecutive ones joined up to ``BATCH_BYTES``.

        The aggregates ride in the enrolment's batch: one request per enrolment instead of one
        per activity (the driver's per-request CPU is what bounds a flow process), and the
        aggregates can never disagree with the enrolment row. Courses with more than
        ``AGGREGATES_IN_BATCH`` of them keep them separate, under Cassandra's batch size limits.
        """
        batches: list[list[tuple[str, tuple[Any, ...]]]] = []
        separate: list[tuple[Any, ...]] = []
        for w in writes:
            group = self._state(w)
            aggregates = [_aggregate_params(a) for a in w.aggregates]
            if len(aggregates) <= AGGREGATES_IN_BATCH:
                group += [(self._q.write_aggregate, a) for a in aggregates]
            else:
                separate += aggregates
            if group:
                batches.append(group)
        self._cas.execute_logged_batches(
            batches, "write consumption and enrolments", combine_bytes=BATCH_BYTES
        )
        self._cas.execute_many(self._q.write_aggregate, separate, "write aggregates")

    def _state(self, w: rules.EnrolmentWrite) -> list[tuple[str, tuple[Any, ...]]]:
        """Counters, the ledger row (applied offsets, completing record), enrolment update."""
        q, (user, course, batch) = self._q, w.key
        group: list[tuple[str, tuple[Any, ...]]] = [
            (q.write_consumption,
             (m.view_count, m.completed_count, user, course, batch, m.content_id))
            for m in w.counters
        ]  # fmt: skip
        offsets = {a.source: a.offset for a in w.applied}
        done, done_ms = w.completed_by, w.pending_since_ms
        if done is not None and done_ms is not None:
            record = f"{done.source}@{done.offset}"
            group.append((q.write_ledger_completion, (offsets, record, done_ms, *w.key)))
        elif offsets:
            group.append((q.write_ledger, (offsets, *w.key)))
        e = w.enrolment
        if e is not None and e.completed_on_ms is None:
            group.append(
                (q.write_progress, (e.status, e.progress, e.content_status, e.datetime_ms, *w.key))
            )
        elif e is not None:
            group.append(
                (q.write_completion,
                 (e.status, e.progress, e.content_status, e.datetime_ms, e.completed_on_ms, *w.key))
            )  # fmt: skip
        return group

    def delete_markers(self, keys: Sequence[EnrolmentKey]) -> None:
        """Delete the certificate-pending markers of ``keys``."""
        self._cas.execute_many(
            self._q.delete_ledger, [(*k, PENDING) for k in keys], "clear markers"
        )

    # -- Kafka -----------------------------------------------------------------------------
    def certificate_mids(self, since_ms: int) -> set[str]:
        """The ``mid`` of every certificate request written since ``since_ms`` (minus a minute).

        Used only after a crash, for completions whose certificate request may or may not have
        been sent; reads the topic from ``offsets_for_times`` to its current end.
        """
        topic = self._cert_topic
        consumer = kafka_consumer(self._s.kafka, group_id="lernflow-certificate-check")
        try:
            md = consumer.list_topics(topic, timeout=30).topics[topic]
            parts = [TopicPartition(topic, p, max(0, since_ms - 60_000)) for p in md.partitions]
            starts = consumer.offsets_for_times(parts, timeout=30)
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in md.partitions
            }
            assign = [tp for tp in starts if 0 <= tp.offset < ends[tp.partition]]
            if not assign:
                return set()
            consumer.assign(assign)
            return _mids_to_end(consumer, {tp.partition for tp in assign}, ends)
        finally:
            consumer.close()

    def close(self) -> None:
        """Release connections."""
        self._cas.close()
        self._relation.close()
        self._dedup.close()


def _ledger(rows: Sequence[Any]) -> rules.Ledger:
    """One enrolment's ledger from its rows (static columns repeat on every row)."""
    offsets: dict[str, int] = {}
    pending: int | None = None
    completion: rules.CompletionMark | None = None
    for r in rows:
        if r.source == PENDING:
            pending = int(r.applied_offset)
        elif r.source is not None and r.applied_offset is not None:
            offsets[r.source] = max(offsets.get(r.source, -1), int(r.applied_offset))
    if rows:
        first = rows[0]
        for source, offset in (first.offsets or {}).items():
            offsets[source] = max(offsets.get(source, -1), int(offset))
        if first.completion_record and first.completion_ms is not None:
            source, _at, offset = first.completion_record.rpartition("@")
            record = rules.AppliedOffset(source, int(offset))
            completion = rules.CompletionMark(record, int(first.completion_ms))
    return rules.Ledger(offsets, pending, completion)


def _aggregate_params(a: rules.AggregateUpdate) -> tuple[Any, ...]:
    """The ``write_aggregate`` parameters of one aggregate (a map merge of ``completedCount``)."""
    return (
        {"completedCount": a.completed_count},
        {"completedCount": a.updated_ms},
        rules.ACTIVITY_TYPE,
        a.activity_id,
        a.user_id,
        a.context_id,
    )


def _mids_to_end(consumer: Any, remaining: set[int], ends: dict[int, int]) -> set[str]:
    """Consume the assigned partitions up to ``ends``; the ``mid`` of each JSON message."""
    mids: set[str] = set()
    while remaining:
        for m in consumer.consume(1000, 1.0):
            if m.error() is not None:
                continue
            if m.offset() + 1 >= ends[m.partition()]:
                remaining.discard(m.partition())
            try:
                mid = decode(m.value(), what="certificate request", stored=True).get("mid")
            except (InvalidEvent, AttributeError):
                continue
            if isinstance(mid, str):
                mids.add(mid)
    return mids
