"""Each flow on its workload while the process is killed or a server fails mid-run: the end
state and the outputs equal the clean run's, nothing lost, nothing duplicated, nothing parked.

* kill -9 once part of the input is applied, then ``run --until-caught-up`` from the recovery
  store;
* Cassandra stopped (SIGSTOP) for 20 s, then continued: the flow waits it out with retries;
* Kafka, then Redis, stopped and started again mid-run: the clients reconnect.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.faults.harness import (
    Case,
    Reference,
    Row,
    assert_running,
    check_clean_state,
    keep_log,
    paused,
    produce_events,
    restart,
    wait_for_progress,
)
from tests.faults.workloads import WORKLOADS, Workload

FLOWS = list(WORKLOADS)
CASSANDRA_PAUSE_S = 20.0
SLOW_RECOVERY_S = 60.0  # a flow slower than this after a restart keeps its log for a look


def _load(case: Case, workload: Workload, row: Row) -> int:
    events = workload.load(case.settings)
    produce_events(case.settings, workload.input(case.settings), events)
    row.sent = len(events)
    return len(events)


@pytest.mark.parametrize("flow", FLOWS)
def test_kill_9_mid_run_then_restart_gives_the_clean_state(
    flow: str, clean: Callable[[str], Reference], new_case: Callable[..., Case],
    record: Callable[..., Row],
) -> None:  # fmt: skip
    workload, ref = WORKLOADS[flow], clean(flow)
    row = record(flow, "kill -9 mid-run, restart")
    case = new_case(flow, "kill9")
    total = _load(case, workload, row)
    proc = case.run_flow()
    applied = wait_for_progress(workload, case.settings, total // 3, proc)
    alive = proc.alive()
    proc.kill9()
    assert alive, f"the flow exited ({proc.proc.returncode}) before the kill: {proc.tail()}"
    assert 0 < applied < total, f"{applied} of {total} applied at the kill"
    row.note = f"killed at {applied} of {total} applied"
    done = case.catch_up()
    row.skipped = int(done.counter("lernflow_events_skipped_total"))
    check_clean_state(case, workload, ref, row)


@pytest.mark.parametrize("flow", FLOWS)
def test_cassandra_paused_mid_run_is_waited_out(
    flow: str, clean: Callable[[str], Reference], new_case: Callable[..., Case],
    record: Callable[..., Row],
) -> None:  # fmt: skip
    workload, ref = WORKLOADS[flow], clean(flow)
    row = record(flow, f"Cassandra paused {CASSANDRA_PAUSE_S:.0f} s mid-run")
    case = new_case(flow, "cassandra-pause")
    total = _load(case, workload, row)
    proc = case.run_flow("--until-caught-up")
    applied = wait_for_progress(workload, case.settings, max(1, total // 5), proc)
    assert_running(proc, applied, total)
    with paused(case.settings, "cassandra"):
        time.sleep(CASSANDRA_PAUSE_S)
        assert proc.alive(), f"the flow exited during the pause: {proc.tail()}"
    row.note = f"paused at {applied} of {total} applied"
    code = proc.wait(300)
    assert code == 0, f"exit {code} after the pause: {proc.tail()}"
    row.skipped = int(proc.counter("lernflow_events_skipped_total"))
    check_clean_state(case, workload, ref, row)


@pytest.mark.parametrize("server", ["kafka", "redis"])
@pytest.mark.parametrize("flow", FLOWS)
def test_server_restarted_mid_run_is_reconnected(
    flow: str, server: str, clean: Callable[[str], Reference], new_case: Callable[..., Case],
    record: Callable[..., Row],
) -> None:  # fmt: skip
    workload, ref = WORKLOADS[flow], clean(flow)
    row = record(flow, f"{server.capitalize()} restarted mid-run")
    case = new_case(flow, f"{server}-restart")
    total = _load(case, workload, row)
    proc = case.run_flow("--until-caught-up")
    applied = wait_for_progress(workload, case.settings, max(1, total // 5), proc)
    assert_running(proc, applied, total)
    took = restart(case.settings, server)
    t0 = time.monotonic()
    code = proc.wait(300)
    after = time.monotonic() - t0
    row.note = (f"restarted at {applied} of {total} applied, down and up in {took:.1f} s; "
                f"the flow finished {after:.1f} s later")  # fmt: skip
    if after > SLOW_RECOVERY_S:
        row.note += f" (log kept: {keep_log(proc, f'{flow}-{server}-restart')})"
    assert code == 0, f"exit {code} after the {server} restart: {proc.tail()}"
    row.skipped = int(proc.counter("lernflow_events_skipped_total"))
    check_clean_state(case, workload, ref, row)
