"""Where user profiles come from: the ``UserSource`` interface and its two implementations.

The flow's store (:mod:`flows.user_cache_updater.store`) reads profiles through one of them:

* :class:`CassandraUserSource` (default) reads Sunbird's user tables in the ``sunbird`` keyspace
  and maps them to the user-read API's answer (:mod:`sources.sunbird_users`), so the cache gets
  the same fields either way.
* :class:`HttpUserSource` calls Sunbird's user-read API as Sunbird's own job does
  (``GET <url><userId>?fields=locations,organisations``), with a timeout and retries.

Both answer a whole batch of ids at once and return, per id, a :class:`~rules.Profile`, a
:class:`~rules.Blocked` account or :class:`~rules.NotFound` (with the reason). Server faults raise
:class:`~lernflow.kernel.errors.TransientError` (or a driver error ``lernflow.kernel.retry`` treats as
transient) so the caller retries; nothing is skipped.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from lernflow.config import Settings
from lernflow.flows.user_cache_updater import rules
from lernflow.kernel import metrics
from lernflow.kernel.errors import InvalidEvent, TransientError
from lernflow.kernel.retry import retry
from lernflow.sources.sunbird_users import SunbirdUserTables

Lookup = rules.Profile | rules.Blocked | rules.NotFound


class UserSource(Protocol):
    """Reads the profiles of a batch of users."""

    def read(self, user_ids: Sequence[str]) -> dict[str, Lookup]:
        """Return one answer per distinct id (raise only on transient faults)."""

    def close(self) -> None:
        """Release connections."""


class CassandraUserSource(SunbirdUserTables):
    """Profiles from the ``sunbird`` keyspace, read concurrently with prepared statements."""

    def read(self, user_ids: Sequence[str]) -> dict[str, Lookup]:
        out: dict[str, Lookup] = {}
        for i, response in self.responses(user_ids).items():
            if response is None:
                out[i] = rules.NotFound(i, f"user {i} not found in the Cassandra user table")
            else:
                out[i] = rules.Profile(rules.profile_fields(response))
        return out


class HttpUserSource:
    """Sunbird's user-read API, called concurrently (one request per user, like Sunbird)."""

    def __init__(self, settings: Settings, flow: str, threads: int = 16) -> None:
        self._s = settings
        self._flow = flow
        self._cfg = rules_config(settings)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="user-read")

    def url(self, user_id: str) -> str:
        """The request URL for one user (the configured prefix always ends with ``/``)."""
        uc = self._s.user_cache
        return (
            f"{uc.user_read_url}{urllib.parse.quote(user_id, safe='')}"
            f"?fields={urllib.parse.quote(uc.user_read_fields, safe=',')}"
        )

    def _fetch(self, user_id: str) -> bytes:
        # the URL scheme is http(s) only: UserCacheSettings validates it
        req = urllib.request.Request(self.url(user_id), headers={"Accept": "application/json"})  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=self._s.user_cache.http_timeout_s) as resp:  # noqa: S310
                body: bytes = resp.read()
                return body
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                msg = f"user-read API answered HTTP {exc.code} for {user_id}"
                raise TransientError(msg) from exc
            body = exc.read()  # a 4xx carries Sunbird's JSON answer (e.g. RESOURCE_NOT_FOUND)
            return body
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            msg = f"user-read API unreachable for {user_id}: {exc}"
            raise TransientError(msg) from exc

    def read(self, user_ids: Sequence[str]) -> dict[str, Lookup]:
        ids = list(dict.fromkeys(user_ids))

        def attempt() -> list[bytes]:
            return list(self._pool.map(self._fetch, ids))

        bodies = retry(
            attempt,
            self._s.run,
            "user-read API",
            on_retry=lambda _e: metrics.RETRIES.labels(self._flow, "user-read-api").inc(),
        )
        return {i: answer(body, i, self._cfg) for i, body in zip(ids, bodies, strict=True)}

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def answer(body: bytes, user_id: str, cfg: rules.RulesConfig) -> Lookup:
    """One user-read API answer as the flow takes it (an unusable one: not found, with why)."""
    try:
        return rules.parse_user_read(body, user_id, cfg)
    except InvalidEvent as exc:
        return rules.NotFound(user_id, exc.reason)


def rules_config(settings: Settings) -> rules.RulesConfig:
    """The pure rules' configuration from the ``LERNFLOW_USER_CACHE_*`` settings."""
    uc = settings.user_cache

    def items(text: str) -> tuple[str, ...]:
        return tuple(t.strip() for t in text.split(",") if t.strip())

    return rules.RulesConfig(
        regd_pid=uc.regd_pid,
        self_signin_types=items(uc.self_signin_types),
        validated_types=items(uc.validated_types),
        accept_delete=uc.accept_delete,
    )


def make_user_source(settings: Settings, flow: str) -> UserSource:
    """The source chosen by ``LERNFLOW_USER_CACHE_SOURCE``."""
    if settings.user_cache.source == "http":
        return HttpUserSource(settings, flow)
    return CassandraUserSource(settings, flow)
