"""Scale-out keeps per-enrolment order: 2 processes x 2 workers give the 1-worker state."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from bench.workloads import activity_events
from lernflow.config import Settings
from tests.flowkit import read_json, run_to_end
from tests.integration.test_activity_flow import state
from tests.integration.test_activity_recovery import _reset, load_activity

FLOW = "activity-aggregate-updater"
LEARNERS = 200


def _single_then_fresh(settings: Settings, suffix: str) -> tuple[object, Settings, int]:
    """The 1-worker end state of the workload; then a fresh state and the same workload loaded
    in a topic environment of its own (settings for it, and how many events it holds)."""
    events = activity_events(LEARNERS)
    load_activity(settings, events, LEARNERS)
    run_to_end(FLOW, settings)
    single = state(settings)
    _reset(settings)
    fresh = settings.with_overrides(
        topics=settings.topics.model_copy(update={"env": settings.topics.env + suffix})
    )
    load_activity(fresh, events, LEARNERS)
    return single, fresh, len(events)


def _certificates(s: Settings) -> int:
    return len(read_json(s, s.topics.full(s.topics.issue_certificate_request)))


def test_two_processes_with_two_workers_each_reach_the_single_worker_state(
    settings: Settings,
) -> None:
    single, cluster, _n = _single_then_fresh(settings, "-p")
    proc = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "run", FLOW, "--processes", "2", "-w", "2",
         "--until-caught-up", "--no-recovery"],
        env={**os.environ, **cluster.to_env()}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert state(cluster) == single
    assert _certificates(cluster) == LEARNERS - LEARNERS // 5


def test_a_replay_in_two_processes_reaches_the_single_worker_state(settings: Settings) -> None:
    single, cluster, n = _single_then_fresh(settings, "-r")
    topic = cluster.topics.full(cluster.topics.course_batch_job_request)
    start = ",".join(f"{topic}:{p}:0" for p in range(cluster.kafka.partitions))
    proc = subprocess.run(
        [sys.executable, "-m", "lernflow.cli", "replay", FLOW, "--from", start, "-p", "2"],
        env={**os.environ, **cluster.to_env()}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert state(cluster) == single
    assert _certificates(cluster) == LEARNERS - LEARNERS // 5
    shares = [
        int(x.replace(",", "")) for x in re.findall(r"process \d replayed ([\d,]+) of", proc.stderr)
    ]
    assert len(shares) == 2 and min(shares) > 0  # both processes took part, each once
    assert sum(shares) == n
    assert "replayed in 2 processes" in proc.stderr
