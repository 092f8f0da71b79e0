"""Joining enrolments' logged batches keeps every group whole and in order, under a size."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from lernflow.kernel.cassandra import combine, estimated_size

_stmt = st.tuples(
    st.sampled_from(["UPDATE a SET x=? WHERE k=?", "UPDATE b SET m=? WHERE k=?"]),
    st.tuples(st.integers(), st.text(max_size=40)),
)
_groups = st.lists(st.lists(_stmt, max_size=6), max_size=30)


def _size(group: Sequence[tuple[str, Sequence[object]]]) -> int:
    return sum(len(c) // 8 + estimated_size(p) for c, p in group)


@given(_groups, st.integers(0, 3000))
def test_groups_are_kept_whole_in_order_and_joined_under_the_limit(
    groups: list[list[tuple[str, tuple[object, ...]]]], limit: int
) -> None:
    joined = combine(groups, limit)
    assert [s for b in joined for s in b] == [s for g in groups for s in g]
    boundaries = {0}
    at = 0
    for g in groups:
        at += len(g)
        boundaries.add(at)
    at = 0
    for b in joined:
        at += len(b)
        assert at in boundaries  # a batch ends where a group ends
    nonempty = [g for g in groups if g]
    for b in joined:
        if _size(b) > limit:  # only a lone group may exceed the limit
            assert any(b == g for g in nonempty)


def test_zero_limit_keeps_one_batch_per_group() -> None:
    groups = [[("q", (1,))], [], [("q", (2,)), ("q", (3,))]]
    assert combine(groups, 0) == [[("q", (1,))], [("q", (2,)), ("q", (3,))]]


def test_sizes_grow_with_strings_and_maps() -> None:
    assert estimated_size(("x" * 100,)) > estimated_size(("x",))
    assert estimated_size(({"do_1": 2, "do_2": 2},)) > estimated_size(({"do_1": 2},))
