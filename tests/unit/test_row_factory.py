"""Cassandra rows keep the driver's named-tuple shape while sharing one class per column list."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lernflow.kernel.clients import row_factory


def test_rows_read_like_the_drivers_named_tuples() -> None:
    rows = row_factory(["userid", "writetime(status)", "count"], [("u1", 17, 3)])
    assert rows[0].userid == "u1" and rows[0].writetime_status == 17 and rows[0].count == 3
    assert tuple(rows[0]) == ("u1", 17, 3)


def test_one_class_serves_every_result_with_the_same_columns() -> None:
    a = row_factory(["a", "b"], [(1, 2)])
    b = row_factory(["a", "b"], [(3, 4), (5, 6)])
    assert type(a[0]) is type(b[1])


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6))
def test_any_column_names_give_a_usable_row(names: list[str]) -> None:
    (row,) = row_factory(names, [tuple(range(len(names)))])
    assert tuple(row) == tuple(range(len(names)))
