"""Every server call of user-cache-updater: profile reads and the Redis user cache (DB 12).

Profiles come from the configured :class:`~flows.user_cache_updater.profiles.UserSource` (the
Sunbird user tables or the user-read API), one call per round. Each write is one Lua call that
deletes the stale removable fields and merges the new ones atomically, so a report never reads
a half-updated hash (Sunbird does HGETALL, HDEL and HMSET as three separate commands); a round's
writes go to Redis in one pipeline (docs/flows/user-cache-updater.md#7-write).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from lernflow.config import Settings
from lernflow.flows.user_cache_updater import rules
from lernflow.flows.user_cache_updater.profiles import Lookup, UserSource, make_user_source
from lernflow.kernel.redis_batch import RedisBatch

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


class UserCacheStore(Protocol):
    """What the flow reads and writes (the servers, or dicts in unit tests)."""

    def profiles(self, user_ids: Sequence[str]) -> dict[str, Lookup]:
        """One answer per distinct id: a profile, a blocked account or not found."""

    def current(self, keys: list[str]) -> list[dict[str, str]]:
        """The current hashes of ``keys`` (empty when absent)."""

    def write(self, writes: list[rules.Write]) -> None:
        """Apply every write: HDEL the stale removable fields, then HSET, atomically per key."""

    def close(self) -> None:
        """Release connections."""


class RedisUserCache:
    """The Redis user cache (DB 12): atomic hash writes and reads (also the bulk rebuild's)."""

    def __init__(self, settings: Settings, flow: str) -> None:
        self._redis = RedisBatch(settings.redis, settings.redis.user_cache_db, settings.run, flow)
        self._script = self._redis.client.register_script(_WRITE_LUA)

    def write(self, writes: list[rules.Write]) -> None:
        """Apply every write in one pipeline (idempotent: a retry or a replay sets the same values)."""
        if not writes:
            return

        def build(pipe: Any) -> None:
            for w in writes:
                args: list[str] = [str(len(w.delete_if_stale)), *w.delete_if_stale]
                for k, v in w.hset.items():
                    args += [k, v]
                self._script(keys=[w.key], args=args, client=pipe)

        self._redis.pipeline(build, "user cache write")

    def current(self, keys: list[str]) -> list[dict[str, str]]:
        """Current hashes (for dry runs and diffs)."""
        return self._redis.pipeline(lambda p: [p.hgetall(k) for k in keys], "user cache read")

    def close(self) -> None:
        self._redis.close()


class UserCacheServers(RedisUserCache):
    """The flow's store on the servers: the configured profile source and the Redis cache."""

    def __init__(self, settings: Settings, source: UserSource | None = None) -> None:
        super().__init__(settings, FLOW)
        self._source = source or make_user_source(settings, FLOW)

    def profiles(self, user_ids: Sequence[str]) -> dict[str, Lookup]:
        return self._source.read(user_ids) if user_ids else {}

    def close(self) -> None:
        self._source.close()
        super().close()
