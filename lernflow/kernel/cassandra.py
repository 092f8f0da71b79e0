"""Batched Cassandra access for flows: prepared statements, concurrent execution, retries.

One :class:`CassandraExecutor` per process (the driver's session is thread-safe). Statements
are prepared once and cached by their CQL text; ``execute_many`` runs one statement over many
parameter tuples concurrently and retries the whole call on transient errors. Every write a
flow issues is an idempotent upsert, so a retry after a partial failure is safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from lernflow.config import CassandraSettings, RunSettings
from lernflow.kernel import metrics
from lernflow.kernel.clients import cassandra_session
from lernflow.kernel.retry import retry

logger = logging.getLogger(__name__)


def estimated_size(params: Sequence[Any]) -> int:
    """A rough byte size of bound values (strings, numbers, maps, lists), to size batches."""
    size = 0
    for v in params:
        if isinstance(v, str | bytes):
            size += len(v) + 4
        elif isinstance(v, dict):
            size += 8 + estimated_size(list(v)) + estimated_size(list(v.values()))
        elif isinstance(v, list | tuple | set | frozenset):
            size += 8 + estimated_size(list(v))
        else:
            size += 12
    return size


def combine(
    groups: Sequence[Sequence[tuple[str, Sequence[Any]]]], max_bytes: int
) -> list[list[tuple[str, Sequence[Any]]]]:
    """Join consecutive groups while the joined estimated size stays within ``max_bytes``.

    Groups are never split; a group over the limit alone stays alone. ``max_bytes`` 0: no
    joining. Empty groups are dropped.
    """
    out: list[list[tuple[str, Sequence[Any]]]] = []
    current: list[tuple[str, Sequence[Any]]] = []
    current_size = 0
    for group in groups:
        if not group:
            continue
        size = sum(len(cql) // 8 + estimated_size(p) for cql, p in group)
        if current and (max_bytes <= 0 or current_size + size > max_bytes):
            out.append(current)
            current, current_size = [], 0
        current = [*current, *group]
        current_size += size
    if current:
        out.append(current)
    return out


def _release(result: Any) -> None:
    """Drop the rows a finished request's future still holds.

    The driver's ``ResponseFuture`` and its timeout timer refer to each other, so a future,
    and with it every row of its result, outlives the call until a full garbage collection,
    which a flow process runs rarely: an activity replay held ~1M dead rows and its RSS grew
    by ~70 MiB per 440,000 rows read (docs/benchmarks.md, "the rows a future holds").
    """
    future = getattr(result, "response_future", None)
    if future is not None and hasattr(future, "_final_result"):
        future._final_result = None


#: a new session after this many failed attempts in a row (:meth:`CassandraExecutor._failed`)
RECONNECT_AFTER = 3


class CassandraExecutor:
    """Prepared, concurrent, retried statement execution against one keyspace."""

    def __init__(self, settings: CassandraSettings, run: RunSettings, flow: str) -> None:
        self._settings = settings
        self._run = run
        self._flow = flow
        self._cluster, self._session = retry(
            lambda: cassandra_session(settings), run, "connect to Cassandra"
        )
        self._prepared: dict[str, Any] = {}
        self._failures = 0  # attempts failed in a row

    @property
    def session(self) -> Any:
        """The underlying driver session."""
        return self._session

    def prepare(self, cql: str) -> Any:
        """Return the prepared statement for ``cql`` (prepared once)."""
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = retry(lambda: self._session.prepare(cql), self._run, "prepare CQL")
            self._prepared[cql] = stmt
        return stmt

    def execute_many(self, cql: str, params: Sequence[Sequence[Any]], what: str) -> list[Any]:
        """Run ``cql`` once per parameter tuple, concurrently; return the result rows per call."""
        if not params:
            return []
        from cassandra.concurrent import execute_concurrent_with_args

        def attempt() -> list[Any]:
            results = execute_concurrent_with_args(
                self._session,
                self.prepare(cql),
                params,
                concurrency=self._settings.concurrency,
                raise_on_first_error=True,
            )
            rows = [list(r.result_or_exc) for r in results]
            for r in results:
                _release(r.result_or_exc)
            return rows

        t0 = time.perf_counter()
        out = retry(attempt, self._run, f"Cassandra {what}", on_retry=self._failed)
        self._failures = 0
        metrics.SINK_WRITE_SECONDS.labels(self._flow, "cassandra").observe(time.perf_counter() - t0)
        return out

    def execute_logged_batches(
        self,
        batches: Sequence[Sequence[tuple[str, Sequence[Any]]]],
        what: str,
        combine_bytes: int = 0,
    ) -> None:
        """Run each group of ``(cql, params)`` as one LOGGED batch (all or nothing), concurrently.

        With ``combine_bytes``, consecutive groups share one batch while their estimated size
        stays under it: each group stays all-or-nothing (so does the union), and there are
        fewer requests — the driver's per-request CPU is what bounds a flow process. Keep it
        under Cassandra's ``batch_size_warn_threshold`` (5 KiB by default).
        """
        if not batches:
            return
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchStatement, BatchType

        groups = combine(batches, combine_bytes)

        def attempt() -> None:
            statements = []  # prepared on the session of this attempt (see _failed)
            for group in groups:
                batch = BatchStatement(batch_type=BatchType.LOGGED)
                for cql, params in group:
                    batch.add(self.prepare(cql), params)
                statements.append((batch, ()))
            execute_concurrent(
                self._session, statements, concurrency=self._settings.concurrency,
                raise_on_first_error=True,
            )  # fmt: skip

        t0 = time.perf_counter()
        retry(attempt, self._run, f"Cassandra {what}", on_retry=self._failed)
        self._failures = 0
        metrics.SINK_WRITE_SECONDS.labels(self._flow, "cassandra").observe(time.perf_counter() - t0)

    def _failed(self, exc: BaseException) -> None:
        """Count a failed attempt; every ``RECONNECT_AFTER`` in a row, start a new session.

        After Cassandra was paused, the driver can keep a pool whose connections it declared
        dead by heartbeat and never hand out a new one: every request then waits out its
        timeout (docs/reliability.md). A new session connects afresh; while the server is
        still away the attempt fails and the old session stays.
        """
        metrics.RETRIES.labels(self._flow, "cassandra").inc()
        self._failures += 1
        if self._failures % RECONNECT_AFTER:
            return
        try:
            cluster, session = cassandra_session(self._settings)
        except Exception as new_exc:  # the retry goes on with the old session
            logger.warning("Cassandra: a new session failed too (%s)", new_exc)
            return
        logger.warning(
            "Cassandra: %d attempts in a row failed (last: %s); using a new session",
            self._failures, exc,
        )  # fmt: skip
        old = self._cluster
        self._cluster, self._session, self._prepared = cluster, session, {}
        old.shutdown()

    def close(self) -> None:
        """Shut the driver down."""
        self._cluster.shutdown()
