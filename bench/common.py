"""Shared helpers for benchmarks: rows, isolation, running a flow as a subprocess."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from config import Settings
from lernflow.kernel.clients import redis_client
from lernflow.ops import schema

BENCH_REDIS_DBS = {
    "relation_cache_db": 25,
    "content_cache_db": 26,
    "collection_cache_db": 27,
    "user_cache_db": 28,
    "dedup_db": 29,
}


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table."""

    name: str
    items: int
    seconds: float
    unit: str = "events"
    rss_mb: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


def peak_rss_mb() -> float:
    """Peak RSS of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def isolated(settings: Settings, label: str) -> Settings:
    """Settings for one benchmark: own topics, ``bench_`` keyspaces, Redis DBs 25-29 (flushed)."""
    topics = settings.topics.model_copy(update={"env": f"bench-{label}-{uuid.uuid4().hex[:6]}"})
    cas = settings.cassandra.model_copy(
        update={
            "courses_keyspace": "bench_" + settings.cassandra.courses_keyspace,
            "sunbird_keyspace": "bench_" + settings.cassandra.sunbird_keyspace,
            "hierarchy_keyspace": "bench_" + settings.cassandra.hierarchy_keyspace,
        }
    )
    red = settings.redis.model_copy(update=BENCH_REDIS_DBS)
    for db in BENCH_REDIS_DBS.values():
        c = redis_client(red, db)
        c.flushdb()
        c.close()
    schema.apply_cassandra(settings.cassandra, keyspace_prefix="bench_")
    from lernflow.kernel.clients import cassandra_session

    cluster, session = cassandra_session(cas)
    for table in ("user_content_consumption", "user_activity_agg", "user_enrolments",
                  "assessment_aggregator", "lernflow_activity_applied"):  # fmt: skip
        session.execute(f"TRUNCATE {cas.courses_keyspace}.{table}", timeout=120)
    cluster.shutdown()
    s = settings.with_overrides(topics=topics, cassandra=cas, redis=red)
    schema.apply_topics(s.kafka, s.topics)
    return s


def env_for(settings: Settings) -> dict[str, str]:
    """Environment variables that make a subprocess use these settings."""
    return {**os.environ, **settings.to_env()}


def run_flow_subprocess(flow: str, settings: Settings, *extra: str) -> tuple[float, float]:
    """Run ``lernflow run FLOW --until-caught-up`` in a child; return (seconds, child peak RSS MiB)."""
    cmd = [
        sys.executable,
        "-m",
        "lernflow.cli",
        "run",
        flow,
        "--until-caught-up",
        "--no-recovery",
        *extra,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env_for(settings), capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        msg = f"{' '.join(cmd[2:])} exited {done.returncode}:\n{tail}"
        raise RuntimeError(msg)
    elapsed = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(after, before) / 1024
