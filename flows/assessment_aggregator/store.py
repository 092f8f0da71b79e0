"""The reads and writes of assessment-aggregator, behind one interface.

See docs/flows/assessment-aggregator.md for the tables and keys. :class:`AssessmentStore` is
what the processor needs from Redis and Cassandra, one batched call per step of a round.
:class:`ServerStore` is the real implementation (the drivers); tests put an in-memory one
behind the same interface, so they drive the production round logic in ``processor``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from config import Settings
from flows.assessment_aggregator import logic
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.redis_batch import RedisBatch
from sinks.kafka_producer import OutMessage

UserCourseBatch = tuple[str, str, str]
"""``(user_id, course_id, batch_id)``: whose attempts the score step reads."""


class AssessmentStore(Protocol):
    """Redis and Cassandra as the processor uses them; every call covers a whole round."""

    def leaf_nodes(self, course_ids: Sequence[str]) -> list[set[str]]:
        """The relation-cache leaf-node set of each course (empty when the key is missing)."""

    def content_cache(self, content_ids: Sequence[str]) -> list[str | bytes | None]:
        """The content-cache value of each content (None when missing)."""

    def stored_attempts(self, keys: Sequence[logic.AttemptKey]) -> list[logic.StoredAttempt | None]:
        """The stored times of each attempt row (None when there is no row)."""

    def write_attempts(self, rows: Sequence[logic.AssessmentAggregatorRow]) -> None:
        """Upsert ``assessment_aggregator`` rows (whole-row overwrite)."""

    def scores(self, keys: Sequence[UserCourseBatch]) -> list[list[logic.StoredScore]]:
        """All stored attempts of each ``(user, course, batch)``, in clustering order."""

    def current_aggs(
        self, keys: Sequence[UserCourseBatch]
    ) -> list[logic.CurrentActivityAgg | None]:
        """The stored ``user_activity_agg`` course row of each key (None when missing)."""

    def update_aggs(self, updates: Sequence[logic.UserActivityAggUpdate]) -> None:
        """Merge ``aggregates``/``agg_last_updated`` and replace ``agg_details``."""

    def close(self) -> None:
        """Release connections."""


class Outbox(Protocol):
    """Where the processor produces: all messages acknowledged before ``produce_all`` returns."""

    def produce_all(self, messages: list[OutMessage]) -> None: ...

    def flush(self) -> None: ...


class ServerStore:
    """:class:`AssessmentStore` on the real servers: batched Redis pipelines and CQL calls."""

    def __init__(self, settings: Settings, flow: str) -> None:
        self._cas = CassandraExecutor(settings.cassandra, settings.run, flow)
        self._relation = RedisBatch(
            settings.redis, settings.redis.relation_cache_db, settings.run, flow
        )
        self._content = RedisBatch(
            settings.redis, settings.redis.content_cache_db, settings.run, flow
        )
        ks = settings.cassandra.courses_keyspace
        self._q_attempt = (
            f"SELECT last_attempted_on, created_on FROM {ks}.assessment_aggregator "
            "WHERE user_id=? AND course_id=? AND batch_id=? AND content_id=? AND attempt_id=?"
        )
        self._q_insert = (
            f"INSERT INTO {ks}.assessment_aggregator (user_id, course_id, batch_id, content_id, "
            "attempt_id, created_on, updated_on, last_attempted_on, total_score, total_max_score, "
            "grand_total, question) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._q_scores = (
            f"SELECT content_id, attempt_id, last_attempted_on, total_max_score, total_score "
            f"FROM {ks}.assessment_aggregator WHERE user_id=? AND course_id=? AND batch_id=?"
        )
        self._q_current = (
            f"SELECT aggregates, agg_details FROM {ks}.user_activity_agg "
            "WHERE activity_type=? AND activity_id=? AND user_id=? AND context_id=?"
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
            lambda p: [p.smembers(logic.leafnodes_key(c)) for c in course_ids], "leaf nodes"
        )

    def content_cache(self, content_ids: Sequence[str]) -> list[str | bytes | None]:
        if not content_ids:
            return []
        return self._content.pipeline(lambda p: [p.get(c) for c in content_ids], "content cache")

    def stored_attempts(self, keys: Sequence[logic.AttemptKey]) -> list[logic.StoredAttempt | None]:
        results = self._cas.execute_many(
            self._q_attempt,
            [(k.user_id, k.course_id, k.batch_id, k.content_id, k.attempt_id) for k in keys],
            "read attempts",
        )
        return [
            logic.StoredAttempt(
                logic.epoch_ms(rows[0].last_attempted_on), logic.epoch_ms(rows[0].created_on)
            )
            if rows
            else None
            for rows in results
        ]

    def write_attempts(self, rows: Sequence[logic.AssessmentAggregatorRow]) -> None:
        self._cas.execute_many(
            self._q_insert,
            [
                (r.user_id, r.course_id, r.batch_id, r.content_id, r.attempt_id, r.created_on,
                 r.updated_on, r.last_attempted_on, r.total_score, r.total_max_score,
                 r.grand_total, list(r.question))
                for r in rows
            ],
            "insert attempts",
        )  # fmt: skip

    def scores(self, keys: Sequence[UserCourseBatch]) -> list[list[logic.StoredScore]]:
        results = self._cas.execute_many(self._q_scores, list(keys), "read scores")
        return [
            [
                logic.StoredScore(
                    r.content_id,
                    r.attempt_id,
                    logic.epoch_ms(r.last_attempted_on),
                    r.total_max_score,
                    r.total_score,
                )
                for r in rows
            ]
            for rows in results
        ]

    def current_aggs(
        self, keys: Sequence[UserCourseBatch]
    ) -> list[logic.CurrentActivityAgg | None]:
        results = self._cas.execute_many(
            self._q_current,
            [(logic.ACTIVITY_TYPE, course, user, f"cb:{batch}") for user, course, batch in keys],
            "read activity agg",
        )
        return [
            logic.CurrentActivityAgg(
                dict(rows[0].aggregates or {}), list(rows[0].agg_details or [])
            )
            if rows
            else None
            for rows in results
        ]

    def update_aggs(self, updates: Sequence[logic.UserActivityAggUpdate]) -> None:
        self._cas.execute_many(
            self._q_update,
            [
                (u.aggregates, list(u.agg_details), u.agg_last_updated, u.activity_type,
                 u.activity_id, u.user_id, u.context_id)
                for u in updates
            ],
            "update activity agg",
        )  # fmt: skip

    def close(self) -> None:
        self._cas.close()
        self._relation.close()
        self._content.close()
