"""What the reports read, from Cassandra and Redis (no Spark): the I/O behind the pure report
modules.

Sunbird's jobs load whole tables into Spark. Here every read is paged or keyed:

* ``course_batch`` — one paged scan (small table);
* ``user_enrolments`` — per requested batch, ``WHERE batchid = ? ALLOW FILTERING`` (the
  coordinator filters; only the batch's rows travel), paged;
* ``user_enrolments`` pages and the user cache overlap (``enrolments_and_users``): while the
  next page is read, a worker thread looks up the learners of the previous one in Redis, only
  those (``user:<id>``, the report's fields), 1,000 keys per call through one Lua script
  (``EXISTS`` + ``HMGET`` server-side: a tenth of the client CPU of a pipeline of ``HMGET``,
  whose command packing dominated; docs/flows/progress-exhaust.md "Performance");
* ``assessment_aggregator`` and ``user_consent`` — by partition key, concurrently, only for
  the batch's enrolled learners;
* collections — the collection cache (Redis DB 0, the content metadata), else the published
  hierarchy, give the name, channel, status and ``userConsent`` Sunbird's content search
  returns;
* optional nodes — Redis ``SMEMBERS <course>:<course>:optionalnodes`` (Sunbird reads DB 5).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lernflow.config import Settings
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.clients import redis_client
from lernflow.reports.model import Attempt, Consent, Enrolment

logger = logging.getLogger(__name__)

USER_FIELDS = (
    "state", "district", "orgname", "firstname", "lastname", "email", "phone", "rootorgid",
    "block", "schoolname", "schooludisecode", "board", "cluster", "usertype", "usersubtype",
)  # fmt: skip


@dataclass(frozen=True)
class BatchRow:
    """A ``course_batch`` row."""

    course_id: str
    batch_id: str
    name: str | None


@dataclass(frozen=True)
class Collection:
    """What Sunbird's content search says about a collection."""

    identifier: str
    name: str
    channel: str
    status: str
    user_consent: str


