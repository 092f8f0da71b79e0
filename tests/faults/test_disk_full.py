"""A disk that fills up mid-run: the recovery store's (activity-aggregate-updater) and the
certificate store's (certificate-generator). The flow stops with a clear one-line error (no
traceback, nothing parked for it); once space is back a restart completes the input and the end
state equals the clean run's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lernflow.ops.runner import failed_topic
from tests.faults.harness import (
    Case,
    Reference,
    Row,
    assert_running,
    check_clean_state,
    fill,
    no_space_line,
    parked_origins,
    produce_events,
    small_disk,
    wait_for_progress,
)
from tests.faults.workloads import ACTIVITY, GENERATOR, Workload

STOP_TIMEOUT_S = 120.0


def _disk_full_mid_run(
    case: Case, workload: Workload, disk: Path, ref: Reference, row: Row
) -> None:
    events = workload.load(case.settings)
    produce_events(case.settings, workload.input(case.settings), events)
    row.sent = total = len(events)
    proc = case.run_flow("--until-caught-up")
    applied = wait_for_progress(workload, case.settings, max(1, total // 4), proc)
    assert_running(proc, applied, total)
    filler = fill(disk)
    code = proc.wait(STOP_TIMEOUT_S)
    stopped_at = workload.progress(case.settings)
    parked = sum(parked_origins(case.settings, failed_topic(case.settings, workload.flow)).values())
    line = no_space_line(proc.output())
    row.note = (f"disk filled at {applied} of {total} applied; stopped at {stopped_at} with exit "
                f"{code}, {parked} parked; last line: {proc.tail(1)[:160]!r}")  # fmt: skip
    # how it stopped is checked last, so the table shows what the restart recovered either way
    problems = []
    if code == 0:
        problems.append(f"exit 0 with the disk full ({parked} events parked)")
    if parked:
        problems.append(f"{parked} events parked because the disk was full")
    if line is None:
        problems.append(f"the last line does not say the disk is full: {proc.tail(1)!r}")
    if "Traceback" in proc.output():
        problems.append("a Python traceback, not a one-line error")

    filler.unlink()  # space is back
    done = case.catch_up()
    row.skipped = int(done.counter("lernflow_events_skipped_total"))
    check_clean_state(case, workload, ref, row)
    assert not problems, "; ".join(problems) + f"\n{proc.tail(40)}"


def test_recovery_disk_full_stops_the_flow_and_a_restart_loses_nothing(
    clean: Callable[[str], Reference], new_case: Callable[..., Case], record: Callable[..., Row]
) -> None:
    ref = clean(ACTIVITY.flow)
    row = record(ACTIVITY.flow, "recovery store's disk full mid-run, then freed")
    case = new_case(ACTIVITY.flow, "recovery-disk-full")
    with small_disk(case.settings.run.recovery_dir, 16 * 1024**2) as disk:
        _disk_full_mid_run(case, ACTIVITY, disk, ref, row)


def test_certificate_disk_full_stops_the_generator_and_a_restart_loses_nothing(
    clean: Callable[[str], Reference], new_case: Callable[..., Case], record: Callable[..., Row]
) -> None:
    ref = clean(GENERATOR.flow)
    row = record(GENERATOR.flow, "certificate store's disk full mid-run, then freed")
    case = new_case(GENERATOR.flow, "certificate-disk-full")
    with small_disk(case.settings.certificates.storage_dir, 64 * 1024**2) as disk:
        _disk_full_mid_run(case, GENERATOR, disk, ref, row)
