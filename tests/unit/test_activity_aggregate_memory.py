"""Unchanged aggregates are not rewritten (docs/flows/activity-aggregate-updater.md#73)."""

from __future__ import annotations

from lernflow.flows.activity_aggregate_updater.planner import AggregateMemory
from lernflow.flows.activity_aggregate_updater.rules import AggregateUpdate, EnrolmentWrite

KEY = ("u1", "c1", "b1")


def _write(key: tuple[str, str, str] = KEY, **counts: float) -> EnrolmentWrite:
    aggs = tuple(AggregateUpdate(a, key[0], f"cb:{key[2]}", v, 1) for a, v in counts.items())
    return EnrolmentWrite(key, aggregates=aggs)


def _ids(w: EnrolmentWrite) -> dict[str, float]:
    return {a.activity_id: a.completed_count for a in w.aggregates}


def test_first_write_of_an_enrolment_carries_every_aggregate() -> None:
    memory = AggregateMemory(10)
    assert _ids(memory.changed([_write(c1=1, u1=1, u2=0)])[0]) == {"c1": 1, "u1": 1, "u2": 0}


def test_only_changed_aggregates_are_written_after_a_remembered_write() -> None:
    memory = AggregateMemory(10)
    memory.remember(memory.changed([_write(c1=1, u1=1, u2=0)]))
    (again,) = memory.changed([_write(c1=2, u1=1, u2=1)])
    assert _ids(again) == {"c1": 2, "u2": 1}
    memory.remember([again])
    (third,) = memory.changed([_write(c1=2, u1=1, u2=1)])
    assert third.aggregates == ()


def test_a_write_not_remembered_is_written_again() -> None:
    memory = AggregateMemory(10)
    memory.changed([_write(c1=1)])  # the write failed: remember() never ran
    assert _ids(memory.changed([_write(c1=1)])[0]) == {"c1": 1}


def test_least_recently_written_enrolments_are_forgotten_beyond_capacity() -> None:
    memory = AggregateMemory(2)
    keys = [(f"u{i}", "c1", "b1") for i in range(3)]
    for k in keys:
        memory.remember([_write(k, c1=1)])
    assert _ids(memory.changed([_write(keys[0], c1=1)])[0]) == {"c1": 1}  # forgotten
    assert memory.changed([_write(keys[2], c1=1)])[0].aggregates == ()


def test_capacity_zero_rewrites_everything_as_sunbird_does() -> None:
    memory = AggregateMemory(0)
    memory.remember([_write(c1=1)])
    assert _ids(memory.changed([_write(c1=1)])[0]) == {"c1": 1}
