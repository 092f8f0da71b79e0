"""activity-aggregate-updater under kill -9 in its other two ways of running: a local cluster
(``lernflow run --processes 2``) and ``lernflow replay``. Either way the end state and outputs
equal the clean single-process run's."""

from __future__ import annotations

from collections.abc import Callable

from lernflow.kernel.clients import redis_client
from tests.faults.harness import (
    Case,
    Reference,
    Row,
    check_clean_state,
    produce_events,
    wait_for_count,
    wait_for_progress,
)
from tests.faults.workloads import ACTIVITY

FLOW = ACTIVITY.flow


def _dedup_keys(case: Case) -> int:
    client = redis_client(case.settings.redis, case.settings.redis.dedup_db)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def test_two_processes_killed_mid_run_then_restarted_give_the_clean_state(
    clean: Callable[[str], Reference], new_case: Callable[..., Case], record: Callable[..., Row]
) -> None:
    ref = clean(FLOW)
    row = record(FLOW, "2 processes, kill -9 mid-run, restart")
    case = new_case(FLOW, "two-processes")
    events = ACTIVITY.load(case.settings)
    produce_events(case.settings, ACTIVITY.input(case.settings), events)
    row.sent = total = len(events)
    proc = case.run_flow("--processes", "2")
    applied = wait_for_progress(ACTIVITY, case.settings, total // 3, proc)
    alive = proc.alive()
    proc.kill9()  # the parent and both processes of the cluster (one process group)
    assert alive, f"the cluster exited ({proc.proc.returncode}) before the kill: {proc.tail()}"
    assert 0 < applied < total, f"{applied} of {total} applied at the kill"
    row.note = f"killed at {applied} of {total} applied"
    case.catch_up("--processes", "2")
    row.skipped = 0
    check_clean_state(case, ACTIVITY, ref, row)


def test_replay_killed_mid_run_then_replayed_again_leaves_the_clean_state(
    clean: Callable[[str], Reference], new_case: Callable[..., Case], record: Callable[..., Row]
) -> None:
    """The live run first; then, long after (the dedup window gone: its DB flushed), a replay
    of the whole input is killed half-way and started again. Replay safety: no row changes, no
    second certificate request."""
    ref = clean(FLOW)
    row = record(FLOW, "replay, kill -9 mid-replay, replay again")
    case = new_case(FLOW, "replay")
    events = ACTIVITY.load(case.settings)
    topic = ACTIVITY.input(case.settings)
    produce_events(case.settings, topic, events)
    row.sent = total = len(events)
    case.catch_up()
    client = redis_client(case.settings.redis, case.settings.redis.dedup_db)
    client.flushdb()
    client.close()
    start = ",".join(f"{topic}:{p}:0" for p in range(case.settings.kafka.partitions))

    replay = case.start("replay", FLOW, "--from", start)
    # the replay's progress: the dedup keys it writes again (the state itself does not change)
    replayed = wait_for_count(lambda: _dedup_keys(case), total // 3, replay)
    alive = replay.alive()
    replay.kill9()
    assert alive, f"the replay exited ({replay.proc.returncode}) before the kill: {replay.tail()}"
    assert 0 < replayed < total, f"{replayed} of {total} replayed at the kill"
    row.note = f"replay killed at {replayed} of {total}"
    again = case.start("replay", FLOW, "--from", start)
    code = again.wait(240)
    assert code == 0, f"the second replay exited {code}: {again.tail()}"
    row.skipped = int(again.counter("lernflow_events_skipped_total"))
    check_clean_state(case, ACTIVITY, ref, row)
