"""Every server read of certificate-pre-processor (it writes nothing but generate events).

Each read is one concurrent round for the whole round of candidates: ``course_batch``
templates, ``user_enrolments`` rows, ``user_activity_agg`` scores (Cassandra), content types
(Redis content cache, DB 5), profiles (the ``sunbird`` user tables in the user-read API's
shape, :class:`~sources.sunbird_users.SunbirdUserTables`) and course names (Redis collection
cache, DB 0, else the published hierarchy). Stored values are decoded with the pure rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from lernflow.config import Settings
from lernflow.flows.certificate_pre_processor import rules
from lernflow.flows.certificate_pre_processor.plan import BatchKey, LearnerKey
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.redis_batch import RedisBatch
from lernflow.sources.sunbird_users import SunbirdUserTables

FLOW = "certificate-pre-processor"


class PreProcessorStore(Protocol):
    """What the flow (and ``lernflow cert why``) reads: the servers, or dicts in unit tests."""

    def templates(self, keys: Sequence[BatchKey]) -> dict[BatchKey, Any]:
        """``cert_templates`` per batch (None when the batch row or the column is absent)."""

    def enrolments(self, keys: Sequence[LearnerKey]) -> dict[LearnerKey, dict[str, Any] | None]:
        """``user_enrolments`` rows as dicts of their columns (None when absent)."""

    def aggregates(self, keys: Sequence[LearnerKey]) -> dict[LearnerKey, dict[str, float]]:
        """The merged ``agg`` then ``aggregates`` maps of ``user_activity_agg`` ({} if absent)."""

    def content_types(self, ids: Sequence[str]) -> dict[str, str | None]:
        """Content types (None where the content cache has no metadata)."""

    def profiles(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """User profiles in the user-read API's shape (None when not found or blocked)."""

    def course_names(self, course_ids: Sequence[str]) -> dict[str, str | None]:
        """Raw course names (None when neither the cache nor a hierarchy has one)."""

    def close(self) -> None:
        """Release connections."""


class ServerStore:
    """The servers: Cassandra and the Redis caches."""

    def __init__(self, settings: Settings, flow: str = FLOW) -> None:
        self._cas = CassandraExecutor(settings.cassandra, settings.run, flow)
        self._users = SunbirdUserTables(settings, flow, executor=self._cas)
        self._content = RedisBatch(
            settings.redis, settings.redis.content_cache_db, settings.run, flow
        )
        self._collections = RedisBatch(
            settings.redis, settings.redis.collection_cache_db, settings.run, flow
        )
        ks = settings.cassandra.courses_keyspace
        self._q_templates = (
            f"SELECT cert_templates FROM {ks}.course_batch WHERE courseid=? AND batchid=?"
        )
        self._q_enrolment = (
            f"SELECT * FROM {ks}.user_enrolments WHERE userid=? AND courseid=? AND batchid=?"
        )
        self._q_scores = (
            f"SELECT aggregates, agg FROM {ks}.user_activity_agg WHERE activity_type='Course' "
            "AND activity_id=? AND user_id=? AND context_id=?"
        )
        self._q_hierarchy = (
            f"SELECT hierarchy FROM {settings.cassandra.hierarchy_keyspace}.content_hierarchy "
            "WHERE identifier=?"
        )

    def templates(self, keys: Sequence[BatchKey]) -> dict[BatchKey, Any]:
        params = [(k.course_id, k.batch_id) for k in keys]
        rows = self._cas.execute_many(self._q_templates, params, "course_batch")
        return {k: (r[0].cert_templates if r else None) for k, r in zip(keys, rows, strict=True)}

    def enrolments(self, keys: Sequence[LearnerKey]) -> dict[LearnerKey, dict[str, Any] | None]:
        params = [(k.user_id, k.course_id, k.batch_id) for k in keys]
        rows = self._cas.execute_many(self._q_enrolment, params, "user_enrolments")
        return {k: (_row(r[0]) if r else None) for k, r in zip(keys, rows, strict=True)}

    def aggregates(self, keys: Sequence[LearnerKey]) -> dict[LearnerKey, dict[str, float]]:
        params = [(k.course_id, k.user_id, f"cb:{k.batch_id}") for k in keys]
        rows = self._cas.execute_many(self._q_scores, params, "user_activity_agg")
        return {
            k: rules.merged_aggregates(r[0].agg, r[0].aggregates) if r else {}
            for k, r in zip(keys, rows, strict=True)
        }

    def content_types(self, ids: Sequence[str]) -> dict[str, str | None]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        texts = self._content.pipeline(lambda p: [p.get(i) for i in ids], "content cache")
        return {
            i: rules.content_type(rules.normalise_content_metadata(text))
            for i, text in zip(ids, texts, strict=True)
        }

    def profiles(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        return self._users.responses(user_ids)

    def course_names(self, course_ids: Sequence[str]) -> dict[str, str | None]:
        ids = list(dict.fromkeys(course_ids))
        if not ids:
            return {}
        cached = self._collections.pipeline(lambda p: [p.get(i) for i in ids], "collection cache")
        out = {i: rules.stored_course_name(text) for i, text in zip(ids, cached, strict=True)}
        missing = [i for i, name in out.items() if name is None]
        if missing:
            rows = self._cas.execute_many(self._q_hierarchy, [(i,) for i in missing], "hierarchy")
            for i, r in zip(missing, rows, strict=True):
                out[i] = rules.stored_course_name(r[0].hierarchy) if r else None
        return out

    def close(self) -> None:
        self._content.close()
        self._collections.close()
        self._cas.close()


def _row(row: Any) -> dict[str, Any]:
    d: dict[str, Any] = row._asdict()
    if d.get("issued_certificates") is not None:
        d["issued_certificates"] = [dict(m) for m in d["issued_certificates"]]
    return d
