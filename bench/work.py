"""Count the work of a benchmark row: Cassandra CPU and local writes by table (issue 16 item 1).

* Cassandra CPU: ``utime + stime`` of the stack's Cassandra process from ``/proc/<pid>/stat``,
  before the row and after it plus a settle (the compactions the row triggered, until
  ``system_views.sstable_tasks`` is empty, at most ``SETTLE_MAX_S``).
* Local writes: the ``count`` of ``system_views.local_write_latency`` (Cassandra 4.1+) per
  table of the ``bench_`` keyspaces, and of ``system.batches`` (the batchlog: a logged batch
  writes its entry there and removes it, two local writes), before and after.

Everything else running on the same node (another helper's tests) is counted too: the figures
are only as quiet as the machine.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from typing import Any

from bench.common import ChildRun, Work, run_flow_measured
from lernflow.config import Settings
from lernflow.devstack import stack
from lernflow.kernel.clients import cassandra_session

#: the compactions a row triggered are waited for at most this long
SETTLE_MAX_S = 60.0
#: and at least this long (a flush or compaction that has not been queued yet)
SETTLE_MIN_S = 2.0
BATCHLOG = "system.batches"


@dataclass(frozen=True)
class Snapshot:
    """Counters at one moment."""

    cassandra_cpu_s: float
    writes: dict[str, int]
    self_cpu_s: float


def cassandra_pid(settings: Settings) -> int | None:
    """The pid of the stack's Cassandra (None when it is external or down)."""
    for s in stack.status(settings):
        if s.name == "cassandra" and s.up:
            return s.pid
    return None


def process_cpu_s(pid: int | None) -> float:
    """utime + stime of ``pid`` in seconds (0.0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    """CPU seconds of this process (a driver loop run in-process)."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


class Meter:
    """Snapshots of the stack's Cassandra around a benchmark row."""

    def __init__(self, settings: Settings) -> None:
        self._pid = cassandra_pid(settings)
        self._cluster, self._session = cassandra_session(settings.cassandra)

    def snapshot(self) -> Snapshot:
        """The counters now."""
        return Snapshot(process_cpu_s(self._pid), self._writes(), self_cpu_s())

    def work_since(self, before: Snapshot, flow_cpu_s: float | None = None) -> Work:
        """The work since ``before``, after the settle; ``flow_cpu_s`` None: this process's."""
        self._settle()
        after = self.snapshot()
        writes = {
            t: n - before.writes.get(t, 0) for t, n in after.writes.items()
            if n - before.writes.get(t, 0) > 0
        }  # fmt: skip
        flow = after.self_cpu_s - before.self_cpu_s if flow_cpu_s is None else flow_cpu_s
        return Work(after.cassandra_cpu_s - before.cassandra_cpu_s, flow, writes)

    def close(self) -> None:
        """Release the connection."""
        self._cluster.shutdown()

    def _writes(self) -> dict[str, int]:
        rows: Any = self._session.execute(
            "SELECT keyspace_name, table_name, count FROM system_views.local_write_latency"
        )
        return {
            f"{r.keyspace_name}.{r.table_name}": int(r.count or 0) for r in rows
            if r.keyspace_name.startswith("bench_")
            or f"{r.keyspace_name}.{r.table_name}" == BATCHLOG
        }  # fmt: skip

    def _settle(self) -> None:
        t0 = time.monotonic()
        time.sleep(SETTLE_MIN_S)
        while time.monotonic() - t0 < SETTLE_MAX_S:
            tasks = list(self._session.execute("SELECT * FROM system_views.sstable_tasks"))
            if not tasks:
                return
            time.sleep(1.0)


def short_table(name: str) -> str:
    """``bench_sunbird_courses.user_activity_agg`` → ``user_activity_agg``; the batchlog stays."""
    return name if name == BATCHLOG else name.split(".", 1)[1]


def measured_flow(flow: str, settings: Settings, *extra: str) -> tuple[ChildRun, Work]:
    """``lernflow run FLOW --until-caught-up`` in a child, with the work it cost."""
    meter = Meter(settings)
    try:
        before = meter.snapshot()
        done = run_flow_measured(flow, settings, *extra)
        return done, meter.work_since(before, done.cpu_s)
    finally:
        meter.close()
