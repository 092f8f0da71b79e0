"""Every server call of relation-cache-updater: hierarchy reads (Cassandra), cache writes (Redis).

Per event, all DB 10 keys are replaced (DEL + SADD) in one MULTI/EXEC, then the DB 5 unit
strings are SET: readers never see a half-written key, and a replay rewrites the same values
(docs/flows/relation-cache-updater.md).
"""

from __future__ import annotations

from typing import Protocol

from lernflow.config import Settings
from lernflow.flows.relation_cache_updater import rules
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.redis_batch import RedisBatch
from lernflow.kernel.retry import retry

FLOW = "relation-cache-updater"


class RelationCacheStore(Protocol):
    """What the flow reads and writes (the servers, or a dict in unit tests)."""

    def hierarchies(self, ids: list[str]) -> dict[str, str | None]:
        """The stored hierarchy text of each collection (None if absent)."""

    def write(self, writes: rules.CacheWrites) -> None:
        """Replace the DB 10 sets atomically, then SET the DB 5 unit strings."""

    def close(self) -> None:
        """Release connections."""


class RelationCacheWriter:
    """The servers (also used by ``relation-cache rebuild``)."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._cas = CassandraExecutor(settings.cassandra, settings.run, FLOW)
        self._relation = RedisBatch(
            settings.redis, settings.redis.relation_cache_db, settings.run, FLOW
        )
        self._units = RedisBatch(
            settings.redis, settings.redis.content_cache_db, settings.run, FLOW
        )
        ks = settings.cassandra.hierarchy_keyspace
        self._q = f"SELECT hierarchy FROM {ks}.content_hierarchy WHERE identifier=?"

    def hierarchies(self, ids: list[str]) -> dict[str, str | None]:
        rows = self._cas.execute_many(self._q, [(i,) for i in ids], "read hierarchy")
        return {i: (r[0].hierarchy if r else None) for i, r in zip(ids, rows, strict=True)}

    def write(self, writes: rules.CacheWrites) -> None:
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