class ReportStore:
    """Batched, paged reads for the reports."""

    def __init__(self, settings: Settings, flow: str = "reports") -> None:
        self._s = settings
        self._cas = CassandraExecutor(settings.cassandra, settings.run, flow)
        c = settings.cassandra
        self._ks, self._sb, self._hs = c.courses_keyspace, c.sunbird_keyspace, c.hierarchy_keyspace

    # -- Cassandra ---------------------------------------------------------------------------
    def custodian_org(self) -> str | None:
        """``system_settings`` ``custodianOrgId`` (Sunbird aborts the run without it)."""
        rows = self._cas.execute_many(
            f"SELECT value FROM {self._sb}.system_settings WHERE id=?", [("custodianOrgId",)],
            "system_settings",
        )[0]  # fmt: skip
        return str(rows[0].value) if rows and rows[0].value else None

    def batches(self, batch_ids: Iterable[str] | None = None) -> list[BatchRow]:
        """``course_batch`` rows (all, or those with the given batch ids)."""
        wanted = set(batch_ids) if batch_ids is not None else None
        stmt = self._cas.prepare(f"SELECT courseid, batchid, name FROM {self._ks}.course_batch")
        out = []
        for r in self._cas.session.execute(stmt):
            if wanted is None or r.batchid in wanted:
                out.append(BatchRow(r.courseid, r.batchid, r.name))
        return out

    def collections(self, course_ids: Sequence[str]) -> dict[str, Collection]:
        """Name, channel, status and consent flag of each collection Sunbird's content search
        would return: the collection cache (Redis, the content metadata), else the published
        hierarchy's root."""
        ids = list(dict.fromkeys(course_ids))
        client = redis_client(self._s.redis, self._s.redis.collection_cache_db)
        try:
            cached = client.mget(ids) if ids else []
        finally:
            client.close()
        docs: dict[str, dict[str, Any]] = {}
        for i, text in zip(ids, cached, strict=True):
            doc = _json(text)
            if doc is not None:
                docs[i] = doc
        missing = [i for i in ids if i not in docs]
        rows = self._cas.execute_many(
            f"SELECT hierarchy FROM {self._hs}.content_hierarchy WHERE identifier=?",
            [(i,) for i in missing], "content_hierarchy",
        )  # fmt: skip
        for i, r in zip(missing, rows, strict=True):
            doc = _json(r[0].hierarchy) if r else None
            if doc is not None:
                docs[i] = doc
        return {
            i: Collection(
                identifier=i,
                name=str(doc.get("name") or ""),
                channel=str(doc.get("channel") or ""),
                status=str(doc.get("status") or "Live"),
                user_consent=str(doc.get("userConsent") or "No"),
            )
            for i, doc in docs.items()
        }

    def hierarchy(self, course_id: str) -> dict[str, Any] | None:
        """The published hierarchy of a collection."""
        rows = self._cas.execute_many(
            f"SELECT hierarchy FROM {self._hs}.content_hierarchy WHERE identifier=?",
            [(course_id,)], "content_hierarchy",
        )[0]  # fmt: skip
        return _json(rows[0].hierarchy) if rows else None

    def enrolments(self, batch_id: str) -> list[Enrolment]:
        """Every enrolment of a batch (null collections read as empty, as Spark does)."""
        return [e for page in self._enrolment_pages(batch_id) for e in page]

    def enrolments_and_users(
        self, batch_id: str, fields: Sequence[str] = USER_FIELDS
    ) -> tuple[list[Enrolment], dict[str, dict[str, str]]]:
        """Every enrolment of a batch, and the user-cache hash of each of its learners who has
        one (the report's fields only): the Redis look-ups of one page run in a worker thread
        while the next page is read from Cassandra."""
        enrolments: list[Enrolment] = []
        users: dict[str, dict[str, str]] = {}
        client = redis_client(self._s.redis, self._s.redis.user_cache_db)
        pending: list[Future[None]] = []
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="report-users") as pool:
                for page in self._enrolment_pages(batch_id):
                    enrolments.extend(page)
                    ids = [e.userid for e in page]
                    pending.append(pool.submit(_lookup_users, client, ids, fields, users))
                for done in pending:
                    done.result()
        finally:
            client.close()
        return enrolments, users

    def _enrolment_pages(self, batch_id: str) -> Iterable[list[Enrolment]]:
        stmt = self._cas.prepare(
            "SELECT batchid, userid, courseid, active, enrolleddate, enrolled_date, completedon, "
            f"contentstatus, certificates, issued_certificates FROM {self._ks}.user_enrolments "
            "WHERE batchid=? ALLOW FILTERING"
        )
        stmt.fetch_size = _PAGE
        result = self._cas.session.execute(stmt, (batch_id,))
        while True:
            yield [_enrolment(r) for r in result.current_rows]
            if not result.has_more_pages:
                return
            result.fetch_next_page()

    def attempts(self, course_id: str, user_ids: Sequence[str]) -> list[Attempt]:
        """``assessment_aggregator`` rows of these learners in this course (every batch: the
        report modules filter, as Sunbird's joins do)."""
        res = self._cas.execute_many(
            "SELECT course_id, batch_id, user_id, content_id, attempt_id, grand_total, total_score, "
            f"total_max_score, last_attempted_on, question FROM {self._ks}.assessment_aggregator "
            "WHERE user_id=? AND course_id=?",
            [(u, course_id) for u in user_ids], "assessment_aggregator",
        )  # fmt: skip
        out = []
        for rows in res:
            for r in rows:
                out.append(
                    Attempt(
                        course_id=r.course_id,
                        batch_id=r.batch_id,
                        user_id=r.user_id,
                        content_id=r.content_id,
                        attempt_id=r.attempt_id,
                        grand_total=r.grand_total,
                        total_score=r.total_score,
                        total_max_score=r.total_max_score,
                        last_attempted_on=r.last_attempted_on,
                        question=[_udt(q) for q in r.question or []],
                    )
                )
        return out

    def consents(self, user_ids: Sequence[str]) -> list[Consent]:
        """``user_consent`` rows of these learners."""
        res = self._cas.execute_many(
            f"SELECT user_id, consumer_id, object_id, status, last_updated_on FROM {self._sb}.user_consent "
            "WHERE user_id=?", [(u,) for u in user_ids], "user_consent",
        )  # fmt: skip
        return [
            Consent(r.user_id, r.consumer_id, r.object_id, r.status, r.last_updated_on)
            for rows in res
            for r in rows
        ]

    def org_search(self, org: str) -> dict[str, Any]:
        """What Sunbird's private org search answers for one org id: its ``keys`` map (the
        ``exhaustEncryptionKey`` PEM URL the PUBLIC_KEY level needs), from ``organisation``."""
        rows = self._cas.execute_many(
            f"SELECT id, keys FROM {self._sb}.organisation WHERE id=?", [(org,)], "organisation"
        )[0]
        content = [
            {"id": r.id, "keys": {k: list(v) for k, v in (r.keys or {}).items()}} for r in rows
        ]
        return {"result": {"response": {"content": content}}}

    def preference(self, org: str, key: str) -> str | None:
        """The ``data`` JSON text of an org's tenant preference (``tenant_preference_v2``)."""
        rows = self._cas.execute_many(
            f"SELECT data FROM {self._sb}.tenant_preference_v2 WHERE orgid=? AND key=?",
            [(org, key)], "tenant_preference",
        )[0]  # fmt: skip
        return str(rows[0].data) if rows and rows[0].data else None

    # -- Redis -------------------------------------------------------------------------------
    def users(
        self, user_ids: Sequence[str], fields: Sequence[str] = USER_FIELDS
    ) -> dict[str, dict[str, str]]:
        """The ``user:<id>`` hashes of these learners that exist (the report's fields only)."""
        client = redis_client(self._s.redis, self._s.redis.user_cache_db)
        out: dict[str, dict[str, str]] = {}
        try:
            _lookup_users(client, user_ids, fields, out)
        finally:
            client.close()
        return out

    def optional_nodes(self, course_id: str, db: int = 5) -> set[str]:
        """``<course>:<course>:optionalnodes`` (Sunbird's reports read relation-cache DB 5)."""
        client = redis_client(self._s.redis, db)
        try:
            return set(client.smembers(f"{course_id}:{course_id}:optionalnodes"))
        finally:
            client.close()

    def close(self) -> None:
        self._cas.close()


