"""Cassandra and Redis access of activity-aggregate-updater, batched per window.

Every read of a window is one pipelined Redis round trip or one concurrent set of prepared
Cassandra statements; every write is an idempotent upsert. No business rules live here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from config import Settings
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.clients import kafka_consumer
from lernflow.kernel.redis_batch import RedisBatch

logger = logging.getLogger(__name__)

FLOW = "activity-aggregate-updater"


@dataclass(frozen=True)
class ConsumptionRow:
    """The columns of ``user_content_consumption`` this job reads (Sunbird's null defaults)."""

    contentid: str
    status: int
    viewcount: int
    completedcount: int


@dataclass(frozen=True)
class EnrolmentRow:
    """The columns of ``user_enrolments`` this job reads."""

    status: int | None
    progress: int | None
    completedon_ms: int | None


EnrolmentKey = tuple[str, str, str]  # (userId, courseId, batchId)


class ActivityStore:
    """Reads and writes of one worker (connections opened on construction)."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._cas = CassandraExecutor(settings.cassandra, settings.run, FLOW)
        self._relation = RedisBatch(
            settings.redis, settings.redis.relation_cache_db, settings.run, FLOW
        )
        self._dedup = RedisBatch(settings.redis, settings.redis.dedup_db, settings.run, FLOW)
        ks = settings.cassandra.courses_keyspace
        self._ks = ks
        hk = settings.cassandra.hierarchy_keyspace
        # Reads name many learners of one course batch at once (``userid IN ?``): one request
        # per ``read_in_size`` enrolments instead of one each, the driver's per-request CPU
        # being what bounds a flow process.
        self._in_size = settings.activity.read_in_size
        self._q_consumption = (
            f"SELECT userid, contentid, status, viewcount, completedcount "
            f"FROM {ks}.user_content_consumption WHERE userid IN ? AND courseid=? AND batchid=?"
        )
        self._q_enrolment = (
            f"SELECT userid, status, progress, completedon FROM {ks}.user_enrolments "
            "WHERE userid IN ? AND courseid=? AND batchid=?"
        )
        self._q_applied = (
            f"SELECT userid, source, applied_offset FROM {ks}.lernflow_activity_applied "
            "WHERE userid IN ? AND courseid=? AND batchid=?"
        )
        self._q_hierarchy = f"SELECT hierarchy FROM {hk}.content_hierarchy WHERE identifier=?"

    @property
    def executor(self) -> CassandraExecutor:
        """The Cassandra executor (for the write side)."""
        return self._cas

    @property
    def keyspace(self) -> str:
        """The courses keyspace."""
        return self._ks

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

    def consumption(self, keys: Sequence[EnrolmentKey]) -> dict[EnrolmentKey, list[ConsumptionRow]]:
        """Stored consumption rows per enrolment (status null → 1, counters null → 0)."""
        results = self._read(self._q_consumption, keys, "read consumption")
        return {
            key: [
                ConsumptionRow(
                    r.contentid,
                    1 if r.status is None else int(r.status),
                    int(r.viewcount or 0),
                    int(r.completedcount or 0),
                )
                for r in rows
            ]
            for key, rows in zip(keys, results, strict=True)
        }

    def enrolments(self, keys: Sequence[EnrolmentKey]) -> dict[EnrolmentKey, EnrolmentRow | None]:
        """The enrolment row per key, or None when the learner is not enrolled."""
        results = self._read(self._q_enrolment, keys, "read enrolments")
        out: dict[EnrolmentKey, EnrolmentRow | None] = {}
        for key, rows in zip(keys, results, strict=True):
            if not rows:
                out[key] = None
                continue
            r = rows[0]
            done = r.completedon
            out[key] = EnrolmentRow(
                r.status, r.progress, int(done.timestamp() * 1000) if done is not None else None
            )
        return out

    def applied_offsets(self, keys: Sequence[EnrolmentKey]) -> dict[EnrolmentKey, dict[str, int]]:
        """Per enrolment, the highest input offset already counted, per ``topic:partition``."""
        results = self._read(self._q_applied, keys, "read applied offsets")
        return {
            key: {r.source: int(r.applied_offset) for r in rows}
            for key, rows in zip(keys, results, strict=True)
        }

    def collection_status(self, course_ids: Sequence[str]) -> dict[str, str | None]:
        """The published status of each course from the hierarchy store (None: not published).

        Stands in for Sunbird's content-search call: the hierarchy row is what
        relation-cache-updater reads, and it carries the collection's ``status``.
        """
        ids = sorted(set(course_ids))
        results = self._cas.execute_many(self._q_hierarchy, [(c,) for c in ids], "read hierarchy")
        out: dict[str, str | None] = {}
        for cid, rows in zip(ids, results, strict=True):
            status: str | None = None
            if rows and rows[0].hierarchy:
                try:
                    doc: Any = json.loads(rows[0].hierarchy)
                    status = str(doc.get("status")) if isinstance(doc, dict) else None
                except ValueError:
                    status = None
            out[cid] = status
        return out

    def mids_on_topic(self, topic: str, since_ms: int) -> set[str]:
        """The ``mid`` of every message on ``topic`` written since ``since_ms`` (minus a minute).

        Used only after a crash, for completions whose certificate request may or may not have
        been sent; reads the topic from ``offsets_for_times`` to its current end.
        """
        import json as _json

        from confluent_kafka import TopicPartition

        consumer = kafka_consumer(self._s.kafka, group_id="lernflow-certificate-check")
        mids: set[str] = set()
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
                return mids
            consumer.assign(assign)
            remaining = {tp.partition for tp in assign}
            while remaining:
                for m in consumer.consume(1000, 1.0):
                    if m.error() is not None:
                        continue
                    if m.offset() + 1 >= ends[m.partition()]:
                        remaining.discard(m.partition())
                    try:
                        mid = _json.loads(m.value()).get("mid")
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(mid, str):
                        mids.add(mid)
        finally:
            consumer.close()
        return mids

    def close(self) -> None:
        """Release connections."""
        self._cas.close()
        self._relation.close()
        self._dedup.close()
