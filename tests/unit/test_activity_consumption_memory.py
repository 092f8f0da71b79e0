"""Consumption rows kept between rounds (docs/flows/activity-aggregate-updater.md#74).

The reference is the production orchestration reading every round (memory 0, Sunbird's way)
on a store where the LMS has written each completion's status before its event, as it does in
production and in the bench: kept rows must end in the same state and messages while reading
fewer rows, and another process counting for the same learner must be seen.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.flow import SPEC
from lernflow.flows.activity_aggregate_updater.planner import (
    ConsumptionMemory,
    RoundState,
    _pack_enrolment,
    _unpack_enrolment,
)
from lernflow.flows.activity_aggregate_updater.processor import ActivityLogic
from lernflow.flows.shell import BatchProcessor
from tests.shellkit import MemoryOutbox, records
from tests.unit.test_activity_processor import LEAVES, MAYA, ROOTS, SEEDS
from tests.unit.test_activity_steps import (
    CountingStore,
    _event,
    _messages,
    _settings,
    _state,
    events,
)

KEY = ("u1", "c1", "b1")
Events = list[tuple[str, list[tuple[str, int]]]]


class ReadCountingStore(CountingStore):
    """Counts the consumption keys read; :meth:`lms` writes statuses as the LMS does."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_read = 0
        self.enrolments_read = 0

    def lms(self, user: str, contents: list[tuple[str, int]]) -> None:
        """The LMS writes each completion's status 2 before it sends the event."""
        rows = self.consumption_rows.setdefault((user, MAYA[1], MAYA[2]), {})
        for content, status in contents:
            if status == rules.COMPLETED:
                old = rows.get(content, rules.StoredContent(1, 0, 0))
                rows[content] = rules.StoredContent(2, old.view_count, old.completed_count)

    def consumption(self, keys: Any) -> dict[Any, dict[str, rules.StoredContent]]:
        self.keys_read += len(keys)
        return super().consumption(keys)

    def enrolments(self, keys: Any) -> dict[Any, rules.EnrolmentRow | None]:
        self.enrolments_read += len(keys)
        return super().enrolments(keys)


def _processor(store: CountingStore, outbox: MemoryOutbox, memory: int) -> BatchProcessor[Any]:
    s = _settings()
    s = s.with_overrides(activity=s.activity.model_copy(update={"consumption_memory": memory}))
    return SPEC.processor(s, logic=ActivityLogic(s, store), outbox=outbox)


def _run(evs: Events, memory: int) -> tuple[ReadCountingStore, MemoryOutbox]:
    store, outbox = ReadCountingStore(), MemoryOutbox()
    processor = _processor(store, outbox, memory)
    parse = SPEC.parser(_settings())
    recs = records(SPEC.input_topic_name(_settings()), [_event(u, cs) for u, cs in evs])
    for rec, (user, contents) in zip(recs, evs, strict=True):  # one record a round
        store.lms(user, contents)
        processor.process([parse(rec)])
    return store, outbox


@hyp_settings(max_examples=150, deadline=None)
@given(events)
def test_kept_rows_end_where_reading_every_round_ends(evs: Events) -> None:
    read, out_read = _run(evs, 0)
    kept, out_kept = _run(evs, 1_000)
    assert _state(kept) == _state(read)
    assert _messages(out_kept) == _messages(out_read)
    assert kept.keys_read <= len({u for u, _cs in evs})  # once per enrolment at most
    assert kept.enrolments_read <= read.enrolments_read


def test_reading_every_round_reads_once_per_round() -> None:
    evs: Events = [(MAYA[0], [(SEEDS, 2)]), (MAYA[0], [(ROOTS, 2)])]
    read, _ = _run(evs, 0)
    kept, _ = _run(evs, 1_000)
    assert (read.keys_read, kept.keys_read) == (2, 1)
    assert (read.enrolments_read, kept.enrolments_read) == (2, 1)


@given(
    st.builds(
        rules.EnrolmentRow,
        st.none() | st.integers(-3, 300),
        st.none() | st.integers(-3, 1 << 25),
        st.none() | st.integers(-3, 1 << 63),
    )
)
def test_an_enrolment_row_is_kept_as_it_was(row: rules.EnrolmentRow) -> None:
    assert _unpack_enrolment(_pack_enrolment(row)) == row


