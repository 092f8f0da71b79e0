"""I/O of relation-cache-updater: hierarchy reads and Redis writes around ``rules``.

Per event, all DB 10 keys are replaced (DEL + SADD) in one MULTI/EXEC, then the DB 5 unit
strings are SET: readers never see a half-written key, and a replay rewrites the same values.
"""

from __future__ import annotations

import logging
from typing import Any

from config import Settings
from flows._runtime import Item, failed_message, rounds
from flows.relation_cache_updater import rules
from flows.skipped import Skipped
from lernflow.kernel import metrics
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.redis_batch import RedisBatch
from lernflow.kernel.retry import retry
from sinks.kafka_producer import DeliveryTrackingProducer

logger = logging.getLogger(__name__)

FLOW = "relation-cache-updater"


def entity(value: rules.PublishEvent | Skipped) -> str:
    """Shard entity: one collection is never processed twice at the same time."""
    return value.identifier if isinstance(value, rules.PublishEvent) else ""


class RelationCacheWriter:
    """Reads hierarchies and writes the caches (also used by ``relation-cache rebuild``)."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._cas = CassandraExecutor(settings.cassandra, settings.run, FLOW)
        self._relation = RedisBatch(
            settings.redis, settings.redis.relation_cache_db, settings.run, FLOW
        )
        self._units = RedisBatch(
            settings.redis, settings.redis.content_cache_db, settings.run, FLOW
        )
        self._q = f"SELECT hierarchy FROM {settings.cassandra.hierarchy_keyspace}.content_hierarchy WHERE identifier=?"

    def hierarchies(self, ids: list[str]) -> dict[str, str | None]:
        """The stored hierarchy text of each collection (None if absent)."""
        rows = self._cas.execute_many(self._q, [(i,) for i in ids], "read hierarchy")
        return {i: (r[0].hierarchy if r else None) for i, r in zip(ids, rows, strict=True)}

    def write(self, writes: rules.CacheWrites) -> None:
        """Replace the DB 10 sets atomically, then SET the DB 5 unit strings."""
        relation = self._relation.client

        def sets() -> None:
            pipe = relation.pipeline(transaction=True)
            for key, members in writes.sets.items():
                pipe.delete(key)
                pipe.sadd(key, *members)
            pipe.execute()

        retry(sets, self._s.run, "Redis relation cache")
        if writes.strings:
            self._units.pipeline(
                lambda p: [p.set(k, v) for k, v in writes.strings.items()], "unit cache"
            )

    def close(self) -> None:
        self._cas.close()
        self._relation.close()
        self._units.close()


class RelationCacheProcessor:
    """Per-worker processor of the flow."""

    def __init__(self, settings: Settings) -> None:
        self._writer = RelationCacheWriter(settings)
        self._producer = DeliveryTrackingProducer(settings.kafka, client_id=FLOW)
        self._failed = settings.topics.full(settings.topics.content_postpublish_failed)

    def process(self, items: list[Item[Any]]) -> None:
        out = [
            failed_message(FLOW, self._failed, i, i.error or "", i.error_type)
            for i in items
            if i.error
        ]
        events: list[Item[rules.PublishEvent]] = []
        for item in items:
            if isinstance(item.value, Skipped):
                metrics.EVENTS_SKIPPED.labels(FLOW, item.value.kind).inc()
            elif isinstance(item.value, rules.PublishEvent):
                events.append(item)
        for round_items in rounds(events, lambda e: e.identifier):
            texts = self._writer.hierarchies([i.value.identifier for i in round_items if i.value])
            for item in round_items:
                assert item.value is not None
                root = item.value.identifier
                try:
                    tree = rules.parse_hierarchy(texts[root])
                    if tree is None:
                        logger.warning("Hierarchy Empty: %s", root)
                        metrics.EVENTS_SKIPPED.labels(FLOW, "empty-hierarchy").inc()
                        continue
                    writes = rules.plan(root, tree)
                except InvalidEvent as exc:
                    out.append(
                        failed_message(FLOW, self._failed, item, exc.reason, type(exc).__name__)
                    )
                    continue
                self._writer.write(writes)
        if out:
            self._producer.produce_all(out)

    def close(self) -> None:
        self._producer.flush()
        self._writer.close()
