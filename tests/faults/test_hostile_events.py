"""Hostile events mixed with a flow's good ones (tests/faults/hostile.py): the flow never exits
non-zero, every good event is applied as in the clean run, every hostile one is parked on the
failed topic exactly once (by origin topic/partition/offset) or skipped with a metric — and after
three more runs over the same input (``--from-beginning``) the failed topic still holds each
hostile event once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lernflow.kernel.dlq import Origin
from lernflow.ops.runner import failed_topic
from tests.faults.harness import (
    Case,
    FlowProcess,
    Reference,
    Row,
    compare,
    distinct,
    parked_origins,
    produce_tracked,
    snapshot,
)
from tests.faults.hostile import Hostile, hostile_events, mixed
from tests.faults.workloads import WORKLOADS

FLOWS = list(WORKLOADS)
RESTARTS = 3
RUN_TIMEOUT_S = 150.0
SKIPPED = "lernflow_events_skipped_total"


def _skips(run: FlowProcess) -> int:
    """Events the run skipped, not counting the ones skipped because they were parked before."""
    return int(run.counter(SKIPPED) - run.counter(SKIPPED, reason_kind="already-parked"))


def _listed(found: list[tuple[Origin, Hostile]], limit: int = 6) -> str:
    return "; ".join(f"{h.kind}: {h.what} at {o.partition}/{o.offset}" for o, h in found[:limit])


@pytest.mark.parametrize("flow", FLOWS)
def test_hostile_events_are_parked_once_or_skipped_and_the_good_ones_applied(
    flow: str, clean: Callable[[str], Reference], new_case: Callable[..., Case],
    record: Callable[..., Row],
) -> None:  # fmt: skip
    workload, ref = WORKLOADS[flow], clean(flow)
    row = record(flow, f"hostile events among good ones, {RESTARTS} restarts")
    case = new_case(flow, "hostile")
    good = workload.load(case.settings)
    bad = hostile_events(flow, good[0][1])
    mix = mixed(good, bad)
    origins = produce_tracked(case.settings, workload.input(case.settings), mix.messages)
    row.sent = len(mix.messages)
    row.note = f"{len(bad)} hostile ({', '.join(sorted({h.kind for h in bad}))}) among {len(good)}"

    first = case.catch_up(timeout=RUN_TIMEOUT_S)
    # the good events' outcome, compared as distinct rows and messages: a hostile copy of a good
    # event that a flow accepts (a field it does not read broken) gives the same output again
    diff = compare(distinct(ref.snapshot), distinct(snapshot(case.settings, workload)))
    for _ in range(RESTARTS):  # the same input again, from the first offset
        case.catch_up("--from-beginning", timeout=RUN_TIMEOUT_S)

    parked = parked_origins(case.settings, failed_topic(case.settings, flow))
    hostile = [(o, h) for o, h in zip(origins, mix.bad, strict=True) if h is not None]
    good_origins = {o for o, h in zip(origins, mix.bad, strict=True) if h is None}
    twice = {o: n for o, n in parked.items() if n > 1}
    unparked = [(o, h) for o, h in hostile if parked[o] == 0 and h.must_refuse]
    accepted = [(o, h) for o, h in hostile if parked[o] == 0 and not h.must_refuse]
    skipped_bad = _skips(first) - ref.skipped  # beyond the good events' own skips
    unaccounted = max(0, len(unparked) - max(skipped_bad, 0))
    row.applied, row.skipped = workload.progress(case.settings) + len(accepted), skipped_bad
    row.parked = len(parked)
    row.lost = diff.lost + unaccounted
    row.duplicated = diff.duplicated + sum(n - 1 for n in twice.values())
    if accepted:
        row.note += f"; accepted as harmless: {_listed(accepted, 3)}"

    assert not twice, f"{len(twice)} events parked more than once: {list(twice.items())[:5]}"
    wrongly = [o for o in parked if o in good_origins]
    assert not wrongly, f"{len(wrongly)} good events parked: {wrongly[:5]}"
    strangers = [o for o in parked if o not in set(origins)]
    assert not strangers, f"envelopes with unknown origins: {strangers[:5]}"
    assert diff.none, f"good events: {diff.lost} lost, {diff.duplicated} extra: {diff.examples}"
    assert not unaccounted, (
        f"{len(unparked)} hostile events not parked and only {skipped_bad} skips beyond the "
        f"clean run's: {_listed(unparked)}"
    )
