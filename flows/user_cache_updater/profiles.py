"""Where user profiles come from: the ``UserSource`` interface and its two implementations.

* :class:`CassandraUserSource` (default) reads Sunbird's user tables in the ``sunbird`` keyspace
  and maps them to the user-read API's answer (``flows.user_cache_updater.profile``), so the
  cache gets the same fields either way.
* :class:`HttpUserSource` calls Sunbird's user-read API as Sunbird's own job does
  (``GET <url><userId>?fields=locations,organisations``), with a timeout and retries.

Both answer a whole batch of ids at once and return, per id, a :class:`~rules.Profile`, a
:class:`~rules.Blocked` account or :class:`NotFound` (with the reason). Server faults raise
:class:`~lernflow.kernel.errors.TransientError` (or a driver error ``lernflow.kernel.retry`` treats as
transient) so the caller retries; nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from config import Settings
from flows.user_cache_updater import profile, rules
from lernflow.kernel import metrics
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.errors import InvalidEvent, TransientError
from lernflow.kernel.retry import retry

logger = logging.getLogger(__name__)

CUSTODIAN_SETTING_IDS = ("custodianOrgId", "custodianRootOrgId")
USER_COLUMNS = (
    "id", "userid", "firstname", "lastname", "language", "rootorgid", "email", "phone",
    "framework", "profilelocation", "locationids", "profileusertypes", "usertype",
    "usersubtype",
)  # fmt: skip


@dataclass(frozen=True)
class NotFound:
    """The source has no usable profile for the user; ``reason`` says why."""

    user_id: str
    reason: str


Lookup = rules.Profile | rules.Blocked | NotFound


class UserSource(Protocol):
    """Reads the profiles of a batch of users."""

    def read(self, user_ids: Sequence[str]) -> dict[str, Lookup]:
        """Return one answer per distinct id (raise only on transient faults)."""

    def close(self) -> None:
        """Release connections."""


class CassandraUserSource:
    """Profiles from the ``sunbird`` keyspace, read concurrently with prepared statements."""

    def __init__(
        self,
        settings: Settings,
        flow: str,
        executor: CassandraExecutor | None = None,
        cache_lookups: bool = False,
    ) -> None:
        """``cache_lookups`` keeps organisation and location rows for the object's lifetime
        (for a bulk rebuild; the flow re-reads them per batch so changes show up)."""
        self._cache: dict[str, dict[str, dict[str, Any] | None]] | None = (
            {} if cache_lookups else None
        )
        self._owns = executor is None
        self._cas = executor or CassandraExecutor(settings.cassandra, settings.run, flow)
        ks = settings.cassandra.sunbird_keyspace
        self._q_user = f"SELECT {', '.join(USER_COLUMNS)} FROM {ks}.user WHERE id=?"
        self._q_orgs_of = (
            f"SELECT organisationid, isdeleted FROM {ks}.user_organisation WHERE userid=?"
        )
        self._q_decl = f"SELECT orgid, persona, userinfo FROM {ks}.user_declarations WHERE userid=?"
        self._q_org = (
            f"SELECT id, orgname, isrootorg, externalid, locationids FROM {ks}.organisation "
            "WHERE id=?"
        )
        self._q_loc = f"SELECT id, name, type, code FROM {ks}.location WHERE id=?"
        self._q_settings = f"SELECT id, value FROM {ks}.system_settings WHERE id=?"
        self._custodian: tuple[str | None, float] | None = None

    def custodian_org(self) -> str | None:
        """The custodian root org id from ``system_settings`` (re-read every 5 minutes)."""
        now = time.monotonic()
        if self._custodian is None or now - self._custodian[1] > 300:
            rows = self._cas.execute_many(
                self._q_settings, [(i,) for i in CUSTODIAN_SETTING_IDS], "system settings"
            )
            value = next((str(r[0].value) for r in rows if r and r[0].value), None)
            self._custodian = (value, now)
        return self._custodian[0]

    def responses(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """The user-read API's ``result.response`` per id, built from the tables (None: absent)."""
        ids = list(dict.fromkeys(user_ids))
        users = self._cas.execute_many(self._q_user, [(i,) for i in ids], "read users")
        found = [(i, r[0]._asdict()) for i, r in zip(ids, users, strict=True) if r]
        custodian = self.custodian_org()
        bare = {i: profile.UserRows(u) for i, u in found}
        wants = {i: profile.needs(r, custodian) for i, r in bare.items()}
        decl_ids = [i for i, _u in found if wants[i][0]]
        member_ids = [i for i, _u in found if wants[i][1]]
        decls = self._cas.execute_many(self._q_decl, [(i,) for i in decl_ids], "declarations")
        orgs_of = self._cas.execute_many(self._q_orgs_of, [(i,) for i in member_ids], "user orgs")
        decl_by = {i: tuple(d._asdict() for d in dl) for i, dl in zip(decl_ids, decls, strict=True)}
        orgs_by = {
            i: tuple(o.organisationid for o in og if not o.isdeleted)
            for i, og in zip(member_ids, orgs_of, strict=True)
        }
        rows = [
            dataclasses.replace(
                bare[i], organisation_ids=orgs_by.get(i, ()), declarations=decl_by.get(i, ())
            )
            if wants[i] != (False, False)
            else bare[i]
            for i, _u in found
        ]
        lookups = self.lookups(rows)
        out: dict[str, dict[str, Any] | None] = dict.fromkeys(ids)
        for (i, _u), r in zip(found, rows, strict=True):
            out[i] = profile.response_from_rows(r, lookups)
        return out

    def read(self, user_ids: Sequence[str]) -> dict[str, Lookup]:
        out: dict[str, Lookup] = {}
        for i, response in self.responses(user_ids).items():
            if response is None:
                out[i] = NotFound(i, f"user {i} not found in the Cassandra user table")
            else:
                out[i] = rules.Profile(rules.profile_fields(response))
        return out

    def lookups(self, rows: Iterable[profile.UserRows]) -> profile.Lookups:
        """Read the organisations and locations ``rows`` refer to (two concurrent rounds)."""
        rows = list(rows)
        org_ids: set[str] = set()
        loc_ids: set[str] = set()
        for r in rows:
            o, loc = profile.needed_ids(r)
            org_ids |= o
            loc_ids |= loc
        orgs = self._by_id(self._q_org, org_ids, "organisations")
        # users without locations of their own take their school organisation's
        partial = profile.Lookups(organisations=orgs)
        for r in rows:
            loc_ids.update(profile.school_org_location_ids(r, partial))
        locs = self._by_id(self._q_loc, loc_ids, "locations")
        return profile.Lookups(organisations=orgs, locations=locs)

    def _by_id(self, cql: str, ids: set[str], what: str) -> dict[str, dict[str, Any]]:
        cache = None if self._cache is None else self._cache.setdefault(what, {})
        keys = sorted(ids if cache is None else ids - cache.keys())
        res = self._cas.execute_many(cql, [(i,) for i in keys], what)
        got = {k: (r[0]._asdict() if r else None) for k, r in zip(keys, res, strict=True)}
        if cache is not None:
            cache.update(got)
            got = {i: cache[i] for i in ids}
        return {k: v for k, v in got.items() if v is not None}

    @property
    def executor(self) -> CassandraExecutor:
        """The Cassandra executor (shared with the bulk rebuild's scans)."""
        return self._cas

    def close(self) -> None:
        if self._owns:
            self._cas.close()


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
        out: dict[str, Lookup] = {}
        for i, body in zip(ids, bodies, strict=True):
            try:
                out[i] = rules.parse_user_read(body, i, self._cfg)
            except InvalidEvent as exc:
                out[i] = NotFound(i, exc.reason)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False)


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
