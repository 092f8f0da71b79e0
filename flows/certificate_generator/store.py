"""Every server call of certificate-generator: enrolment, profile and batch reads, and writes.

All Cassandra: ``user_enrolments`` (``issued_certificates`` for the dedup, ``completedon`` for
the notification's ``heldDate``) read, and ``issued_certificates`` rewritten (last step of a
round); the learners' ``sunbird.user`` rows (``firstname``, ``maskedphone``, ``isdeleted``: the
fields of Sunbird's user read the notifier uses) and the batches' ``course_batch.cert_templates``
(the template's ``notifyTemplate``) read; ``sunbird.cert_registry`` rows inserted (a re-issue
replaces, a new id inserts if absent); status-list indexes allocated and the certificates
re-issues replace revoked (:mod:`.revocation`). The certificate files are stored by the maker
(:mod:`.maker`), not here.
"""

from __future__ import annotations

from typing import Any, Protocol

from lernflow.config import Settings
from lernflow.flows.certificate_generator.plan import (
    FLOW,
    BatchKey,
    CertTemplates,
    Enrolment,
    EnrolmentKey,
    IssuedUpdate,
    Profile,
    RegistryRow,
)
from lernflow.flows.certificate_generator.revocation import (
    CertStatusStore,
    Revocation,
    RevokeOutcome,
)
from lernflow.kernel.cassandra import CassandraExecutor

_REGISTRY_COLUMNS = (
    "id, accesscode, createdat, createdby, data, isrevoked, jsonurl, pdfurl, recipient, "
    "related, updatedat, updatedby"
)


class GeneratorStore(Protocol):
    """What the flow reads and writes (Cassandra, or dicts in unit tests)."""

    def read_enrolments(self, keys: list[EnrolmentKey]) -> dict[EnrolmentKey, Enrolment | None]:
        """Each enrolment's certificates and completion time (None: no enrolment row)."""

    def profiles(self, user_ids: list[str]) -> dict[str, Profile | None]:
        """Each learner's profile fields (None: no such user)."""

    def cert_templates(self, keys: list[BatchKey]) -> dict[BatchKey, CertTemplates | None]:
        """Each batch's ``cert_templates`` (``{}`` when null; None: no course_batch row)."""

    def register(self, rows: list[RegistryRow]) -> None:
        """Write the ``cert_registry`` rows (``replace``: overwrite, else insert if absent)."""

    def set_issued(self, updates: list[IssuedUpdate]) -> None:
        """Rewrite the enrolments' ``issued_certificates``."""

    def status_indexes(self, cert_ids: list[str]) -> dict[str, int]:
        """Each certificate's status-list index: the one its registry row's credential has,
        else a newly allocated one (:mod:`.revocation`)."""

    def revoke(self, requests: list[Revocation]) -> list[RevokeOutcome]:
        """Revoke certificates (the ones re-issues replace)."""

    def close(self) -> None:
        """Release connections."""


class CassandraGeneratorStore:
    """The servers."""

    def __init__(self, settings: Settings) -> None:
        self._cas = CassandraExecutor(settings.cassandra, settings.run, FLOW)
        ks, sb = settings.cassandra.courses_keyspace, settings.cassandra.sunbird_keyspace
        where = "WHERE userid=? AND courseid=? AND batchid=?"
        self._q_enrolment = (
            f"SELECT issued_certificates, completedon FROM {ks}.user_enrolments {where}"
        )
        self._q_update = f"UPDATE {ks}.user_enrolments SET issued_certificates=? {where}"
        self._q_user = f"SELECT firstname, maskedphone, isdeleted FROM {sb}.user WHERE id=?"
        self._q_batch = (
            f"SELECT cert_templates FROM {ks}.course_batch WHERE courseid=? AND batchid=?"
        )
        insert = (
            f"INSERT INTO {sb}.cert_registry ({_REGISTRY_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, false, ?, ?, ?, ?, ?, ?)"
        )
        self._q_registry_new = f"{insert} IF NOT EXISTS"
        self._q_registry_replace = insert
        self._status = CertStatusStore(settings, FLOW)

    def read_enrolments(self, keys: list[EnrolmentKey]) -> dict[EnrolmentKey, Enrolment | None]:
        params = [(k.user_id, k.course_id, k.batch_id) for k in keys]
        rows = self._cas.execute_many(self._q_enrolment, params, "user_enrolments")
        return {
            k: (
                Enrolment([dict(m) for m in (r[0].issued_certificates or [])], r[0].completedon)
                if r
                else None
            )
            for k, r in zip(keys, rows, strict=True)
        }

    def profiles(self, user_ids: list[str]) -> dict[str, Profile | None]:
        ids = list(dict.fromkeys(user_ids))
        rows = self._cas.execute_many(self._q_user, [(i,) for i in ids], "read users")
        return {
            i: (Profile(r[0].firstname, r[0].maskedphone, bool(r[0].isdeleted)) if r else None)
            for i, r in zip(ids, rows, strict=True)
        }

    def cert_templates(self, keys: list[BatchKey]) -> dict[BatchKey, CertTemplates | None]:
        keys = list(dict.fromkeys(keys))
        params = [(k.course_id, k.batch_id) for k in keys]
        rows = self._cas.execute_many(self._q_batch, params, "course_batch")
        return {
            k: ({t: dict(v) for t, v in (r[0].cert_templates or {}).items()} if r else None)
            for k, r in zip(keys, rows, strict=True)
        }

    def register(self, rows: list[RegistryRow]) -> None:
        def params(r: RegistryRow) -> tuple[Any, ...]:
            return (r.cert_id, r.access_code, r.at, FLOW, r.credential, r.json_url, r.pdf_url,
                    r.recipient, r.related, r.at, FLOW)  # fmt: skip

        new = [params(r) for r in rows if not r.replace]
        replace = [params(r) for r in rows if r.replace]
        if new:
            self._cas.execute_many(self._q_registry_new, new, "cert_registry")
        if replace:
            self._cas.execute_many(self._q_registry_replace, replace, "cert_registry")

    def set_issued(self, updates: list[IssuedUpdate]) -> None:
        params = [(u.issued, u.key.user_id, u.key.course_id, u.key.batch_id) for u in updates]
        self._cas.execute_many(self._q_update, params, "issued_certificates")

    def status_indexes(self, cert_ids: list[str]) -> dict[str, int]:
        return self._status.indexes(cert_ids)

    def revoke(self, requests: list[Revocation]) -> list[RevokeOutcome]:
        return self._status.revoke(requests)

    def close(self) -> None:
        self._status.close()
        self._cas.close()
