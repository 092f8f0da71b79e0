"""SIGTERM in the middle of a live run: the process drains, snapshots and exits 0; restarted,
the flow ends in exactly the state of one clean run (nothing half-applied, nothing twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lernflow.config import Settings
from tests.flowkit import read_json, run_to_end
from tests.integration.test_activity_flow import state
from tests.integration.test_activity_recovery import (
    FLOW,
    LEARNERS,
    _applied,
    _events,
    _reset,
    load_activity,
)  # fmt: skip


def test_sigterm_drains_snapshots_and_the_restart_completes_the_clean_state(
    settings: Settings, tmp_path: Path
) -> None:
    events = _events()
    load_activity(settings, events, LEARNERS)
    run_to_end(FLOW, settings)
    clean = state(settings)

    _reset(settings)
    run2 = settings.with_overrides(
        topics=settings.topics.model_copy(update={"env": settings.topics.env + "-t"}),
        kafka=settings.kafka.model_copy(update={"consumer_batch_size": 10}),  # small polls
        run=settings.run.model_copy(update={
            "recovery_dir": tmp_path / "recovery", "snapshot_interval_s": 30.0,
        }),  # a long epoch: without the graceful path the restart would start far back
    )  # fmt: skip
    load_activity(run2, events, LEARNERS)
    env = {**os.environ, **run2.to_env()}
    cmd = [sys.executable, "-m", "lernflow.cli", "run", FLOW]
    log = tmp_path / "run.log"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 120
    while _applied(run2) < LEARNERS // 10 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the live run ended by itself"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    stopped_s = time.monotonic() - t0
    err = log.read_text()
    assert proc.returncode == 0, err[-2000:]
    assert "SIGTERM received" in err
    assert stopped_s < 30
    partial = state(run2)
    assert partial != clean  # it really stopped mid-way

    subprocess.run(
        [*cmd, "--until-caught-up"], env=env, check=True, capture_output=True, timeout=300
    )
    assert state(run2) == clean
    certs = read_json(run2, run2.topics.full(run2.topics.issue_certificate_request))
    users = {tuple(c["edata"]["userIds"]) for c in certs}
    assert len(certs) == len(users) == LEARNERS - LEARNERS // 5
