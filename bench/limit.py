"""The physical limit of activity-aggregate-updater on this stack (issue 16 item 2).

The end state the flow must produce (:mod:`bench.endstate`), written with the fewest possible
statements: every changed row once (consumption counters, each course and unit aggregate, the
enrolment), prepared, unlogged, concurrent; no reads, no ledger, no dedup keys, no Kafka
output. Two ways: one request per row, or each enrolment's rows in one UNLOGGED batch (joined
up to the flow's ``BATCH_BYTES``: fewer requests, the driver's per-request CPU being what
bounds a Python client). The flow's rate over the faster one's is its ``ratio_to_limit``.
"""

from __future__ import annotations

import time
from typing import Any

from bench.endstate import EndState
from lernflow.config import Settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.store import BATCH_BYTES, Statements
from lernflow.kernel.cassandra import CassandraExecutor, combine

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


def write_end_state(settings: Settings, state: EndState, batched: bool = False) -> float:
    """Write ``state`` with the fewest statements (``batched``: one UNLOGGED batch per
    enrolment, joined); return the seconds the writes took."""
    cas = CassandraExecutor(settings.cassandra, settings.run, "bench")
    try:
        work = end_state_statements(settings, state, int(time.time() * 1000))
        for cql, _params in work:
            cas.prepare(cql)
        t0 = time.monotonic()
        if batched:
            _unlogged_batches(cas, settings, _by_enrolment(work))
        else:
            for cql, params in work:
                for start in range(0, len(params), CHUNK):
                    cas.execute_many(cql, params[start : start + CHUNK], "bench limit")
        return time.monotonic() - t0
    finally:
        cas.close()


def _by_enrolment(
    work: list[tuple[str, list[tuple[Any, ...]]]],
) -> list[list[tuple[str, tuple[Any, ...]]]]:
    """The statements grouped by enrolment (user, course, batch; an aggregate's context
    ``cb:<batch>`` and its user name it)."""
    groups: dict[tuple[str, str], list[tuple[str, tuple[Any, ...]]]] = {}
    (cons_cql, cons), (agg_cql, aggs), (prog_cql, prog), (done_cql, done) = work
    for p in cons:  # (viewcount, completedcount, user, course, batch, content)
        groups.setdefault((p[2], p[4]), []).append((cons_cql, p))
    for p in aggs:  # (aggregates, updated, type, activity, user, "cb:<batch>")
        groups.setdefault((p[4], p[5].removeprefix("cb:")), []).append((agg_cql, p))
    for cql, rows in ((prog_cql, prog), (done_cql, done)):
        for p in rows:  # (..., user, course, batch)
            groups.setdefault((p[-3], p[-1]), []).append((cql, p))
    return list(groups.values())


def _unlogged_batches(
    cas: CassandraExecutor, settings: Settings, groups: list[list[tuple[str, tuple[Any, ...]]]]
) -> None:
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import BatchStatement, BatchType

    for start in range(0, len(groups), CHUNK):
        statements = []
        for group in combine(groups[start : start + CHUNK], BATCH_BYTES):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for cql, params in group:
                batch.add(cas.prepare(cql), params)
            statements.append((batch, ()))
        execute_concurrent(
            cas.session, statements, concurrency=settings.cassandra.concurrency,
            raise_on_first_error=True,
        )  # fmt: skip
