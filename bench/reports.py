"""progress-exhaust over 100,000 enrolments of one batch: seconds, rows/s, RSS, CPU.

The batch's enrolments in Cassandra, every learner in the Redis user cache, a published
hierarchy of 4 lessons; the report reads, computes and writes the CSV in this process.
The row also carries the CPU seconds of this process (``flow_cpu_ms_per_event``) and of the
stack's Cassandra (``bench.work.Meter``) per enrolment: on a shared, noisy machine the wall
time moves with the load, the CPU seconds much less (docs/flows/progress-exhaust.md,
"Performance").
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Row, peak_rss_mb
from bench.work import Meter
from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, redis_client
from lernflow.ops import schema
from lernflow.reports.runner import run_batches

ENROLMENTS = 100_000
KEYSPACE_PREFIX = "bench_reports_"  # starts with bench_: bench.work counts its writes
USER_CACHE_DB = 60  # past the slots of lernflow/devstack/redis_slots.py (20-59)
COURSE, BATCH = "do_bench_report_course", "bench_report_batch"
LESSONS = [f"do_bench_lesson_{i}" for i in range(4)]


def _seed(s: Settings) -> None:
    from cassandra.concurrent import execute_concurrent_with_args

    cluster, session = cassandra_session(s.cassandra)
    ks = s.cassandra.courses_keyspace
    session.execute(
        f"INSERT INTO {ks}.course_batch (courseid, batchid, name) VALUES (%s, %s, %s)",
        (COURSE, BATCH, "Benchmark batch"),
    )
    tree = {"identifier": COURSE, "name": "Benchmark course", "channel": "bench", "status": "Live",
            "leafNodes": LESSONS, "leafNodesCount": len(LESSONS),
            "children": [{"identifier": c, "mimeType": "application/pdf"} for c in LESSONS]}  # fmt: skip
    session.execute(
        f"INSERT INTO {s.cassandra.hierarchy_keyspace}.content_hierarchy (identifier, hierarchy) "
        "VALUES (%s, %s)", (COURSE, json.dumps(tree)),
    )  # fmt: skip
    ins = session.prepare(
        f"INSERT INTO {ks}.user_enrolments (userid, courseid, batchid, active, enrolled_date, "
        "completedon, contentstatus, status) VALUES (?, ?, ?, true, ?, ?, ?, ?)"
    )
    day = datetime(2026, 11, 1, tzinfo=UTC)
    rows = []
    for n in range(ENROLMENTS):
        done = n % 4 + 1
        status = {c: 2 for c in LESSONS[:done]}
        rows.append((f"bench-report-user-{n:06d}", COURSE, BATCH, day,
                     day if done == 4 else None, status, 2 if done == 4 else 1))  # fmt: skip
    execute_concurrent_with_args(session, ins, rows, concurrency=200)
    cluster.shutdown()
    r = redis_client(s.redis, s.redis.user_cache_db)
    pipe = r.pipeline(transaction=False)
    for n in range(ENROLMENTS):
        pipe.hset(f"user:bench-report-user-{n:06d}", mapping={
            "firstname": f"Learner{n}", "lastname": "Bench", "state": f"State {n % 5}",
            "district": f"District {n % 50}", "orgname": "Bench Board", "rootorgid": "bench",
            "schoolname": f"School {n % 100}", "schooludisecode": f"29{n % 100:05d}",
            "usertype": "student", "board": "CBSE",
        })  # fmt: skip
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    r.close()


def _own_stores(settings: Settings) -> Settings:
    """Keyspaces and a Redis DB (user and collection cache) of this benchmark alone, emptied:
    the shared ``bench_`` ones (``bench.common.isolated``) are truncated and flushed by any
    other benchmark started meanwhile (a run on 2026-12-04 counted 15,735 of the 100,000
    rows), and this one would do the same to theirs."""
    schema.apply_cassandra(settings.cassandra, keyspace_prefix=KEYSPACE_PREFIX)
    c = settings.cassandra
    cas = c.model_copy(
        update={
            name: KEYSPACE_PREFIX + getattr(c, name)
            for name in ("courses_keyspace", "sunbird_keyspace", "hierarchy_keyspace")
        }
    )
    red = settings.redis.model_copy(
        update={"user_cache_db": USER_CACHE_DB, "collection_cache_db": USER_CACHE_DB}
    )
    client = redis_client(red, USER_CACHE_DB)
    client.flushdb()
    client.close()
    cluster, session = cassandra_session(cas)
    for table in ("course_batch", "user_enrolments"):
        session.execute(f"TRUNCATE {cas.courses_keyspace}.{table}", timeout=120)
    cluster.shutdown()
    return settings.with_overrides(cassandra=cas, redis=red)


def run(settings: Settings) -> list[Row]:
    s = _own_stores(settings)
    _seed(s)
    gc.collect()  # the seeding's garbage is not the report's to collect
    out = Path(tempfile.mkdtemp(prefix="lernflow-bench-report-"))
    meter = Meter(s)
    try:
        before = meter.snapshot()
        t0 = time.perf_counter()
        [result] = run_batches(s, "progress-exhaust", [BATCH], out)
        seconds = time.perf_counter() - t0
        work = meter.work_since(before)
    finally:
        meter.close()
    assert result.error is None, result.error
    assert result.rows == ENROLMENTS, f"{result.rows} rows: the benchmark's data was changed"
    return [Row("progress-exhaust, 100,000 enrolments (one batch)", result.rows, seconds,
                unit="rows", rss_mb=peak_rss_mb(), work=work,
                note=f"{result.size / 1e6:.1f} MB CSV; CPU {work.flow_cpu_s:.1f} s report, "
                     f"{work.cassandra_cpu_s:.1f} s Cassandra; target ≤ 10 s")]  # fmt: skip
