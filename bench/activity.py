"""activity-aggregate-updater: events/s end to end, the work per event, against the physical
limit (the end state written with the fewest statements, :mod:`bench.limit`) and the raw loop
(the flow's statements without Bytewax), on the simple and the realistic workload.

Sizes: ``LERNFLOW_BENCH_ACTIVITY_EVENTS`` (default 54,000 events per workload); which
workloads: ``LERNFLOW_BENCH_WORKLOAD`` (``simple``, ``realistic`` or ``both``, the default).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from bench.common import Row, isolated, run_flow_measured
from bench.endstate import differences, read
from bench.limit import write_end_state
from bench.work import Meter
from bench.workloads import (
    BATCH,
    COURSE,
    LESSONS,
    UNITS,
    Workload,
    realistic_workload,
    seed_workload,
    simple_workload,
)
from lernflow.config import Settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.store import BATCH_BYTES, Statements
from lernflow.kernel.cassandra import CassandraExecutor
from lernflow.kernel.redis_batch import RedisBatch
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

FLOW = "activity-aggregate-updater"
EVENTS_PER_LEARNER = 3.6  # the simple workload: four lessons, every fifth learner stops at two


def events_wanted() -> int:
    """Events per workload (``LERNFLOW_BENCH_ACTIVITY_EVENTS``)."""
    return int(os.environ.get("LERNFLOW_BENCH_ACTIVITY_EVENTS", "54000"))


def workload_names() -> list[str]:
    """The workloads to run (``LERNFLOW_BENCH_WORKLOAD``: simple, realistic or both)."""
    chosen = os.environ.get("LERNFLOW_BENCH_WORKLOAD", "both")
    return ["simple", "realistic"] if chosen == "both" else [chosen]


def make_workload(name: str, events: int) -> Workload:
    """The named workload of about ``events`` events."""
    if name == "simple":
        return simple_workload(max(1, round(events / EVENTS_PER_LEARNER)))
    if name == "realistic":
        return realistic_workload(events)
    msg = f"unknown workload {name!r} (simple, realistic)"
    raise ValueError(msg)


def prepare(label: str, settings: Settings, w: Workload, produce: bool = True) -> Settings:
    """Fresh bench keyspaces and topics, the workload seeded and (``produce``) its events on
    the input topic."""
    s = isolated(settings, label)
    seed_workload(s, w)
    if produce:
        topic = s.topics.full(s.topics.course_batch_job_request)
        DeliveryTrackingProducer(s.kafka).produce_all(
            [OutMessage(topic, v, key=k) for k, v in w.events]
        )
    return s


def end_state_note(s: Settings, w: Workload) -> str:
    """ "end state ok" or the first differences from the expected end state."""
    diff = differences(read(s), w.expected, w.resent, limit=3)
    return "end state ok" if not diff else "END STATE DIFFERS: " + "; ".join(diff)


def flow_row(settings: Settings, w: Workload, label: str, title: str, *extra: str) -> Row:
    """One measured end-to-end run of the flow over the workload."""
    s = prepare(label, settings, w)
    meter = Meter(s)
    try:
        before = meter.snapshot()
        done = run_flow_measured(FLOW, s, *extra)
        work = meter.work_since(before, done.cpu_s)
    finally:
        meter.close()
    return Row(f"{FLOW} end to end ({title})", len(w.events), done.seconds,
               rss_mb=done.peak_rss_mib, note=end_state_note(s, w) + "; incl. process start",
               workload=w.name, work=work)  # fmt: skip


def limit_row(settings: Settings, w: Workload, batched: bool) -> Row:
    """The expected end state written with the fewest statements (prepared, unlogged,
    concurrent; ``batched``: an UNLOGGED batch per enrolment), checked like the flow's."""
    s = prepare("actlim", settings, w, produce=False)
    state = w.expected
    meter = Meter(s)
    try:
        before = meter.snapshot()
        seconds = write_end_state(s, state, batched=batched)
        work = meter.work_since(before)
    finally:
        meter.close()
    how = "unlogged batch per enrolment" if batched else "one request per row"
    return Row(f"activity physical limit (end state, each row once, {how})", len(w.events),
               seconds, note=end_state_note(s, w) + "; CPU = the driver loop's",
               workload=w.name, work=work)  # fmt: skip


def raw_row(settings: Settings, w: Workload) -> Row:
    """The flow's statement mix without Bytewax (the simple workload's course only)."""
    s = prepare("actraw", settings, w, produce=False)
    meter = Meter(s)
    try:
        before = meter.snapshot()
        seconds = _raw_loop(s, w.events)
        work = meter.work_since(before)
    finally:
        meter.close()
    return Row("activity raw loop (same statements, no Bytewax)", len(w.events), seconds,
               note="CPU = the driver loop's", workload=w.name, work=work)  # fmt: skip


def run(settings: Settings) -> list[Row]:
    rows: list[Row] = []
    for name in workload_names():
        w = make_workload(name, events_wanted())
        flows = [
            flow_row(settings, w, "act1", "1 worker"),
            flow_row(settings, w, "act2", "2 workers", "-w", "2"),
            flow_row(settings, w, "actp2", "2 processes x 1 worker", "--processes", "2"),
        ]
        limits = [limit_row(settings, w, batched=False), limit_row(settings, w, batched=True)]
        if name == "simple":
            flows.append(raw_row(settings, w))
        best = max(r.rate for r in limits)
        rows += [dataclasses.replace(r, ratio_to_limit=r.rate / best) for r in flows + limits]
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
            + [(q["upd_applied"], ({"t:0": i}, r.user_id, COURSE, BATCH)),
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
