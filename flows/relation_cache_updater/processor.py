"""One round of relation-cache-updater: read the hierarchies, plan with ``rules``, write.

The shell (:mod:`flows.shell`) parks invalid events and counts skipped ones; here a round reads
the stored hierarchy of each published collection in one concurrent request, plans the cache
keys with the pure rules and writes them through the store (docs/flows/relation-cache-updater.md).
"""

from __future__ import annotations

import logging

from lernflow.config import Settings
from lernflow.flows.relation_cache_updater import rules
from lernflow.flows.relation_cache_updater.store import RelationCacheStore, RelationCacheWriter
from lernflow.flows.shell import Round
from lernflow.kernel.errors import InvalidEvent

logger = logging.getLogger(__name__)


def entity(value: rules.PublishEvent) -> str:
    """Shard entity: one collection is never processed twice at the same time."""
    return value.identifier


class RelationCacheLogic:
    """The flow's logic for the processor shell."""

    def __init__(self, settings: Settings, store: RelationCacheStore | None = None) -> None:
        self._store: RelationCacheStore = store or RelationCacheWriter(settings)

    def round_key(self, value: rules.PublishEvent) -> object:
        return value.identifier

    def run_round(self, round_: Round[rules.PublishEvent]) -> None:
        events = round_.values()
        texts = self._store.hierarchies([e.identifier for _i, e in events])
        for item, event in events:
            try:
                tree = rules.parse_hierarchy(texts[event.identifier])
                if tree is None:
                    logger.warning("Hierarchy Empty: %s", event.identifier)
                    round_.skip("empty-hierarchy")
                    continue
                writes = rules.plan(event.identifier, tree)
            except InvalidEvent as exc:
                round_.park(item, exc.reason, type(exc).__name__)
                continue
            self._store.write(writes)

    def close(self) -> None:
        self._store.close()
