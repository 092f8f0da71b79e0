"""A server that stops answering mid-run is waited out with retries: nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from bench.workloads import activity_events, seed_activity
from lernflow.config import Settings
from lernflow.devstack import stack
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from tests.flowkit import create_topics, read_json
from tests.integration.test_activity_flow import state

FLOW = "activity-aggregate-updater"
LEARNERS = 150


def test_redis_frozen_mid_run_is_retried_and_the_result_is_complete(settings: Settings) -> None:
    redis_pid = next(s.pid for s in stack.status(settings) if s.name == "redis")
    assert redis_pid, "this test freezes the stack's own Redis"
    s = settings.with_overrides(
        redis=settings.redis.model_copy(update={"socket_timeout_s": 1.0}),
        run=settings.run.model_copy(update={"retry_max_attempts": 30, "retry_max_delay_s": 1.0}),
    )
    create_topics(s)
    seed_activity(s, LEARNERS)
    events = activity_events(LEARNERS)
    inp = s.topics.full(s.topics.course_batch_job_request)
    DeliveryTrackingProducer(s.kafka).produce_all([OutMessage(inp, v, key=k) for k, v in events])

    def thaw() -> None:
        time.sleep(5)
        os.kill(redis_pid, signal.SIGCONT)

    os.kill(redis_pid, signal.SIGSTOP)  # Redis stops answering before the flow's first call
    thread = threading.Thread(target=thaw)
    thread.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lernflow.cli", "run", FLOW, "--until-caught-up", "--no-recovery"],
            env={**os.environ, **s.to_env()}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        thread.join()
        os.kill(redis_pid, signal.SIGCONT)
    assert proc.returncode == 0, proc.stderr[:3000] + " … " + proc.stderr[-1000:]
    assert "retrying" in proc.stderr  # the freeze really hit the flow
    consumption, _aggs, enrol = state(s)
    completed = [e for e in enrol if e[3] == 2]
    assert len(completed) == LEARNERS - LEARNERS // 5
    assert all(row[5] == 1 and row[6] == 1 for row in consumption)  # each completion counted once
    certs = read_json(s, s.topics.full(s.topics.issue_certificate_request))
    assert len({tuple(c["edata"]["userIds"]) for c in certs}) == len(completed)
