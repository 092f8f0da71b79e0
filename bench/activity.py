"""activity-aggregate-updater: end-to-end events/s vs the raw Cassandra/Redis limit, same data."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.common import Row, isolated, run_flow_subprocess
from bench.workloads import BATCH, COURSE, LESSONS, UNITS, activity_events, seed_activity
from config import Settings
from flows.activity_aggregate_updater import rules
from flows.activity_aggregate_updater.store import BATCH_BYTES, Statements
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.redis_batch import RedisBatch
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

LEARNERS = 15_000


def _prepare(label: str, settings: Settings) -> tuple[Settings, list[tuple[bytes, bytes]]]:
    s = isolated(settings, label)
    seed_activity(s, LEARNERS)
    return s, activity_events(LEARNERS)


def run(settings: Settings) -> list[Row]:
    rows = []
    for workers in (1, 2):
        s, events = _prepare(f"act{workers}", settings)
        DeliveryTrackingProducer(s.kafka).produce_all(
            [
                OutMessage(s.topics.full(s.topics.course_batch_job_request), v, key=k)
                for k, v in events
            ]
        )
        seconds, rss = run_flow_subprocess("activity-aggregate-updater", s, "-w", str(workers))
        rows.append(Row(f"activity-aggregate-updater end to end ({workers} worker{'s' if workers > 1 else ''})",
                        len(events), seconds, rss_mb=rss, note="incl. process start"))  # fmt: skip
        if workers == 1:
            flow_rate = len(events) / seconds
            s2, _ = _prepare("actraw", settings)
            raw = _raw_loop(s2, events)
            rows.append(Row("activity raw C*/Redis limit (driver loop)", len(events), raw,
                            note=f"flow/raw = {flow_rate / (len(events) / raw):.2f}"))  # fmt: skip
    s, events = _prepare("actp2", settings)
    DeliveryTrackingProducer(s.kafka).produce_all(
        [OutMessage(s.topics.full(s.topics.course_batch_job_request), v, key=k) for k, v in events]
    )
    seconds, rss = run_flow_subprocess("activity-aggregate-updater", s, "--processes", "2")
    rows.append(Row("activity-aggregate-updater end to end (2 processes x 1 worker)", len(events),
                    seconds, rss_mb=rss, note="local cluster; RSS of one process"))  # fmt: skip
    return rows


def _raw_loop(s: Settings, events: list[tuple[bytes, bytes]]) -> float:
    """The flow's statement mix per 2,000 events, issued directly with the same executors."""
    cas = CassandraExecutor(s.cassandra, s.run, "bench")
    relation = RedisBatch(s.redis, s.redis.relation_cache_db, s.run, "bench")
    dedup = RedisBatch(s.redis, s.redis.dedup_db, s.run, "bench")
    st = Statements.of(s.cassandra.courses_keyspace, s.cassandra.hierarchy_keyspace)
    q = {
        "applied": st.read_ledger,
        "cons": st.read_consumption,
        "enrol": st.read_enrolments,
        "upd_cons": st.write_consumption,
        "upd_applied": st.write_ledger,
        "upd_enrol": st.write_progress,
        "agg": st.write_aggregate,
    }
    reqs = [
        r for _k, v in events if isinstance(r := rules.parse_request(v), rules.EnrolmentRequest)
    ]
    now = int(time.time() * 1000)
    t0 = time.monotonic()
    for i in range(0, len(reqs), 2000):
        chunk = reqs[i : i + 2000]
        n = s.activity.read_in_size
        keys = [
            ([r.user_id for r in chunk[j : j + n]], COURSE, BATCH) for j in range(0, len(chunk), n)
        ]
        sums = [rules.checksum(r.course_id, r.batch_id, r.user_id, r.completed[0]) for r in chunk]
        dedup.pipeline(_each(lambda p, c: p.exists(c), sums), "bench")
        cas.execute_many(q["applied"], keys, "bench")
        cas.execute_many(q["cons"], keys, "bench")
        cas.execute_many(q["enrol"], keys, "bench")
        rkeys = [*rules.course_keys(COURSE), *(rules.ancestor_key(COURSE, c) for c in LESSONS)]
        relation.pipeline(
            _each(lambda p, k: p.smembers(k), rkeys * max(1, len(chunk) // 50)), "bench"
        )
        relation.pipeline(
            _each(
                lambda p, k: p.smembers(k),
                [k for u in UNITS for k in rules.unit_keys(COURSE, u)] * max(1, len(chunk) // 50),
            ),
            "bench",
        )
        batches = [
            [(q["upd_cons"], (2, 1, r.user_id, COURSE, BATCH, c)) for c in LESSONS[:2]]
            + [(q["upd_applied"], (i, r.user_id, COURSE, BATCH, "t:0")),
               (q["upd_enrol"], (1, 2, {c: 2 for c in LESSONS[:2]}, now, r.user_id, COURSE, BATCH))]
            + [(q["agg"], ({"completedCount": 2.0}, {"completedCount": now}, "Course", a, r.user_id,
                           f"cb:{BATCH}")) for a in (COURSE, *UNITS)]
            for r in chunk
        ]  # fmt: skip
        cas.execute_logged_batches(batches, "bench", combine_bytes=BATCH_BYTES)
        dedup.pipeline(_each(lambda p, c: p.setex(c, 600, ""), sums), "bench")
    elapsed = time.monotonic() - t0
    cas.close()
    relation.close()
    dedup.close()
    return elapsed


def _each(fn: Callable[[Any, str], object], values: list[str]) -> Callable[[Any], None]:
    def build(pipe: Any) -> None:
        for v in values:
            fn(pipe, v)

    return build
