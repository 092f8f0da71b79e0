"""The physical limit of activity-aggregate-updater on this stack (issue 16 item 2).

The end state the flow must produce (:mod:`bench.endstate`), written with the fewest possible
statements: every changed row once (consumption counters, each course and unit aggregate, the
enrolment), prepared, unlogged, concurrent; no reads, no ledger, no dedup keys, no Kafka
output. The flow's rate over this loop's rate is the ``ratio_to_limit`` of its rows.
"""

from __future__ import annotations

import time
from typing import Any

from bench.endstate import EndState
from config import Settings
from flows.activity_aggregate_updater import rules
from flows.activity_aggregate_updater.store import Statements
from lernflow.kernel.cassandra import CassandraExecutor

#: statements handed to the driver at once (bounds the loop's memory, not its concurrency)
CHUNK = 20_000


def end_state_statements(
    settings: Settings, state: EndState, now_ms: int
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """(CQL, parameter rows) writing ``state``: one statement per changed row."""
    st = Statements.of(settings.cassandra.courses_keyspace, settings.cassandra.hierarchy_keyspace)
    consumption = [(v, c, *key) for key, (v, c) in state.consumption.items()]
    aggregates = [
        ({"completedCount": value}, {"completedCount": now_ms}, rules.ACTIVITY_TYPE, *key)
        for key, value in state.aggregates.items()
    ]
    progress = [
        (e.status, e.progress, dict(e.content_status), now_ms, *key)
        for key, e in state.enrolments.items()
        if not e.completed
    ]
    completion = [
        (e.status, e.progress, dict(e.content_status), now_ms, now_ms, *key)
        for key, e in state.enrolments.items()
        if e.completed
    ]
    return [
        (st.write_consumption, consumption),
        (st.write_aggregate, aggregates),
        (st.write_progress, progress),
        (st.write_completion, completion),
    ]


def write_end_state(settings: Settings, state: EndState) -> float:
    """Write ``state`` with the fewest statements; return the seconds the writes took."""
    cas = CassandraExecutor(settings.cassandra, settings.run, "bench")
    try:
        work = end_state_statements(settings, state, int(time.time() * 1000))
        for cql, _params in work:
            cas.prepare(cql)
        t0 = time.monotonic()
        for cql, params in work:
            for start in range(0, len(params), CHUNK):
                cas.execute_many(cql, params[start : start + CHUNK], "bench limit")
        return time.monotonic() - t0
    finally:
        cas.close()
