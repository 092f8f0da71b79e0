"""Every server call of assessment-aggregator: Redis, Cassandra and the content read API.

See docs/flows/assessment-aggregator.md#2-outputs for the tables and keys. :class:`AssessmentStore`
is what a round needs, one batched call per step; :class:`ServerStore` is the real
implementation (the drivers, all the CQL); unit tests put an in-memory one behind the same
interface and drive the production round logic in ``processor``.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol

from lernflow.config import Settings
from lernflow.flows.assessment_aggregator.content import leafnodes_key
from lernflow.flows.assessment_aggregator.events import AttemptKey
from lernflow.flows.assessment_aggregator.formats import epoch_ms
from lernflow.flows.assessment_aggregator.rows import (
    ACTIVITY_TYPE,
    AssessmentAggregatorRow,
    CurrentActivityAgg,
    StoredAttempt,
    StoredScore,
    UserActivityAggUpdate,
)
from lernflow.kernel.cassandra import CassandraExecutor, estimated_size
from lernflow.kernel.errors import InvalidEvent, TransientError
from lernflow.kernel.redis_batch import RedisBatch

FLOW = "assessment-aggregator"
#: learners named in one read (``user_id IN ?``)
READ_IN_SIZE = 50
#: rows written together are joined up to about this size (Cassandra warns from 5 KiB) ...
BATCH_BYTES = 4000
#: ... and at most this many (it warns from 10 partitions in one unlogged batch)
BATCH_ROWS = 8

UserCourseBatch = tuple[str, str, str]
"""``(user_id, course_id, batch_id)``: whose attempts the score step reads."""


class AssessmentStore(Protocol):
    """Redis and Cassandra as the processor uses them; every call covers a whole round."""

    def leaf_nodes(self, course_ids: Sequence[str]) -> list[set[str]]:
        """The relation-cache leaf-node set of each course (empty when the key is missing)."""

    def content_cache(self, content_ids: Sequence[str]) -> list[str | bytes | None]:
        """The content-cache value of each content (None when missing)."""

    def content_read(self, content_id: str) -> str:
        """The body of the content read API's answer (raise ``TransientError`` to retry)."""

    def stored_attempts(self, keys: Sequence[AttemptKey]) -> list[StoredAttempt | None]:
        """The stored times of each attempt row (None when there is no row)."""

    def write_attempts(self, rows: Sequence[AssessmentAggregatorRow]) -> None:
        """Upsert ``assessment_aggregator`` rows (whole-row overwrite)."""

    def scores(self, keys: Sequence[UserCourseBatch]) -> list[list[StoredScore]]:
        """All stored attempts of each ``(user, course, batch)``, in clustering order."""

    def current_aggs(self, keys: Sequence[UserCourseBatch]) -> list[CurrentActivityAgg | None]:
        """The stored ``user_activity_agg`` course row of each key (None when missing)."""

    def update_aggs(self, updates: Sequence[UserActivityAggUpdate]) -> None:
        """Merge ``aggregates``/``agg_last_updated`` and replace ``agg_details``."""

    def close(self) -> None:
        """Release connections."""


