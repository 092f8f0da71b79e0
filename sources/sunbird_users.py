"""Sunbird's user tables, read in the shape of the user-read API's answer.

The certificate pre-processor and the user cache both need a learner's profile as Sunbird's
user-read API returns it. :class:`SunbirdUserTables` reads the ``sunbird`` keyspace (user,
organisations, locations, declarations) concurrently with prepared statements and maps the
rows with :mod:`sources.user_rows`, so every reader gets the same fields
(docs/flows/user-cache-updater.md).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

from lernflow.config import Settings
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.sources import user_rows

CUSTODIAN_SETTING_IDS = ("custodianOrgId", "custodianRootOrgId")
USER_COLUMNS = (
    "id", "userid", "firstname", "lastname", "language", "rootorgid", "email", "phone",
    "framework", "profilelocation", "locationids", "profileusertypes", "usertype",
    "usersubtype",
)  # fmt: skip


class SunbirdUserTables:
    """Sunbird's user tables (``sunbird`` keyspace) read as the user-read API would answer."""

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
        bare = {i: user_rows.UserRows(u) for i, u in found}
        wants = {i: user_rows.needs(r, custodian) for i, r in bare.items()}
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
            out[i] = user_rows.response_from_rows(r, lookups)
        return out

    def lookups(self, rows: Iterable[user_rows.UserRows]) -> user_rows.Lookups:
        """Read the organisations and locations ``rows`` refer to (two concurrent rounds)."""
        rows = list(rows)
        org_ids: set[str] = set()
        loc_ids: set[str] = set()
        for r in rows:
            o, loc = user_rows.needed_ids(r)
            org_ids |= o
            loc_ids |= loc
        orgs = self._by_id(self._q_org, org_ids, "organisations")
        # users without locations of their own take their school organisation's
        partial = user_rows.Lookups(organisations=orgs)
        for r in rows:
            loc_ids.update(user_rows.school_org_location_ids(r, partial))
        locs = self._by_id(self._q_loc, loc_ids, "locations")
        return user_rows.Lookups(organisations=orgs, locations=locs)

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
