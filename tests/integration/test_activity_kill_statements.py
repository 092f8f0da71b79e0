"""The kill-after-every-statement test on the real Cassandra and Redis.

Same rounds as tests/unit/test_activity_kill_statements.py, through the production store
(logged batches with the ledger row's static columns, ``userid IN ?`` reads, pipelined SETEX):
after statement k the process "dies", a fresh logic replays from the batch that died, and the
tables, the ledger and the dedup keys equal the clean run's, each certificate request and
enrol-complete AUDIT sent once. Kafka is the in-memory outbox here (its ``mid`` set is what the
store's certificate check reads), so a round's produce call counts as one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lernflow.config import Settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.flow import SPEC
from lernflow.flows.activity_aggregate_updater.processor import ActivityLogic
from lernflow.flows.activity_aggregate_updater.store import ActivityServerStore
from lernflow.kernel.clients import cassandra_session, redis_client
from tests.integration.test_activity_flow import (
    NOOR,
    _rows,
    dedup_keys,
    seed_cassandra,
    seed_relation_cache,
    state,
)
from tests.unit.test_activity_kill_statements import (
    Budget,
    Crash,
    StatementOutbox,
    _batches,
    _completions,
)

TABLES = (
    "user_content_consumption", "user_activity_agg", "user_enrolments",
    "lernflow_activity_applied",
)  # fmt: skip


class StackStatementStore(ActivityServerStore):
    """The production store whose writes are issued one statement at a time until the budget
    ends (an enrolment's logged batch is one statement)."""

    def __init__(self, settings: Settings, budget: Budget, mids: set[str]) -> None:
        super().__init__(settings)
        self.budget = budget
        self.mids = mids

    def write_enrolments(self, writes: Sequence[rules.EnrolmentWrite]) -> None:
        for w in writes:
            self.budget.spend()
            super().write_enrolments([w])

    def delete_markers(self, keys: Sequence[tuple[str, str, str]]) -> None:
        for k in keys:
            self.budget.spend()
            super().delete_markers([k])

    def store_checksums(self, checksums: Iterable[str]) -> None:
        for c in sorted(set(checksums)):
            self.budget.spend()
            super().store_checksums([c])

    def certificate_mids(self, since_ms: int) -> set[str]:
        return set(self.mids)


class _Log:
    """What :class:`StatementOutbox` needs of a store: the call log, the ``mid`` set, a budget."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.mids: set[str] = set()
        self.budget = Budget()


def _reset(settings: Settings) -> None:
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        for t in TABLES:
            session.execute(f"TRUNCATE {t}", timeout=60)
    finally:
        cluster.shutdown()
    client = redis_client(settings.redis, settings.redis.dedup_db)
    client.flushdb()
    client.close()
    seed_cassandra(settings)
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        session.execute(
            "INSERT INTO user_enrolments (userid, courseid, batchid, status) VALUES (%s,%s,%s,1)",
            NOOR,
        )
    finally:
        cluster.shutdown()


def _run(settings: Settings, log: _Log, outbox: StatementOutbox, first: int) -> int | None:
    store = StackStatementStore(settings, log.budget, log.mids)
    processor = SPEC.processor(settings, logic=ActivityLogic(settings, store), outbox=outbox)
    parse = SPEC.parser(settings)
    try:
        for i, batch in enumerate(_batches(settings)[first:], start=first):
            try:
                processor.process([parse(r) for r in batch])
            except Crash:
                return i
        return None
    finally:
        store.close()


def _everything(settings: Settings) -> tuple[Any, ...]:
    ledger = sorted(
        (r.userid, r.courseid, tuple(sorted((r.offsets or {}).items())), r.completion_record)
        for r in _rows(
            settings,
            "SELECT userid, courseid, offsets, completion_record FROM lernflow_activity_applied",
        )
    )
    return state(settings), ledger, dedup_keys(settings)


def test_a_kill_after_any_statement_on_the_stack_then_a_replay_ends_as_the_clean_run(
    settings: Settings,
) -> None:
    seed_relation_cache(settings)
    _reset(settings)
    log = _Log()
    outbox = StatementOutbox(log)  # type: ignore[arg-type]
    assert _run(settings, log, outbox, 0) is None
    clean, clean_sent, n = _everything(settings), _completions(settings, outbox), log.budget.applied
    assert clean_sent == (["lf-user-maya", "lf-user-noor"], ["lf-user-maya", "lf-user-noor"])
    for k in range(1, n):
        _reset(settings)
        log = _Log()
        outbox = StatementOutbox(log)  # type: ignore[arg-type]
        log.budget.left = k
        died = _run(settings, log, outbox, 0)
        assert died is not None, k
        log.budget.left = None
        assert _run(settings, log, outbox, died) is None
        assert _everything(settings) == clean, f"killed after statement {k} of {n}"
        assert _completions(settings, outbox) == clean_sent, f"killed after statement {k}"
