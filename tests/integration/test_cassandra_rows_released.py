"""A read's rows are freed when the caller drops them, not at the next full collection
(docs/benchmarks.md, "the rows a future holds")."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from lernflow.config import Settings
from lernflow.kernel.cassandra import CassandraExecutor

READ = "SELECT keyspace_name, table_name FROM system_schema.tables WHERE keyspace_name=?"


@pytest.fixture
def executor(settings: Settings) -> Iterator[CassandraExecutor]:
    ex = CassandraExecutor(settings.cassandra, settings.run, "test")
    yield ex
    ex.close()


def _garbage_rows(executor: CassandraExecutor) -> tuple[int, int]:
    """Rows read, and rows only a reference cycle keeps once the caller has dropped them."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        results = executor.execute_many(READ, [("system",), ("system_schema",)] * 20, "probe")
        read = sum(len(rows) for rows in results)
        row_type = type(results[0][0])
        del results
        gc.collect()
        return read, sum(1 for o in gc.garbage if type(o) is row_type)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_no_row_outlives_its_read_in_a_reference_cycle(executor: CassandraExecutor) -> None:
    read, cyclic = _garbage_rows(executor)
    assert read > 400  # the read returned rows
    assert cyclic == 0