class ServerStore:
    """:class:`AssessmentStore` on the real servers: batched Redis pipelines and CQL calls."""

    def __init__(self, settings: Settings, flow: str = FLOW) -> None:
        self._content_read_url = settings.assessment.content_read_url
        self._cas = CassandraExecutor(settings.cassandra, settings.run, flow)
        self._relation = RedisBatch(
            settings.redis, settings.redis.relation_cache_db, settings.run, flow
        )
        self._content = RedisBatch(
            settings.redis, settings.redis.content_cache_db, settings.run, flow
        )
        ks = settings.cassandra.courses_keyspace
        # Reads name many learners at once (``user_id IN ?``): one request per ``READ_IN_SIZE``
        # learners instead of one each, the driver's per-request CPU being what bounds a flow.
        self._q_attempt = (
            f"SELECT user_id, attempt_id, last_attempted_on, created_on "
            f"FROM {ks}.assessment_aggregator "
            "WHERE user_id IN ? AND course_id=? AND batch_id=? AND content_id=?"
        )
        self._q_insert = (
            f"INSERT INTO {ks}.assessment_aggregator (user_id, course_id, batch_id, content_id, "
            "attempt_id, created_on, updated_on, last_attempted_on, total_score, total_max_score, "
            "grand_total, question) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._q_scores = (
            f"SELECT user_id, content_id, attempt_id, last_attempted_on, total_max_score, "
            f"total_score FROM {ks}.assessment_aggregator "
            "WHERE user_id IN ? AND course_id=? AND batch_id=?"
        )
        self._q_current = (
            f"SELECT user_id, aggregates, agg_details FROM {ks}.user_activity_agg "
            "WHERE activity_type=? AND activity_id=? AND user_id IN ? AND context_id=?"
        )
        self._q_update = (
            f"UPDATE {ks}.user_activity_agg SET aggregates = aggregates + ?, agg_details = ?, "
            "agg_last_updated = agg_last_updated + ? "
            "WHERE activity_type=? AND activity_id=? AND user_id=? AND context_id=?"
        )

    def leaf_nodes(self, course_ids: Sequence[str]) -> list[set[str]]:
        if not course_ids:
            return []
        return self._relation.pipeline(
            lambda p: [p.smembers(leafnodes_key(c)) for c in course_ids], "leaf nodes"
        )

    def content_cache(self, content_ids: Sequence[str]) -> list[str | bytes | None]:
        if not content_ids:
            return []
        return self._content.pipeline(lambda p: [p.get(c) for c in content_ids], "content cache")

    def content_read(self, content_id: str) -> str:
        base = self._content_read_url
        if not base:
            msg = "no content-read API configured (LERNFLOW_ASSESSMENT_CONTENT_READ_URL)"
            raise InvalidEvent(msg)
        url = base + urllib.parse.quote(content_id)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - configured URL
                return str(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                msg = f"content read {url}: HTTP {exc.code}"
                raise TransientError(msg) from exc
            return str(exc.read().decode("utf-8", errors="replace"))
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            msg = f"content read {url}: {exc}"
            raise TransientError(msg) from exc

    def _read_in(
        self, cql: str, groups: dict[tuple[Any, ...], list[str]], what: str, user_at: int = 0
    ) -> dict[tuple[Any, ...], list[Any]]:
        """Rows of ``cql`` per ``(*group, user)``: ``user_id IN ?`` bound at ``user_at`` among
        each group's values, ``READ_IN_SIZE`` users a request, all requests concurrent."""
        params = [
            (*group[:user_at], users[i : i + READ_IN_SIZE], *group[user_at:])
            for group, users in groups.items()
            for i in range(0, len(users), READ_IN_SIZE)
        ]
        found: dict[tuple[Any, ...], list[Any]] = {}
        for p, rows in zip(params, self._cas.execute_many(cql, params, what), strict=True):
            group = (*p[:user_at], *p[user_at + 1 :])
            for r in rows:
                found.setdefault((*group, r.user_id), []).append(r)
        return found

    def stored_attempts(self, keys: Sequence[AttemptKey]) -> list[StoredAttempt | None]:
        groups: dict[tuple[Any, ...], list[str]] = {}
        for k in dict.fromkeys(keys):
            groups.setdefault((k.course_id, k.batch_id, k.content_id), []).append(k.user_id)
        found = self._read_in(self._q_attempt, groups, "read attempts")
        out: list[StoredAttempt | None] = []
        for k in keys:
            rows = [
                r
                for r in found.get((k.course_id, k.batch_id, k.content_id, k.user_id), [])
                if r.attempt_id == k.attempt_id
            ]
            out.append(
                StoredAttempt(epoch_ms(rows[0].last_attempted_on), epoch_ms(rows[0].created_on))
                if rows
                else None
            )
        return out

    def write_attempts(self, rows: Sequence[AssessmentAggregatorRow]) -> None:
        params = [tuple(r.columns().values()) for r in rows]  # the INSERT's column order
        size = max((_row_size(r) for r in rows), default=0)
        self._write_joined(self._q_insert, params, size, "insert attempts")

    def scores(self, keys: Sequence[UserCourseBatch]) -> list[list[StoredScore]]:
        groups: dict[tuple[Any, ...], list[str]] = {}
        for user, course, batch in dict.fromkeys(keys):
            groups.setdefault((course, batch), []).append(user)
        found = self._read_in(self._q_scores, groups, "read scores")
        return [
            [
                StoredScore(
                    r.content_id,
                    r.attempt_id,
                    epoch_ms(r.last_attempted_on),
                    r.total_max_score,
                    r.total_score,
                )
                for r in found.get((course, batch, user), [])
            ]
            for user, course, batch in keys
        ]

    def current_aggs(self, keys: Sequence[UserCourseBatch]) -> list[CurrentActivityAgg | None]:
        groups: dict[tuple[Any, ...], list[str]] = {}
        for user, course, batch in dict.fromkeys(keys):
            groups.setdefault((ACTIVITY_TYPE, course, f"cb:{batch}"), []).append(user)
        found = self._read_in(self._q_current, groups, "read activity agg", user_at=2)
        out: list[CurrentActivityAgg | None] = []
        for user, course, batch in keys:
            rows = found.get((ACTIVITY_TYPE, course, f"cb:{batch}", user), [])
            out.append(
                CurrentActivityAgg(dict(rows[0].aggregates or {}), list(rows[0].agg_details or []))
                if rows
                else None
            )
        return out

    def update_aggs(self, updates: Sequence[UserActivityAggUpdate]) -> None:
        params = [
            (u.aggregates, list(u.agg_details), u.agg_last_updated, u.activity_type,
             u.activity_id, u.user_id, u.context_id)
            for u in updates
        ]  # fmt: skip
        size = max((estimated_size(p) for p in params), default=0)
        self._write_joined(self._q_update, params, size, "update activity agg")

    def _write_joined(
        self, cql: str, params: Sequence[tuple[Any, ...]], size: int, what: str
    ) -> None:
        """Upserts of independent rows as UNLOGGED batches of about ``BATCH_BYTES`` (rows of
        at most about ``size`` bytes, at most ``BATCH_ROWS``; a row over ``BATCH_BYTES`` goes
        alone, as a plain statement), concurrently: one request per batch, and
        no batchlog, for no row needs another's all-or-nothing (each is an idempotent upsert;
        docs/flows/assessment-aggregator.md#one-batch)."""
        n = max(1, min(BATCH_ROWS, BATCH_BYTES // max(1, size + len(cql) // 8)))
        full = len(params) - len(params) % n
        for rows, count in ((params[:full], n), (params[full:], len(params) - full)):
            if rows:
                joined = [
                    tuple(v for p in rows[i : i + count] for v in p)
                    for i in range(0, len(rows), count)
                ]
                self._cas.execute_many(_unlogged(cql, count), joined, what)

    def close(self) -> None:
        self._cas.close()
        self._relation.close()
        self._content.close()


def _unlogged(cql: str, count: int) -> str:
    """``count`` times ``cql`` as one UNLOGGED batch (prepared once per count)."""
    if count == 1:
        return cql
    return "BEGIN UNLOGGED BATCH " + "; ".join([cql] * count) + " APPLY BATCH"


def _row_size(row: AssessmentAggregatorRow) -> int:
    """The estimated bytes of an attempt row, its questions' texts included."""
    size = 160 + len(row.user_id) + len(row.course_id) + len(row.batch_id) + len(row.attempt_id)
    for q in row.question:
        size += 60 + len(q.id) + len(q.type or "") + len(q.title or "") + len(q.description or "")
        size += sum(len(k) + len(v) + 8 for m in (*q.params, *q.resvalues) for k, v in m.items())
    return size