_PAGE = 5000  # user_enrolments rows per page
_USERS_PER_CALL = 1000
# KEYS: user:<id> keys; ARGV: fields. One reply per key: false (no hash) or the HMGET values.
# A key that exists with none of the fields is kept (as SCAN + HMGET kept it), hence EXISTS.
_USERS_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    out[i] = redis.call('HMGET', key, unpack(ARGV))
  else
    out[i] = false
  end
end
return out
"""


def _lookup_users(
    client: Any, user_ids: Sequence[str], fields: Sequence[str], out: dict[str, dict[str, str]]
) -> None:
    """Add the existing ``user:<id>`` hashes of ``user_ids`` to ``out`` (fields that are set)."""
    script = client.register_script(_USERS_LUA)
    ids = list(dict.fromkeys(user_ids))
    for start in range(0, len(ids), _USERS_PER_CALL):
        chunk = ids[start : start + _USERS_PER_CALL]
        replies = script(keys=[f"user:{u}" for u in chunk], args=list(fields))
        for user_id, values in zip(chunk, replies, strict=True):
            if values is not None:
                out[user_id] = {f: v for f, v in zip(fields, values, strict=True) if v is not None}


def _enrolment(r: Any) -> Enrolment:
    return Enrolment(
        batchid=r.batchid,
        userid=r.userid,
        courseid=r.courseid,
        active=r.active,
        enrolleddate=r.enrolleddate,
        enrolled_date=r.enrolled_date,
        completedon=r.completedon,
        contentstatus=dict(r.contentstatus or {}),
        certificates=[dict(m) for m in r.certificates or []],
        issued_certificates=[dict(m) for m in r.issued_certificates or []],
    )


def _json(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _udt(q: Any) -> dict[str, Any]:
    """A ``question`` UDT value as a plain dict (maps inside lists as dicts)."""
    fields = getattr(q, "_fields", None)
    d = q._asdict() if fields else dict(q)
    for k in ("resvalues", "params"):
        if d.get(k) is not None:
            d[k] = [dict(m) for m in d[k]]
    return d
