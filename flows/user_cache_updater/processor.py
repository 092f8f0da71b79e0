"""One round of user-cache-updater: read the profiles, plan with ``rules``, write.

The shell (:mod:`flows.shell`) parks invalid events and counts skipped ones; a round holds at
most one event per user. Its registered users' profiles are read from the store in one call,
each event is planned with the pure rules (:func:`~flows.user_cache_updater.rules.plan_event`)
and the round's writes go to Redis in one pipeline. Events of an unknown user are parked after
their sign-in fields are written (the shell sends what a round parked once the round is done).
"""

from __future__ import annotations

from lernflow.config import Settings
from lernflow.flows.shell import Round
from lernflow.flows.skipped import Skipped
from lernflow.flows.user_cache_updater import rules
from lernflow.flows.user_cache_updater.profiles import rules_config
from lernflow.flows.user_cache_updater.store import UserCacheServers, UserCacheStore
from lernflow.kernel.errors import InvalidEvent


def entity(value: rules.AuditUser) -> str:
    """Shard entity: all events of one user go to one worker, in order."""
    return value.user_id


class UserCacheLogic:
    """The flow's logic for the processor shell."""

    def __init__(self, settings: Settings, store: UserCacheStore | None = None) -> None:
        self._cfg = rules_config(settings)
        self._store: UserCacheStore = store or UserCacheServers(settings)

    def round_key(self, value: rules.AuditUser) -> object:
        return value.user_id

    def run_round(self, round_: Round[rules.AuditUser]) -> None:
        events = round_.values()
        found = self._store.profiles([e.user_id for _i, e in events if e.registered])
        writes: list[rules.Write] = []
        for item, event in events:
            info = found.get(event.user_id) if event.registered else None
            try:
                outcome = rules.plan_event(event, info, self._cfg)
            except InvalidEvent as exc:
                round_.park(item, exc.reason, type(exc).__name__)
                continue
            if isinstance(outcome, Skipped):
                round_.skip(outcome.kind)
            elif isinstance(outcome, rules.Parked):
                round_.park(item, outcome.reason, outcome.error_type)
                if outcome.write is not None:
                    writes.append(outcome.write)
            else:
                writes.append(outcome)
        self._store.write(writes)

    def close(self) -> None:
        self._store.close()
