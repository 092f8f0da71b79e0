"""assessment-aggregator: end-to-end events/s vs the raw Cassandra/Redis limit on the same data.

Workload: N learners each submit 2 attempts of one 5-question quiz in one course batch.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from bench.common import Row, isolated
from bench.work import measured_flow
from lernflow.config import Settings
from lernflow.flows.assessment_aggregator.content import leafnodes_key
from lernflow.flows.assessment_aggregator.events import BatchAssessEvent, parse_assess_message
from lernflow.flows.assessment_aggregator.rows import AssessmentAggregatorRow, stored_score_of
from lernflow.flows.assessment_aggregator.scoring import (
    aggregate_scores,
    latest_answers,
    score_answers,
)
from lernflow.flows.assessment_aggregator.store import ServerStore
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.clients import redis_client
from lernflow.kernel.redis_batch import RedisBatch
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

COURSE, BATCH, CONTENT = "do_bench_course", "bench_batch", "do_bench_quiz"
LEARNERS = 5_000


def _event(user: str, attempt: int) -> bytes:
    ts = 1_700_000_000_000 + attempt * 60_000
    events = [
        {
            "eid": "ASSESS", "ets": ts + q, "ver": "3.1", "mid": f"ASSESS:{user}:{attempt}:{q}",
            "actor": {"id": user, "type": "User"}, "context": {"channel": "bench"},
            "object": {"id": CONTENT, "type": "Content"},
            "edata": {
                "item": {"id": f"q{q}", "maxscore": 1, "type": "mcq", "title": f"Q{q}",
                         "params": [{"1": '{"text":"a"}'}], "desc": ""},
                "score": (q + attempt) % 2, "pass": "Yes", "resvalues": [{"1": '{"text":"a"}'}],
                "duration": 1.0, "index": q,
            },
        }
        for q in range(5)
    ]  # fmt: skip
    doc = {"assessmentTs": ts, "batchId": BATCH, "courseId": COURSE, "userId": user,
           "attemptId": f"att-{user}-{attempt}", "contentId": CONTENT, "events": events}  # fmt: skip
    return json.dumps(doc).encode()


def run(settings: Settings) -> list[Row]:
    rows = []
    s = isolated(settings, "assess")
    rc = redis_client(s.redis, s.redis.relation_cache_db)
    rc.sadd(leafnodes_key(COURSE), CONTENT, "do_other")
    rc.close()
    payloads = [_event(f"u{i}", a) for a in (1, 2) for i in range(LEARNERS)]
    producer = DeliveryTrackingProducer(s.kafka)
    topic = s.topics.full(s.topics.telemetry_assess)
    producer.produce_all(
        [OutMessage(topic, p, key=f"u{i % LEARNERS}".encode()) for i, p in enumerate(payloads)]
    )
    done, work = measured_flow("assessment-aggregator", s)
    seconds, rss = done.seconds, done.peak_rss_mib
    flow_rate = len(payloads) / seconds
    rows.append(Row("assessment-aggregator end to end (1 worker)", len(payloads), seconds, rss_mb=rss,
                    note="incl. process start", work=work))  # fmt: skip

    raw_s = _raw_loop(s, payloads)
    rows.append(Row("assessment raw loop (the flow's statements, no Bytewax)", len(payloads), raw_s,
                    note=f"flow/raw = {flow_rate / (len(payloads) / raw_s):.2f}"))  # fmt: skip
    old_s = _old_raw_loop(s, payloads)
    rows.append(Row("assessment raw loop (before: 4 statements an attempt)", len(payloads), old_s,
                    note=f"flow/old raw = {flow_rate / (len(payloads) / old_s):.2f}"))  # fmt: skip
    return rows


def _raw_loop(s: Settings, payloads: list[bytes]) -> float:
    """The flow's statements, issued through its own store with everything planned beforehand:
    per 1,000 events (a consumer batch) SMEMBERS (pipelined), the stored attempts and the
    scores read 50 learners a request, the attempt rows and the aggregates written as logged
    batches joined up to ~4 KB (docs/flows/assessment-aggregator.md#one-batch)."""
    store = ServerStore(s, "bench")
    events = [e for p in payloads if isinstance(e := parse_assess_message(p), BatchAssessEvent)]
    now = int(time.time() * 1000)
    rows = {id(e): _row(e, now) for e in events}
    updates = {
        id(e): aggregate_scores(e, [stored_score_of(rows[id(e)])], now_ms=now).update
        for e in events
    }
    t0 = time.monotonic()
    for i in range(0, len(events), s.kafka.consumer_batch_size):
        chunk = events[i : i + s.kafka.consumer_batch_size]
        store.leaf_nodes(sorted({e.course_id for e in chunk}))
        store.stored_attempts([e.key for e in chunk])
        store.write_attempts([rows[id(e)] for e in chunk])
        store.scores([(e.user_id, e.course_id, e.batch_id) for e in chunk])
        store.update_aggs([u for e in chunk if (u := updates[id(e)]) is not None])
    elapsed = time.monotonic() - t0
    store.close()
    return elapsed


def _row(e: BatchAssessEvent, now: int) -> AssessmentAggregatorRow:
    score = score_answers(latest_answers(e.answers))
    return AssessmentAggregatorRow(
        e.user_id, e.course_id, e.batch_id, e.content_id, e.attempt_id, now, now,
        e.assessment_ts, score.total_score, score.total_max_score, score.grand_total,
        score.questions,
    )  # fmt: skip


def _old_raw_loop(s: Settings, payloads: list[bytes]) -> float:
    """The statement mix before the batch was one round, issued directly: per 500 events
    SMEMBERS (pipelined), then concurrent SELECT attempt, INSERT row, SELECT scores, UPDATE
    aggregates, one statement an attempt each."""
    cas = CassandraExecutor(s.cassandra, s.run, "bench")
    relation = RedisBatch(s.redis, s.redis.relation_cache_db, s.run, "bench")
    ks = s.cassandra.courses_keyspace
    q_attempt = f"SELECT last_attempted_on, created_on FROM {ks}.assessment_aggregator WHERE user_id=? AND course_id=? AND batch_id=? AND content_id=? AND attempt_id=?"
    q_insert = f"INSERT INTO {ks}.assessment_aggregator (user_id, course_id, batch_id, content_id, attempt_id, created_on, updated_on, last_attempted_on, total_score, total_max_score, grand_total, question) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    q_scores = f"SELECT content_id, attempt_id, last_attempted_on, total_max_score, total_score FROM {ks}.assessment_aggregator WHERE user_id=? AND course_id=? AND batch_id=?"
    q_update = f"UPDATE {ks}.user_activity_agg SET aggregates = aggregates + ?, agg_details = ?, agg_last_updated = agg_last_updated + ? WHERE activity_type=? AND activity_id=? AND user_id=? AND context_id=?"
    events = [parse_assess_message(p) for p in payloads]
    now = int(time.time() * 1000)
    scores = {
        id(e): score_answers(latest_answers(e.answers))
        for e in events
        if isinstance(e, BatchAssessEvent)
    }
    t0 = time.monotonic()
    for i in range(0, len(events), 500):
        chunk = [e for e in events[i : i + 500] if isinstance(e, BatchAssessEvent)]
        relation.pipeline(partial(_leafnodes, chunk=chunk), "bench")
        keys = [(e.user_id, e.course_id, e.batch_id, e.content_id, e.attempt_id) for e in chunk]
        cas.execute_many(q_attempt, keys, "bench")
        cas.execute_many(
            q_insert,
            [
                (*k, now, now, e.assessment_ts, scores[id(e)].total_score, scores[id(e)].total_max_score,
                 scores[id(e)].grand_total, list(scores[id(e)].questions))
                for k, e in zip(keys, chunk, strict=True)
            ],
            "bench",
        )  # fmt: skip
        cas.execute_many(q_scores, [(e.user_id, e.course_id, e.batch_id) for e in chunk], "bench")
        cas.execute_many(
            q_update,
            [
                (
                    {f"score:{e.content_id}": 1.0},
                    ["{}"],
                    {f"score:{e.content_id}": now},
                    "Course",
                    e.course_id,
                    e.user_id,
                    f"cb:{e.batch_id}",
                )
                for e in chunk
            ],
            "bench",
        )
    elapsed = time.monotonic() - t0
    cas.close()
    relation.close()
    return elapsed


def _leafnodes(pipe: Any, chunk: list[BatchAssessEvent]) -> None:
    for e in chunk:
        pipe.smembers(leafnodes_key(e.course_id))
