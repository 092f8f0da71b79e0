"""Shared helpers for benchmarks: rows, isolation, running a flow as a subprocess."""

from __future__ import annotations

import functools
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lernflow.config import Settings
from lernflow.devstack import redis_slots
from lernflow.kernel.clients import redis_client
from lernflow.ops import schema


@dataclass(frozen=True)
class Work:
    """What one benchmark row cost: CPU seconds of Cassandra and of the flow (or driver loop),
    and Cassandra's local writes by table (``keyspace.table``; ``system.batches`` is the
    batchlog)."""

    cassandra_cpu_s: float
    flow_cpu_s: float
    writes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table (and one ``--json`` record)."""

    name: str
    items: int
    seconds: float
    unit: str = "events"
    rss_mb: float | None = None
    note: str = ""
    workload: str = ""
    ratio_to_limit: float | None = None
    work: Work | None = None

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def per_item(self, value: float | None) -> float | None:
        """``value`` (seconds or a count) per item, or None."""
        return value / self.items if value is not None and self.items else None

    def writes_per_item(self) -> dict[str, float]:
        """Local Cassandra writes per item by table, largest first."""
        if self.work is None or not self.items:
            return {}
        pairs = sorted(self.work.writes.items(), key=lambda kv: -kv[1])
        return {table: n / self.items for table, n in pairs if n}

    def record(self) -> dict[str, Any]:
        """The ``--json`` record of this row."""
        w = self.work
        cas = _round(self.per_item(w.cassandra_cpu_s * 1000)) if w else None
        flow = _round(self.per_item(w.flow_cpu_s * 1000)) if w else None
        writes = {t: round(n, 3) for t, n in self.writes_per_item().items()}
        return {
            "name": self.name, "workload": self.workload, "items": self.items,
            "unit": self.unit, "seconds": round(self.seconds, 3), "rate": round(self.rate, 1),
            "ratio_to_limit": _round(self.ratio_to_limit), "cassandra_cpu_ms_per_event": cas,
            "flow_cpu_ms_per_event": flow, "peak_rss_mib": _round(self.rss_mb, 1),
            "cassandra_writes_per_event": writes,
            "cassandra_writes_per_event_total": round(sum(writes.values()), 3) if writes else None,
            "note": self.note,
        }  # fmt: skip


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def peak_rss_mb() -> float:
    """Peak RSS of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_HELD: list[IO[str]] = []  # the slot's lock, held until the bench process exits


@functools.cache
def _redis_slot() -> dict[str, int]:
    """This bench process's five Redis DBs: a slot of the local stack (a test session on the
    same stack takes another one)."""
    dbs, handle = redis_slots.claim()
    _HELD.append(handle)
    return dbs


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
    dbs = _redis_slot()
    red = settings.redis.model_copy(update=dbs)
    for db in dbs.values():
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
    done = run_flow_measured(flow, settings, *extra)
    return done.seconds, done.peak_rss_mib


@dataclass(frozen=True)
class ChildRun:
    """One measured child process: wall time, CPU (its own and its waited-for children's) and
    peak RSS of the largest process of its tree after ``exec`` (``VmHWM``, sampled every half
    second: ``ru_maxrss`` would count the bench's own memory, shared with the child between
    ``fork`` and ``exec`` — the 1M-event bench holds ~840 MiB of events)."""

    seconds: float
    cpu_s: float
    peak_rss_mib: float


def run_child(cmd: Sequence[str], settings: Settings, what: str) -> ChildRun:
    """Run ``cmd`` with ``settings`` in the environment; its own rusage by ``wait4``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        child = subprocess.Popen(list(cmd), env=env_for(settings), stdout=out, stderr=err)
        peaks: dict[int, int] = {}
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_hwm, args=(child.pid, peaks, stop), daemon=True)
        sampler.start()
        _pid, status, usage = os.wait4(child.pid, 0)
        elapsed = time.monotonic() - t0
        stop.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            tail = "\n".join(err.read().decode(errors="replace").strip().splitlines()[-15:])
            msg = f"{what} exited {child.returncode}:\n{tail}"
            raise RuntimeError(msg)
    peak_kib = max(peaks.values(), default=usage.ru_maxrss)
    return ChildRun(elapsed, usage.ru_utime + usage.ru_stime, peak_kib / 1024)


def _sample_hwm(root: int, peaks: dict[int, int], stop: threading.Event) -> None:
    """Every half second, the ``VmHWM`` (KiB) of ``root`` and its descendants into ``peaks``."""
    while not stop.wait(0.5):
        todo = [root]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            todo += [int(c) for c in children]


def run_flow_measured(flow: str, settings: Settings, *extra: str) -> ChildRun:
    """Run ``lernflow run FLOW --until-caught-up --no-recovery`` in a child, measured."""
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
    return run_child(cmd, settings, " ".join(cmd[2:]))