def _two_processes(memory: int) -> ReadCountingStore:
    """Ours counts on partition 0, another process on partition 1, then ours again."""
    evs: Events = [(MAYA[0], [(SEEDS, 2)]), (MAYA[0], [(ROOTS, 2)]), (MAYA[0], [(LEAVES, 2)])]
    store, outbox = ReadCountingStore(), MemoryOutbox()
    for user, contents in evs:
        store.lms(user, contents)
    ours, theirs = _processor(store, outbox, memory), _processor(store, outbox, memory)
    s = _settings()
    parse, topic = SPEC.parser(s), SPEC.input_topic_name(s)
    ours.process([parse(records(topic, [_event(*evs[0])])[0])])
    theirs.process([parse(records(topic, [_event(*evs[1])], partition=1)[0])])
    ours.process([parse(records(topic, [_event(*evs[0]), _event(*evs[2])])[1])])
    return store


def test_another_process_counting_for_the_learner_is_read_again() -> None:
    kept, read = _two_processes(1_000), _two_processes(0)
    assert kept.keys_read == 3  # ours, theirs, ours again: the ledger moved
    assert kept.enrolments_read == 3
    assert _state(kept) == _state(read)


# -- ConsumptionMemory alone ------------------------------------------------------------------
def _state_after(rows: dict[str, rules.StoredContent], offset: int) -> RoundState:
    state = RoundState({KEY: rules.Ledger({"t:0": offset})}, set())
    state.consumption[KEY] = rows
    return state


def _work(completed: tuple[str, ...]) -> Any:
    class _W:
        request = rules.EnrolmentRequest(*KEY, completed)

    return _W()


def test_kept_rows_are_used_while_the_ledger_is_as_written() -> None:
    memory = ConsumptionMemory(100)
    rows = {"a": rules.StoredContent(2, 1, 1)}
    memory.remember(_state_after(rows, 5), [_work(("a",))])
    assert memory.recall([KEY], {KEY: rules.Ledger({"t:0": 5})}) == {KEY: rows}
    assert memory.recall([KEY], {KEY: rules.Ledger({"t:0": 7})}) == {}  # someone else wrote
    assert memory.recall([KEY], {KEY: rules.Ledger({"t:0": 5})}) == {}  # and it was forgotten


def test_a_completed_content_is_kept_with_status_2() -> None:
    memory = ConsumptionMemory(100)
    memory.remember(_state_after({"a": rules.StoredContent(1, 1, 1)}, 5), [_work(("a",))])
    kept = memory.recall([KEY], {KEY: rules.Ledger({"t:0": 5})})[KEY]
    assert kept["a"].status == rules.COMPLETED


def test_rows_beyond_capacity_forget_the_least_recently_written_enrolment() -> None:
    memory = ConsumptionMemory(3)
    other = ("u2", "c1", "b1")
    memory.remember(_state_after({"a": rules.StoredContent(2, 1, 1)}, 5), [_work(("a",))])
    state = RoundState({other: rules.Ledger({"t:0": 6})}, set())
    state.consumption[other] = {c: rules.StoredContent(2, 1, 1) for c in "xyz"}

    class _W:
        request = rules.EnrolmentRequest(*other, ("x",))

    memory.remember(state, [_W()])  # type: ignore[list-item]
    assert memory.recall([KEY], {KEY: rules.Ledger({"t:0": 5})}) == {}
    assert other in memory.recall([other], {other: rules.Ledger({"t:0": 6})})


def test_capacity_zero_keeps_nothing() -> None:
    memory = ConsumptionMemory(0)
    memory.remember(_state_after({"a": rules.StoredContent(2, 1, 1)}, 5), [_work(("a",))])
    assert memory.recall([KEY], {KEY: rules.Ledger({"t:0": 5})}) == {}


def test_rows_come_back_as_they_were_kept_whatever_their_values() -> None:
    memory = ConsumptionMemory(100)
    rows = {
        "a": rules.StoredContent(0, 0, 0),
        "b": rules.StoredContent(1, 2**31 - 1, 2**40),
        "c": rules.StoredContent(300, 5, 1),  # outside the packed range: kept as it is
        "d": rules.StoredContent(-1, -2, -3),
    }
    memory.remember(_state_after(dict(rows), 5), [_work(())])
    assert memory.recall([KEY], {KEY: rules.Ledger({"t:0": 5})}) == {KEY: rows}
