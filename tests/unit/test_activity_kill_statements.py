"""activity-aggregate-updater killed after every single statement, then replayed.

The store applies its writes one statement at a time with Cassandra's and Redis's semantics
(an enrolment's logged batch is one statement: all or nothing; each dedup SETEX and each
marker delete is one; each produce call is one, acknowledged as a whole) and "dies" after the
k-th. A fresh logic then replays the records — from the first batch, or from the batch that
died, as recovery from a snapshot does — and the end state must equal the clean run's, with
no certificate request and no enrol-complete AUDIT counted twice
(docs/flows/activity-aggregate-updater.md#72-the-ledger-row).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from lernflow.config import Settings, load_settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.flow import SPEC
from lernflow.flows.activity_aggregate_updater.processor import ActivityLogic
from lernflow.sinks.kafka_producer import OutMessage
from lernflow.sources.kafka import KafkaRecord
from tests.paths import DATA
from tests.unit.test_activity_processor import LoggingOutbox, MemoryStore

AX = DATA / "activity"
NOOR = ("lf-user-noor", "lf-course-optics", "lf-batch-optics-01")
# three batches, offsets 0..6 of one partition: Maya completes in the second, Noor in the first
BATCHES = [
    ["t_a1_1_seeds", "d_a2_two_completed_in_one_message"],
    ["t_a1_2_roots", "d_a1_one_completed_no_enrolment", "t_a1_3_leaves"],
    ["d_a4_three_of_four_completed", "d_a3_other_action"],
]


class Crash(BaseException):
    """The process dies (not an ``Exception``: nothing in the flow may catch it)."""


@dataclasses.dataclass
class Budget:
    """How many statements may still be applied before the process dies (None: no limit)."""

    left: int | None = None
    applied: int = 0

    def spend(self) -> None:
        if self.left is not None and self.left <= 0:
            raise Crash
        self.applied += 1
        if self.left is not None:
            self.left -= 1


class StatementStore(MemoryStore):
    """:class:`MemoryStore` whose writes are statements applied one by one until the budget ends."""

    def __init__(self) -> None:
        relation: dict[str, list[str]] = {}
        for name in ("botany", "geology", "optics"):
            relation.update(json.loads((AX / "relation_cache" / f"{name}.json").read_text()))
        super().__init__(relation)
        self.enrolment_rows[NOOR] = {"status": 1}
        self.budget = Budget()

    def write_enrolments(self, writes: Sequence[rules.EnrolmentWrite]) -> None:
        for w in writes:  # each enrolment's logged batch: all or nothing
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


class StatementOutbox(LoggingOutbox):
    """Kafka: each produce call is one statement (the shell waits for all its acknowledgements)."""

    def __init__(self, store: StatementStore) -> None:
        super().__init__(store.log, store.mids)
        self.budget = store.budget

    def produce_all(self, messages: Sequence[OutMessage]) -> None:
        self.budget.spend()
        super().produce_all(messages)


@pytest.fixture
def settings() -> Settings:
    s = load_settings()
    return s.with_overrides(topics=s.topics.model_copy(update={"env": "unit-kill"}))


def _batches(settings: Settings) -> list[list[KafkaRecord]]:
    topic, offset, out = SPEC.input_topic_name(settings), 0, []
    for names in BATCHES:
        batch = []
        for n in names:
            value = (AX / "events" / f"{n}.json").read_bytes().strip()
            batch.append(KafkaRecord(topic, 0, offset, None, value, 0))
            offset += 1
        out.append(batch)
    return out


def _process(
    settings: Settings, store: StatementStore, outbox: StatementOutbox, first: int = 0
) -> int | None:
    """Run the batches from ``first`` with a fresh logic; the batch it died in, or None."""
    processor = SPEC.processor(settings, logic=ActivityLogic(settings, store), outbox=outbox)
    parse = SPEC.parser(settings)
    for i, batch in enumerate(_batches(settings)[first:], start=first):
        try:
            processor.process([parse(r) for r in batch])
        except Crash:
            return i
    return None


def _end_state(store: StatementStore) -> dict[str, Any]:
    enrolments = {
        k: {**row, "completedon": row.get("completedon") is not None}
        for k, row in store.enrolment_rows.items()
    }  # the completion time is the clock's
    return {
        "consumption": store.consumption_rows,
        "aggregates": store.aggregates,
        "enrolments": enrolments,
        "ledger": store.ledger,
        "completed_by": {k: c.record for k, c in store.completions.items()},
        "markers": store.markers,
        "dedup": store.dedup,
    }


def _completions(settings: Settings, outbox: StatementOutbox) -> tuple[list[str], list[str]]:
    t = settings.topics
    certs = [c["edata"]["userIds"][0] for c in outbox.on(t.full(t.issue_certificate_request))]
    enrol = [
        a["object"]["id"] for a in outbox.on(t.full(t.telemetry_raw))
        if a["edata"]["type"] == "enrol-complete"
    ]  # fmt: skip
    return sorted(certs), sorted(enrol)


def _clean(settings: Settings) -> tuple[dict[str, Any], tuple[list[str], list[str]], int]:
    store = StatementStore()
    outbox = StatementOutbox(store)
    assert _process(settings, store, outbox) is None
    return _end_state(store), _completions(settings, outbox), store.budget.applied


@pytest.mark.parametrize("resume", ["from-start", "from-the-batch-that-died"])
def test_a_kill_after_any_statement_then_a_replay_ends_as_the_clean_run(
    settings: Settings, resume: str
) -> None:
    state, completions, n = _clean(settings)
    assert completions == (["lf-user-maya", "lf-user-noor"], ["lf-user-maya", "lf-user-noor"])
    assert n > 10  # batches, sends and dedup keys of three rounds
    for k in range(1, n + 1):
        store = StatementStore()
        outbox = StatementOutbox(store)
        store.budget.left = k
        died = _process(settings, store, outbox)
        assert (died is None) == (k == n), k
        store.budget.left = None
        first = 0 if resume == "from-start" or died is None else died
        assert _process(settings, store, outbox, first) is None
        assert _end_state(store) == state, f"killed after statement {k} of {n}"
        assert _completions(settings, outbox) == completions, f"killed after statement {k}"
