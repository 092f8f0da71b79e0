"""``lernflow replay`` of the activity flow over a large range: time and events/s.

The range is a backfill: ``LERNFLOW_BENCH_REPLAY_EVENTS`` (default 1,000,000) synthetic
BE_JOB_REQUESTs put on the input topic, the LMS rows seeded, then one ``lernflow replay`` from
offset 0 of every partition to the end (``LERNFLOW_BENCH_REPLAY_PROCESSES`` processes, default
1; ``LERNFLOW_BENCH_REPLAY_ARGS`` more options for it, e.g. ``--relation-memory 0``). Seeding
and producing are not timed.
"""

from __future__ import annotations

import os
import shlex
import sys

from bench.activity import end_state_note, workload_names
from bench.common import Row, isolated, run_child
from bench.work import Meter
from bench.workloads import (
    BATCH,
    COURSE,
    LESSONS,
    Workload,
    activity_event_count,
    completes,
    iter_activity_events,
    realistic_workload,
    seed_activity,
    seed_workload,
    simple_course,
)
from lernflow.config import Settings
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

EVENTS_PER_LEARNER = 3.6  # four lessons; every fifth learner stops after two
TARGET = 1_000_000 / 300  # the target: 1,000,000 events in 5 minutes


def _simple(s: Settings, wanted: int) -> Workload:
    """The simple workload seeded and on the topic, streamed (a million events are not held);
    its ``events`` list stays empty, its completions give the expected end state."""
    learners = max(1, round(wanted / EVENTS_PER_LEARNER))
    seed_activity(s, learners)
    topic = s.topics.full(s.topics.course_batch_job_request)
    producer = DeliveryTrackingProducer(s.kafka)
    chunk: list[OutMessage] = []
    for key, value in iter_activity_events(learners):
        chunk.append(OutMessage(topic, value, key=key))
        if len(chunk) == 50_000:
            producer.produce_all(chunk)
            chunk = []
    producer.produce_all(chunk)
    keys = [(f"learner{i}", COURSE, BATCH) for i in range(learners)]
    done = {
        k: tuple(c for j, c in enumerate(LESSONS) if completes(i, j)) for i, k in enumerate(keys)
    }
    w = Workload("simple", {COURSE: simple_course()}, tuple(keys), done, [], {}, 0)
    assert activity_event_count(learners) == sum(len(v) for v in done.values())
    return w


def _realistic(s: Settings, wanted: int) -> Workload:
    w = realistic_workload(wanted)
    seed_workload(s, w)
    topic = s.topics.full(s.topics.course_batch_job_request)
    producer = DeliveryTrackingProducer(s.kafka)
    for start in range(0, len(w.events), 50_000):
        producer.produce_all(
            [OutMessage(topic, v, key=k) for k, v in w.events[start : start + 50_000]]
        )
    return w


def run(settings: Settings) -> list[Row]:
    wanted = int(os.environ.get("LERNFLOW_BENCH_REPLAY_EVENTS", "1000000"))
    rows = []
    for name in workload_names():
        s = isolated(settings, "replay")
        w = _simple(s, wanted) if name == "simple" else _realistic(s, wanted)
        events = len(w.events) or sum(len(v) for v in w.completions.values())
        topic = s.topics.full(s.topics.course_batch_job_request)
        start = ",".join(f"{topic}:{p}:0" for p in range(s.kafka.partitions))
        processes = int(os.environ.get("LERNFLOW_BENCH_REPLAY_PROCESSES", "1"))
        cmd = [sys.executable, "-m", "lernflow.cli", "replay", "activity-aggregate-updater",
               "--from", start, "-p", str(processes),
               *shlex.split(os.environ.get("LERNFLOW_BENCH_REPLAY_ARGS", ""))]  # fmt: skip
        meter = Meter(s)
        try:
            before = meter.snapshot()
            done = run_child(cmd, s, "lernflow replay")
            work = meter.work_since(before, done.cpu_s)
        finally:
            meter.close()
        note = f"{end_state_note(s, w)}; target >= {TARGET:,.0f}/s (5 min per 1M)"
        who = "1 process" if processes == 1 else f"{processes} processes"
        rows.append(Row(f"replay activity-aggregate-updater, {events:,} events ({who})",
                        events, done.seconds, rss_mb=done.peak_rss_mib, note=note,
                        workload=name, work=work))  # fmt: skip
    return rows
