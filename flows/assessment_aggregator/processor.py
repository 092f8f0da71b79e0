"""I/O of assessment-aggregator: batched reads and writes around the pure rules in ``logic``.

Items of one window are processed in rounds (the k-th message of every ``(user, course)``), so
each round's Redis and Cassandra calls are batched while one learner's messages still see each
other's writes, as Sunbird's chained operators do. Order inside a round, per message:
attempt row → certificate request (produced and acknowledged) → ``user_activity_agg`` update.
A crash between two of these is healed on replay (see ``logic`` "Replays heal").
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from config import Settings
from flows._runtime import Item, failed_message, rounds
from flows.assessment_aggregator import logic
from lernflow import metrics
from lernflow.errors import InvalidEvent, TransientError
from sinks.cassandra import CassandraExecutor
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from sinks.redis_batch import RedisBatch

logger = logging.getLogger(__name__)

FLOW = "assessment-aggregator"

Event = logic.BatchAssessEvent | logic.RecomputeRequest


def entity(event: Event) -> str:
    """Shard entity: all messages of one learner in one course stay in order."""
    return f"{event.user_id}|{event.course_id}"


class AssessmentProcessor:
    """Per-worker processor: owns its Cassandra session, Redis clients and producer."""

    def __init__(self, settings: Settings) -> None:
        self._s = settings
        self._cas = CassandraExecutor(settings.cassandra, settings.run, FLOW)
        self._relation = RedisBatch(
            settings.redis, settings.redis.relation_cache_db, settings.run, FLOW
        )
        self._content = RedisBatch(
            settings.redis, settings.redis.content_cache_db, settings.run, FLOW
        )
        self._producer = DeliveryTrackingProducer(settings.kafka, client_id=FLOW)
        topics = settings.topics
        self._failed_topic = topics.full(topics.telemetry_assess_failed)
        self._cert_topic = topics.full(topics.issue_certificate_request)
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

    # -- lookups -------------------------------------------------------------------------
    def _content_read(self, content_id: str) -> str:
        base = self._s.assessment.content_read_url
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

    # -- processing ----------------------------------------------------------------------
    def process(self, items: list[Item[Any]]) -> None:
        out: list[OutMessage] = [
            failed_message(FLOW, self._failed_topic, i, i.error or "", i.error_type)
            for i in items
            if i.error is not None
        ]
        good = [i for i in items if i.error is None]
        if out:
            self._producer.produce_all(out)
        for round_items in rounds(good, entity):
            self._round(round_items)

    def _round(self, items: list[Item[Event]]) -> None:
        now_ms = int(time.time() * 1000)
        events = [i.value for i in items if i.value is not None]
        courses = sorted({e.course_id for e in events})
        leaf_sets = dict(
            zip(
                courses,
                self._relation.pipeline(
                    lambda p: [p.smembers(logic.leafnodes_key(c)) for c in courses], "leaf nodes"
                ),
                strict=True,
            )
        )
        attempts = [e for e in events if isinstance(e, logic.BatchAssessEvent)]
        keys = [e.key for e in attempts]
        stored_rows = self._cas.execute_many(
            self._q_attempt,
            [(k.user_id, k.course_id, k.batch_id, k.content_id, k.attempt_id) for k in keys],
            "read attempts",
        )
        stored: dict[logic.AttemptKey, logic.StoredAttempt | None] = {}
        for k, rows in zip(keys, stored_rows, strict=True):
            stored[k] = (
                logic.StoredAttempt(
                    logic.epoch_ms(rows[0].last_attempted_on), logic.epoch_ms(rows[0].created_on)
                )
                if rows
                else None
            )
        cache_values: dict[str, Any] = {}
        if self._s.assessment.skip_missing_records and attempts:
            cids = sorted({e.content_id for e in attempts})
            cache_values = dict(
                zip(
                    cids,
                    self._content.pipeline(lambda p: [p.get(c) for c in cids], "content cache"),
                    strict=True,
                )
            )

        def total_questions(cid: str) -> logic.TotalQuestions:
            return logic.resolve_total_questions(cid, cache_values.get(cid), self._content_read)

        decisions: list[tuple[Item[Event], logic.AssessDecision]] = []
        failed: list[OutMessage] = []
        for item in items:
            event = item.value
            assert event is not None
            try:
                decision = logic.evaluate_assess_event(
                    event,
                    leaf_nodes=leaf_sets.get(event.course_id, set()),
                    now_ms=now_ms,
                    stored_attempt=stored.__getitem__,
                    total_questions=total_questions
                    if self._s.assessment.skip_missing_records
                    else None,
                )
            except InvalidEvent as exc:
                failed.append(
                    failed_message(FLOW, self._failed_topic, item, exc.reason, type(exc).__name__)
                )
                continue
            if decision.to_failed_topic:
                failed.append(
                    failed_message(
                        FLOW, self._failed_topic, item, decision.reason, decision.verdict.value
                    )
                )
            elif not decision.aggregate:
                metrics.EVENTS_SKIPPED.labels(FLOW, decision.verdict.value).inc()
            decisions.append((item, decision))
        if failed:
            self._producer.produce_all(failed)

        # 1. attempt rows
        rows = [d.row for _i, d in decisions if d.row is not None]
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

        # 2. score step reads
        to_agg = [(i, d) for i, d in decisions if d.aggregate]
        if not to_agg:
            return
        score_rows = self._cas.execute_many(
            self._q_scores,
            [(d.event.user_id, d.event.course_id, d.event.batch_id) for _i, d in to_agg],
            "read scores",
        )
        replayed = [(i, d) for i, d in to_agg if d.verdict is logic.Verdict.REPLAYED]
        current_rows = self._cas.execute_many(
            self._q_current,
            [
                (logic.ACTIVITY_TYPE, d.event.course_id, d.event.user_id, f"cb:{d.event.batch_id}")
                for _i, d in replayed
            ],
            "read activity agg",
        )
        current: dict[int, logic.CurrentActivityAgg | None] = {}
        for (item, _d), crow in zip(replayed, current_rows, strict=True):
            current[id(item)] = (
                logic.CurrentActivityAgg(
                    dict(crow[0].aggregates or {}), list(crow[0].agg_details or [])
                )
                if crow
                else None
            )

        certs: list[OutMessage] = []
        updates: list[logic.UserActivityAggUpdate] = []
        for (item, decision), srows in zip(to_agg, score_rows, strict=True):
            scores = [
                logic.StoredScore(
                    r.content_id,
                    r.attempt_id,
                    logic.epoch_ms(r.last_attempted_on),
                    r.total_max_score,
                    r.total_score,
                )
                for r in srows
            ]
            if decision.row is not None:
                scores.append(logic.stored_score_of(decision.row))
            agg = logic.aggregate_scores(
                decision.event, scores, now_ms=now_ms, agg_type=self._s.assessment.agg_type,
                current=current.get(id(item)),
            )  # fmt: skip
            if agg.update is not None:
                updates.append(agg.update)
            if logic.should_emit_certificate(decision, agg):
                body = logic.certificate_request(
                    decision.event,
                    agg.certificate_attempt_id,
                    now_ms=now_ms,
                    request_id=str(uuid.uuid4()),
                )
                certs.append(OutMessage(self._cert_topic, body.encode("utf-8")))

        # 3. certificate requests acknowledged before the aggregates are stored
        if certs:
            self._producer.produce_all(certs)
            metrics.EVENTS_OUT.labels(FLOW, self._cert_topic).inc(len(certs))
        # 4. best-score aggregates
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
        self._producer.flush()
        self._cas.close()
        self._relation.close()
        self._content.close()
