"""I/O of user-cache-updater: profile reads and atomic Redis hash writes around ``rules``.

Per batch, events are processed in rounds (one event per user per round, input order kept):
the round's registered users are read from the :class:`~flows.user_cache_updater.profiles.UserSource` in one go,
then every write of the round goes to Redis in one pipeline. Each write is one Lua call that
deletes the stale removable fields and merges the new ones atomically, so a report never reads
a half-updated hash (Sunbird does HGETALL, HDEL and HMSET as three separate commands).
"""

from __future__ import annotations

import logging
from typing import Any

from config import Settings
from flows._runtime import Item, failed_message, rounds
from flows.skipped import Skipped
from flows.user_cache_updater import rules
from flows.user_cache_updater.profiles import NotFound, UserSource, make_user_source, rules_config
from lernflow.kernel import metrics
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.redis_batch import RedisBatch
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

logger = logging.getLogger(__name__)

FLOW = "user-cache-updater"

# KEYS[1] the hash; ARGV[1] = n, ARGV[2..n+1] removable fields to delete when non-empty,
# then field/value pairs to merge.
_WRITE_LUA = """
local n = tonumber(ARGV[1])
for i = 2, n + 1 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and v ~= '' then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
if #ARGV > n + 1 then redis.call('HSET', KEYS[1], unpack(ARGV, n + 2, #ARGV)) end
return 1
"""


def entity(value: rules.AuditUser | Skipped) -> str:
    """Shard entity: all events of one user go to one worker, in order."""
    return value.user_id if isinstance(value, rules.AuditUser) else ""


class UserCacheWriter:
    """Applies :class:`rules.Write` plans to the Redis user cache (DB 12) in one pipeline."""

    def __init__(self, settings: Settings, flow: str) -> None:
        self._redis = RedisBatch(settings.redis, settings.redis.user_cache_db, settings.run, flow)
        self._script = self._redis.client.register_script(_WRITE_LUA)

    def write(self, writes: list[rules.Write]) -> None:
        """Apply every write (idempotent: a retry or a replay sets the same values)."""
        if not writes:
            return

        def build(pipe: Any) -> None:
            for w in writes:
                args: list[str] = [str(len(w.delete_if_stale)), *w.delete_if_stale]
                for k, v in w.hset.items():
                    args += [k, v]
                self._script(keys=[w.key], args=args, client=pipe)

        self._redis.pipeline(build, "user cache write")

    def read(self, keys: list[str]) -> list[dict[str, str]]:
        """Current hashes (for dry runs and diffs)."""
        return self._redis.pipeline(lambda p: [p.hgetall(k) for k in keys], "user cache read")

    def close(self) -> None:
        self._redis.close()


class UserCacheProcessor:
    """Per-worker processor of the flow."""

    def __init__(self, settings: Settings, source: UserSource | None = None) -> None:
        self._cfg = rules_config(settings)
        self._source = source or make_user_source(settings, FLOW)
        self._writer = UserCacheWriter(settings, FLOW)
        self._producer = DeliveryTrackingProducer(settings.kafka, client_id=FLOW)
        self._failed = settings.topics.full(settings.topics.telemetry_audit_failed)

    def _fail(self, item: Item[Any], reason: str, kind: str) -> OutMessage:
        return failed_message(FLOW, self._failed, item, reason, kind)

    def process(self, items: list[Item[Any]]) -> None:
        out = [self._fail(i, i.error or "", i.error_type) for i in items if i.error]
        events: list[Item[rules.AuditUser]] = []
        for item in items:
            if isinstance(item.value, Skipped):
                metrics.EVENTS_SKIPPED.labels(FLOW, item.value.kind).inc()
            elif isinstance(item.value, rules.AuditUser):
                events.append(item)
        for round_items in rounds(events, lambda e: e.user_id):
            registered = [i.value.user_id for i in round_items if i.value and i.value.registered]
            found = self._source.read(registered) if registered else {}
            writes: list[rules.Write] = []
            for item in round_items:
                event = item.value
                assert event is not None
                info = found.get(event.user_id) if event.registered else None
                if isinstance(info, NotFound):
                    # Sunbird still writes the sign-in fields of an unknown user; so do we,
                    # and park the event so it can be requeued once the profile exists.
                    out.append(self._fail(item, info.reason, "UserNotFound"))
                    general_only = rules.AuditUser(
                        event.user_id, event.state, False, event.general, event.mid
                    )
                    if event.general:
                        plan = rules.plan(general_only, None, self._cfg)
                        if isinstance(plan, rules.Write):
                            writes.append(plan)
                    continue
                try:
                    plan = rules.plan(event, info, self._cfg)
                except InvalidEvent as exc:
                    out.append(self._fail(item, exc.reason, type(exc).__name__))
                    continue
                if isinstance(plan, Skipped):
                    metrics.EVENTS_SKIPPED.labels(FLOW, plan.kind).inc()
                    continue
                writes.append(plan)
            self._writer.write(writes)
        if out:
            self._producer.produce_all(out)

    def close(self) -> None:
        self._producer.flush()
        self._source.close()
        self._writer.close()
