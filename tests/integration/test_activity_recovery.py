"""kill -9 in the middle of a run, restart from the recovery store: same state as a clean run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.workloads import activity_events, seed_activity
from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, redis_client
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from tests.flowkit import create_topics, read_json, run_to_end
from tests.integration.test_activity_flow import _rows, state

FLOW = "activity-aggregate-updater"
LEARNERS = 250


def _seed(settings: Settings) -> None:
    seed_activity(settings, LEARNERS)


def _events() -> list[tuple[bytes, bytes]]:
    return activity_events(LEARNERS)


def _reset(settings: Settings) -> None:
    for db in (settings.redis.dedup_db, settings.redis.relation_cache_db):
        c = redis_client(settings.redis, db)
        c.flushdb()
        c.close()
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    for t in (
        "user_content_consumption",
        "user_activity_agg",
        "user_enrolments",
        "lernflow_activity_applied",
    ):
        session.execute(f"TRUNCATE {t}", timeout=60)
    cluster.shutdown()


def load_activity(settings: Settings, events: list[tuple[bytes, bytes]], learners: int) -> None:
    """Topics, the LMS rows and relation cache for ``learners``, and ``events`` on the input."""
    create_topics(settings)
    seed_activity(settings, learners)
    inp = settings.topics.full(settings.topics.course_batch_job_request)
    DeliveryTrackingProducer(settings.kafka).produce_all(
        [OutMessage(inp, v, key=k) for k, v in events]
    )


def _applied(settings: Settings) -> int:
    return len(_rows(settings, "SELECT userid FROM lernflow_activity_applied"))


def applied_events(settings: Settings) -> int:
    """How many input events the state holds: each counted event adds one view to one lesson
    (the seeded LMS rows start without views, and a replayed event adds nothing)."""
    return sum(
        r.viewcount or 0 for r in _rows(settings, "SELECT viewcount FROM user_content_consumption")
    )


def test_kill_9_mid_run_then_restart_gives_the_clean_run_state(
    settings: Settings, tmp_path: Path
) -> None:
    # more learners than the other tests use, so each kill lands well inside a run
    learners = 4 * LEARNERS
    events = activity_events(learners)
    # 1. the reference: one clean, uninterrupted run
    load_activity(settings, events, learners)
    run_to_end(FLOW, settings)
    clean = state(settings)
    assert applied_events(settings) == len(events)
    clean_certs = read_json(
        settings, settings.topics.full(settings.topics.issue_certificate_request)
    )
    assert len(clean_certs) == learners - learners // 5

    # 2. same input on a fresh topic environment and fresh tables, killed twice mid-run
    _reset(settings)
    run2 = settings.with_overrides(
        topics=settings.topics.model_copy(update={"env": settings.topics.env + "-k"}),
        # small reads, so the work advances in small steps and each kill lands inside the run
        kafka=settings.kafka.model_copy(update={"consumer_batch_size": 50}),
        run=settings.run.model_copy(
            update={
                "recovery_dir": tmp_path / "recovery",
                "snapshot_interval_s": 0.5,
            }
        ),
    )
    create_topics(run2)
    seed_activity(run2, learners)
    inp2 = run2.topics.full(run2.topics.course_batch_job_request)
    DeliveryTrackingProducer(run2.kafka).produce_all(
        [OutMessage(inp2, b, key=k) for k, b in events]
    )
    env = {**os.environ, **run2.to_env()}
    cmd = [sys.executable, "-m", "lernflow.cli", "run", FLOW]
    total = len(events)
    for step in (total // 10, total // 4):
        target = applied_events(run2) + step  # this process does part of the work itself
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        applied = applied_events(run2)
        while applied < target and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            applied = applied_events(run2)
        # the kill lands in the middle of a live run: the process runs, part of the work is done
        alive = proc.poll() is None
        with contextlib.suppress(ProcessLookupError):  # it may have exited
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert alive, f"the flow exited (code {proc.returncode}) before the kill"
        assert 0 < applied < total, f"{applied} of {total} events applied at the kill"
        after_kill = applied_events(run2)
        assert after_kill < total, f"all {total} events were applied before the kill landed"
    subprocess.run(
        [*cmd, "--until-caught-up"], env=env, check=True, capture_output=True, timeout=300
    )
    assert applied_events(run2) == total
    got = state(run2)
    if got != clean:
        missing = sorted(set(clean[0]) - set(got[0]))[:5]
        ledger = {
            (r.userid, r.source): r.applied_offset
            for r in _rows(
                run2, "SELECT userid, source, applied_offset FROM lernflow_activity_applied"
            )
        }
        detail = [(m, {k: v for k, v in ledger.items() if k[0] == m[0]}) for m in missing]
        raise AssertionError(f"{len(set(clean[0]) - set(got[0]))} rows differ; first: {detail}")
    certs = read_json(run2, run2.topics.full(run2.topics.issue_certificate_request))
    users = {tuple(c["edata"]["userIds"]) for c in certs}
    assert users == {tuple(c["edata"]["userIds"]) for c in clean_certs}  # none lost
    # A pending marker re-sends only if its deterministic mid is not on the topic: no duplicates.
    assert len(certs) == len(users), f"duplicates: {len(certs) - len(users)}"
