"""Revocation and the status-list indexes, on Cassandra
(docs/flows/certificate-generator.md#14-revocation-and-status-list).

* **Index allocation** (at issue time): a certificate keeps the ``statusListIndex`` of its
  registry row's credential when it has one (a replay or a retry gets the same bit); new ones
  take the next indexes of the list from ``lernflow_cert_status_counter``, advanced by a
  lightweight transaction (compare-and-set on ``next``), so two workers never hand out the same
  index. An index taken by a round that then fails is never used again (a gap, harmless).
* **Revocation**: ``sunbird.cert_registry`` keeps Sunbird's meaning: ``isrevoked=true``,
  ``reason`` the why, ``updatedby``/``updatedat`` the who and when (``IF EXISTS``: an unknown
  id is never created). A certificate with a status index also gets its row in
  ``lernflow_cert_revoked`` (list, index → id, reason, who, when), written *first*, so a revoke
  interrupted half-way is finished by running it again; the status list is built from that one
  partition.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from lernflow.certificates.credential import STATUS_PURPOSE
from lernflow.certificates.status_list import credential_status
from lernflow.config import Settings
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

LIST = STATUS_PURPOSE  # the one list: revocation
_CAS_ATTEMPTS = 100


class StatusAllocationError(LernflowError):
    """The status-list counter could not be advanced (too much contention)."""

    retryable = True


@dataclass(frozen=True)
class Revocation:
    """A request to revoke one certificate: why, by whom, when; ``recipient`` (when given)
    must be the registry row's recipient id (a re-issue revokes only its own learner's)."""

    cert_id: str
    reason: str
    by: str
    at: datetime
    recipient: str | None = None


@dataclass(frozen=True)
class RevokeOutcome:
    """What a revocation did: ``revoked`` now, ``already`` (nothing changed; the first
    revocation's reason/by/at), ``unknown`` id, or ``other-recipient`` (refused)."""

    status: Literal["revoked", "already", "unknown", "other-recipient"]
    cert_id: str
    reason: str = ""
    by: str = ""
    at: datetime | None = None
    index: int | None = None


@dataclass(frozen=True)
class RegistryStatus:
    """The revocation state of one ``cert_registry`` row."""

    revoked: bool
    reason: str
    by: str
    at: datetime | None
    index: int | None
    recipient: str


def index_of(data: str | None) -> int | None:
    """The revocation ``statusListIndex`` in a registry row's credential JSON, if any."""
    try:
        entry = credential_status(json.loads(data or "null") or {})
        return None if entry is None else int(str(entry["statusListIndex"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _recipient_of(text: str | None) -> str:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return ""
    return str(value.get("id") or "") if isinstance(value, dict) else ""


class CertStatusStore:
    """Index allocation, revocation and the revoked indexes (Cassandra)."""

    def __init__(self, settings: Settings, flow: str) -> None:
        self._cas = CassandraExecutor(settings.cassandra, settings.run, flow)
        sb = settings.cassandra.sunbird_keyspace
        self._q_row = (
            "SELECT isrevoked, reason, updatedby, updatedat, data, recipient "
            f"FROM {sb}.cert_registry WHERE id=?"
        )
        self._q_revoke = (
            f"UPDATE {sb}.cert_registry SET isrevoked=true, reason=?, updatedby=?, updatedat=? "
            "WHERE id=? IF EXISTS"
        )
        self._q_mark = (
            f"INSERT INTO {sb}.lernflow_cert_revoked (list, idx, id, reason, revoked_by, "
            "revoked_at) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self._q_revoked = f"SELECT idx FROM {sb}.lernflow_cert_revoked WHERE list=?"
        self._q_next = f"SELECT next FROM {sb}.lernflow_cert_status_counter WHERE list=?"
        self._q_first = (
            f"INSERT INTO {sb}.lernflow_cert_status_counter (list, next) VALUES (?, ?) "
            "IF NOT EXISTS"
        )
        self._q_advance = (
            f"UPDATE {sb}.lernflow_cert_status_counter SET next=? WHERE list=? IF next=?"
        )

    def registry(self, cert_ids: list[str]) -> dict[str, RegistryStatus | None]:
        """Each certificate's registry state (None: no such row)."""
        ids = list(dict.fromkeys(cert_ids))
        rows = self._cas.execute_many(self._q_row, [(i,) for i in ids], "cert_registry")
        out: dict[str, RegistryStatus | None] = {}
        for cert_id, found in zip(ids, rows, strict=True):
            r = found[0] if found else None
            out[cert_id] = (
                None
                if r is None
                else RegistryStatus(
                    bool(r.isrevoked), r.reason or "", r.updatedby or "", r.updatedat,
                    index_of(r.data), _recipient_of(r.recipient),
                )
            )  # fmt: skip
        return out

    def indexes(self, cert_ids: list[str]) -> dict[str, int]:
        """Each certificate's status index: its registry credential's, else a new one."""
        known = self.registry(cert_ids)
        out = {i: s.index for i, s in known.items() if s is not None and s.index is not None}
        new = [i for i in dict.fromkeys(cert_ids) if i not in out]
        if new:
            first = self._take(len(new))
            out.update({cert_id: first + n for n, cert_id in enumerate(new)})
        return out

    def _take(self, count: int) -> int:
        """Advance the counter by ``count``; the first index taken."""
        for _ in range(_CAS_ATTEMPTS):
            rows = self._cas.execute_many(self._q_next, [(LIST,)], "status counter")[0]
            if not rows:
                done = self._cas.execute_many(self._q_first, [(LIST, count)], "status counter")
                if done[0][0].applied:
                    return 0
                continue
            current = int(rows[0].next)
            params = [(current + count, LIST, current)]
            if self._cas.execute_many(self._q_advance, params, "status counter")[0][0].applied:
                return current
        msg = f"the status-list counter did not advance in {_CAS_ATTEMPTS} attempts"
        raise StatusAllocationError(msg)

    def revoke(self, requests: list[Revocation]) -> list[RevokeOutcome]:
        """Revoke each certificate (see the module docstring); one outcome per request."""
        states = self.registry([r.cert_id for r in requests])
        outcomes: list[RevokeOutcome] = []
        for req in requests:
            outcomes.append(self._revoke_one(req, states.get(req.cert_id)))
        return outcomes

    def _revoke_one(self, req: Revocation, state: RegistryStatus | None) -> RevokeOutcome:
        if state is None:
            return RevokeOutcome("unknown", req.cert_id)
        if req.recipient is not None and state.recipient != req.recipient:
            return RevokeOutcome("other-recipient", req.cert_id)
        if state.revoked:
            if state.index is not None:  # finish a revoke interrupted before the registry
                self._mark(req.cert_id, state.index, state.reason, state.by, state.at)
            return RevokeOutcome(
                "already", req.cert_id, state.reason, state.by, state.at, state.index
            )
        if state.index is not None:
            self._mark(req.cert_id, state.index, req.reason, req.by, req.at)
        params = [(req.reason, req.by, req.at, req.cert_id)]
        self._cas.execute_many(self._q_revoke, params, "cert_registry revoke")
        logger.info("certificate %s revoked by %s: %s", req.cert_id, req.by, req.reason)
        return RevokeOutcome("revoked", req.cert_id, req.reason, req.by, req.at, state.index)

    def _mark(self, cert_id: str, index: int, reason: str, by: str, at: Any) -> None:
        params = [(LIST, index, cert_id, reason, by, at)]
        self._cas.execute_many(self._q_mark, params, "status list")

    def revoked_indexes(self) -> tuple[list[int], int]:
        """The revoked indexes of the list and how many indexes were handed out."""
        rows = self._cas.execute_many(self._q_revoked, [(LIST,)], "status list")[0]
        counter = self._cas.execute_many(self._q_next, [(LIST,)], "status counter")[0]
        return [int(r.idx) for r in rows], int(counter[0].next) if counter else 0

    def close(self) -> None:
        """Release connections."""
        self._cas.close()
