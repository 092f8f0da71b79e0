"""``lernflow replay`` of the activity flow over a large range: time and events/s.

The range is a backfill: ``LERNFLOW_BENCH_REPLAY_EVENTS`` (default 1,000,000) synthetic
BE_JOB_REQUESTs put on the input topic, the LMS rows seeded, then one ``lernflow replay`` from
offset 0 of every partition to the end. Seeding and producing are not timed.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

from bench.common import Row, env_for, isolated
from bench.workloads import activity_event_count, iter_activity_events, seed_activity
from config import Settings
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage

EVENTS_PER_LEARNER = 3.6  # four lessons; every fifth learner stops after two


def run(settings: Settings) -> list[Row]:
    wanted = int(os.environ.get("LERNFLOW_BENCH_REPLAY_EVENTS", "1000000"))
    learners = max(1, round(wanted / EVENTS_PER_LEARNER))
    s = isolated(settings, "replay")
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
    events = activity_event_count(learners)
    start = ",".join(f"{topic}:{p}:0" for p in range(s.kafka.partitions))
    cmd = [sys.executable, "-m", "lernflow.cli", "replay", "activity-aggregate-updater",
           "--from", start]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env_for(s), capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"lernflow replay exited {done.returncode}:\n{tail}")
    rss = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    target = 1_000_000 / 300  # the target: 1,000,000 events in 5 minutes
    name = f"replay activity-aggregate-updater, {events:,} events (1 worker)"
    note = f"target >= {target:,.0f}/s (5 min per 1M)"
    return [Row(name, events, seconds, rss_mb=rss, note=note)]
