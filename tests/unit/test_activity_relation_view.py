"""The relation view a round plans with, and unit aggregates planned once per enrolment.

A round derives each content's ancestor units and each collection's required leaves once
(:class:`rules.RelationView`), and plans an enrolment's unit aggregates on its last plan of the
round only (:func:`rules.with_unit_aggregates`); both must plan exactly what a plain mapping and
``module_aggs=True`` at every record plan
(docs/flows/activity-aggregate-updater.md#6-unit-aggregates).
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from lernflow.flows.activity_aggregate_updater import planner, rules
from lernflow.flows.activity_aggregate_updater.flow import SPEC
from lernflow.flows.activity_aggregate_updater.processor import ActivityLogic
from tests.shellkit import MemoryOutbox, records
from tests.unit.test_activity_steps import CountingStore, _event, _settings, _state, events

KEY = ("u", "c", "b1")
CONTENTS = ("a", "b", "x", "y", "z")


def _relation() -> dict[str, frozenset[str]]:
    return {
        "c:c:leafnodes": frozenset({"a", "b", "x", "y"}),
        "c:c:optionalnodes": frozenset({"x"}),
        "c:a:ancestors": frozenset({"u1", "c"}),
        "c:b:ancestors": frozenset({"u2", "c"}),
        "c:x:ancestors": frozenset({"u2", "c"}),
        "c:y:ancestors": frozenset({"u1", "u3", "c"}),
        "c:u1:leafnodes": frozenset({"a", "y"}),
        "c:u2:leafnodes": frozenset({"b", "x"}),
        "c:u2:optionalnodes": frozenset({"x"}),
        "c:u3:leafnodes": frozenset({"y"}),
    }


def _plan(
    relation: rules.RelationView | dict[str, frozenset[str]],
    new: dict[str, int],
    stored: dict[str, rules.StoredContent],
    *,
    module_aggs: bool = True,
) -> rules.EnrolmentPlan:
    return rules.plan_enrolment(
        KEY, new_completions=new, replayed=[], stored=stored, relation=relation,
        enrolment_status=1, enrolment_exists=True, collection_status=None, now_ms=1_000,
        module_aggs=module_aggs, new_id=lambda: "id",
    )  # fmt: skip


stored_rows = st.dictionaries(
    st.sampled_from(CONTENTS),
    st.builds(rules.StoredContent, st.sampled_from([1, 2]), st.integers(0, 3), st.integers(0, 3)),
)
plans_of_records = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(CONTENTS), st.integers(1, 2), min_size=1), stored_rows
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(plans_of_records)
def test_one_view_used_for_many_plans_plans_what_a_plain_mapping_plans(
    plans: list[tuple[dict[str, int], dict[str, rules.StoredContent]]],
) -> None:
    view = rules.RelationView(_relation())
    for new, stored in plans:
        assert _plan(view, new, stored) == _plan(_relation(), new, stored)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(CONTENTS), st.integers(1, 2), min_size=1), stored_rows)
def test_unit_aggregates_added_later_equal_those_planned_with_the_record(
    new: dict[str, int], stored: dict[str, rules.StoredContent]
) -> None:
    without = _plan(_relation(), new, stored, module_aggs=False)
    added = rules.with_unit_aggregates(without, stored, _relation(), 1_000)
    assert added == _plan(_relation(), new, stored)
    if (new.keys() | stored.keys()) - {"z"}:  # z has no ancestors key
        assert any(a.activity_id.startswith("u") for a in added.aggregates)


def test_a_units_key_read_after_a_first_lookup_is_used_then() -> None:
    view = rules.RelationView({})
    assert view.units("c", ["a", "b"]) == set()
    assert view.required("c", "u1") == frozenset()
    view.add(_relation())  # the round reads the keys now
    assert view.units("c", ["b", "y"]) == {"u1", "u2", "u3"}
    assert view.units("c", ["a"]) == {"u1"}
    assert view.required("c", "u1") == frozenset({"a", "y"})
    assert view.required("c", "u2") == frozenset({"b"})


def test_each_ancestors_key_is_asked_for_once_per_course() -> None:
    view = rules.RelationView({})
    assert view.unasked("c", ["a", "b"]) == {"c:a:ancestors", "c:b:ancestors"}
    assert view.unasked("c", ["b", "x"]) == {"c:x:ancestors"}
    assert view.unasked("c", ["a", "x"]) == set()
    assert view.unasked("d", ["a"]) == {"d:a:ancestors"}


# -- relation memory (docs/flows/activity-aggregate-updater.md#75) ----------------------------
def test_relation_memory_shares_one_view_for_its_seconds_then_starts_afresh() -> None:
    memory = planner.RelationMemory(60)
    first = memory.view(100.0)
    assert memory.view(159.9) is first
    assert memory.view(160.0) is not first
    none = planner.RelationMemory(0)
    assert none.view(5.0) is not none.view(5.0)  # 0: every round its own


def test_a_course_read_without_leaf_nodes_is_read_again_next_round() -> None:
    memory = planner.RelationMemory(60)
    view = memory.view(0.0)
    view.add({"c:c:leafnodes": frozenset(), "c:c:optionalnodes": frozenset()})
    view.add({"d:d:leafnodes": frozenset({"a"}), "d:d:optionalnodes": frozenset()})
    view.unasked("c", ["a"]), view.unasked("d", ["a"])
    assert view.required("c", "c") == frozenset()
    assert memory.view(1.0) is view
    assert "c:c:leafnodes" not in view and "d:d:leafnodes" in view
    view.add({"c:c:leafnodes": frozenset({"a"}), "c:c:optionalnodes": frozenset()})
    assert view.required("c", "c") == frozenset({"a"})


class _RelationCountingStore(CountingStore):
    def __init__(self) -> None:
        super().__init__()
        self.relation_keys_read = 0

    def relation_sets(self, keys: Iterable[str]) -> dict[str, frozenset[str]]:
        keys = list(keys)
        self.relation_keys_read += len(keys)
        return super().relation_sets(keys)


def _rounds(seconds: float, evs: list[tuple[str, list[tuple[str, int]]]]) -> _RelationCountingStore:
    s = _settings()
    s = s.with_overrides(activity=s.activity.model_copy(update={"relation_memory_s": seconds}))
    store = _RelationCountingStore()
    processor = SPEC.processor(s, logic=ActivityLogic(s, store), outbox=MemoryOutbox())
    parse = SPEC.parser(s)
    for rec in records(SPEC.input_topic_name(s), [_event(u, cs) for u, cs in evs]):
        processor.process([parse(rec)])  # one record a round
    return store


@settings(max_examples=50, deadline=None)
@given(events)
def test_kept_relation_sets_end_where_reading_every_round_ends(
    evs: list[tuple[str, list[tuple[str, int]]]],
) -> None:
    read, kept = _rounds(0, evs), _rounds(60, evs)
    assert _state(kept) == _state(read)
    assert kept.relation_keys_read <= read.relation_keys_read


def test_a_second_round_reads_no_relation_key_the_first_read() -> None:
    evs = [("lf-user-maya", [("lf-botany-seeds", 2)]), ("lf-user-ravi", [("lf-botany-seeds", 2)])]
    read, kept = _rounds(0, evs), _rounds(60, evs)
    first = _rounds(0, evs[:1]).relation_keys_read
    assert kept.relation_keys_read == first < read.relation_keys_read
    assert _state(kept) == _state(read)
