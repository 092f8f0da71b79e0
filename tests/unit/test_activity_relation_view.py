"""The relation view a round plans with, and unit aggregates planned once per enrolment.

A round derives each content's ancestor units and each collection's required leaves once
(:class:`rules.RelationView`), and plans an enrolment's unit aggregates on its last plan of the
round only (:func:`rules.with_unit_aggregates`); both must plan exactly what a plain mapping and
``module_aggs=True`` at every record plan
(docs/flows/activity-aggregate-updater.md#6-unit-aggregates).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lernflow.flows.activity_aggregate_updater import rules

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
records = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(CONTENTS), st.integers(1, 2), min_size=1), stored_rows
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(records)
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
    sets: dict[str, frozenset[str]] = {}
    view = rules.RelationView(sets)
    assert view.units("c", ["a", "b"]) == set()
    assert view.required("c", "u1") == frozenset()
    sets.update(_relation())  # the round reads the keys now
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
