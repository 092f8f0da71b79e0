"""kill -9, again and again, while 100,000 events stream through the activity flow: the final
state is exactly what one clean run gives (nothing lost, nothing counted twice, one
certificate request per completed enrolment)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.workloads import activity_events, seed_activity
from lernflow.config import Settings
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from tests.flowkit import create_topics, read_json, run_to_end
from tests.integration.test_activity_flow import committed_position, state
from tests.integration.test_activity_recovery import _reset, applied_events

FLOW = "activity-aggregate-updater"
LEARNERS = 27_800  # 3.6 events per learner: 100,080 events
TEMPLATE_LEARNERS = 10


def _expected(template: tuple, learners: int) -> tuple:
    """The clean state for ``learners``, from a clean run over the first few: learner ``i``
    has learner0's rows when ``i % 5 == 0`` (stops after two lessons), else learner1's."""
    consumption, aggs, enrol = template

    def rows(src: list, pos: int) -> list:
        by = {"learner0": [r for r in src if r[pos] == "learner0"],
              "learner1": [r for r in src if r[pos] == "learner1"]}  # fmt: skip
        out = []
        for i in range(learners):
            for r in by["learner0" if i % 5 == 0 else "learner1"]:
                out.append((*r[:pos], f"learner{i}", *r[pos + 1 :]))
        return sorted(out)

    return rows(consumption, 0), rows(aggs, 1), rows(enrol, 0)


def test_repeated_kill_9_while_100k_events_stream_through_gives_the_clean_state(
    settings: Settings, tmp_path: Path
) -> None:
    # the clean reference, on a few learners (every learner is one of two patterns)
    create_topics(settings)
    seed_activity(settings, TEMPLATE_LEARNERS)
    inp = settings.topics.full(settings.topics.course_batch_job_request)
    DeliveryTrackingProducer(settings.kafka).produce_all(
        [OutMessage(inp, v, key=k) for k, v in activity_events(TEMPLATE_LEARNERS)]
    )
    run_to_end(FLOW, settings)
    template = state(settings)
    assert _expected(template, TEMPLATE_LEARNERS) == template

    _reset(settings)
    run = settings.with_overrides(
        topics=settings.topics.model_copy(update={"env": settings.topics.env + "-loop"}),
        # smaller reads: the state advances in finer steps, so kills land at finer points
        kafka=settings.kafka.model_copy(update={"consumer_batch_size": 250}),
        run=settings.run.model_copy(update={"recovery_dir": tmp_path / "recovery", "snapshot_interval_s": 2.0}),
    )  # fmt: skip
    create_topics(run)
    seed_activity(run, LEARNERS)
    events = activity_events(LEARNERS)
    assert len(events) >= 100_000
    inp2 = run.topics.full(run.topics.course_batch_job_request)
    DeliveryTrackingProducer(run.kafka).produce_all([OutMessage(inp2, v, key=k) for k, v in events])

    env = {**os.environ, **run.to_env()}
    cmd = [sys.executable, "-m", "lernflow.cli", "run", FLOW]
    rng = random.Random(7)
    total = len(events)
    kills = 0
    for k in range(8):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        # Progress-based kill points (wall-clock ones are outrun by a fast machine): kill k once
        # the committed position passes a random point of the k-th 14th of the input, plus a
        # random part of a snapshot interval, so kills hit any phase of a round. The committed
        # position trails the applied state by up to a snapshot, hence the margin to the end.
        target = int((k + rng.uniform(0.2, 1.0)) / 14 * total)
        deadline = time.monotonic() + 300
        try:
            while committed_position(run) < target and proc.poll() is None:
                assert time.monotonic() < deadline, f"no progress to {target} of {total} in 300 s"
                time.sleep(0.2)
            time.sleep(rng.uniform(0, run.run.snapshot_interval_s))
            alive = proc.poll() is None
            applied = applied_events(run)  # from the stored views, while the process still runs
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have exited
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert alive, f"the flow exited (code {proc.returncode}) before kill {kills + 1}"
        assert 0 < applied < total, f"kill {kills + 1}: {applied} of {total} events applied"
        after_kill = applied_events(run)
        assert after_kill < total, f"kill {kills + 1}: everything was applied before it landed"
        kills += 1
    subprocess.run(
        [*cmd, "--until-caught-up"], env=env, check=True, capture_output=True, timeout=600
    )
    assert kills == 8
    assert applied_events(run) == total

    got, want = state(run), _expected(template, LEARNERS)
    if got != want:  # diagnostics for the failure message
        from collections import Counter

        from tests.integration.test_activity_flow import _rows

        parked = read_json(run, run.topics.full(run.topics.activity_agg_failed))
        bad = sorted(set(got[0]) - set(want[0]))[:2]
        ledger = {b[0]: [(r.source, r.applied_offset) for r in _rows(
            run, "SELECT source, applied_offset FROM lernflow_activity_applied WHERE userid=%s "
            "AND courseid=%s AND batchid=%s", b[0], b[1], b[2])] for b in bad}  # fmt: skip
        print("PARKED", len(parked), Counter(p["reason"][:80] for p in parked).most_common(3))
        print("LEDGER", ledger)
    for name, g, w in zip(("consumption", "aggregates", "enrolments"), got, want, strict=True):
        extra, missing = sorted(set(g) - set(w))[:3], sorted(set(w) - set(g))[:3]
        assert g == w, f"{name}: {len(g)} rows vs {len(w)}; unexpected {extra}; missing {missing}"
    certs = read_json(run, run.topics.full(run.topics.issue_certificate_request))
    users = [tuple(c["edata"]["userIds"]) for c in certs]
    assert len(users) == len(set(users)) == LEARNERS - LEARNERS // 5
