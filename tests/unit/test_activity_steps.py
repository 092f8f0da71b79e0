"""Several records of one enrolment in one batch are planned step by step and written once
(docs/flows/activity-aggregate-updater.md#71-one-write-per-enrolment-and-batch).

The reference is the same production orchestration fed one record per batch, which writes
after every record: the end state — consumption rows, enrolment rows, aggregates, applied
offsets, markers, dedup keys — and the messages must be the same, while the merged run writes
each enrolment once.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from lernflow.config import Settings, load_settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.flow import SPEC
from lernflow.flows.activity_aggregate_updater.processor import ActivityLogic
from lernflow.flows.shell import BatchProcessor
from tests.shellkit import MemoryOutbox, records
from tests.unit.test_activity_processor import FLOWERS, LEAVES, MAYA, ROOTS, SEEDS, MemoryStore
from tests.unit.test_activity_processor import _relation as botany

USERS = (MAYA[0], "lf-user-ravi", "lf-user-noor")
CONTENTS = (SEEDS, ROOTS, LEAVES, FLOWERS)


def _settings(filter_processed: bool = True) -> Settings:
    s = load_settings()
    return s.with_overrides(
        topics=s.topics.model_copy(update={"env": "unit-steps"}),
        activity=s.activity.model_copy(update={"filter_processed_enrolments": filter_processed}),
    )


def _event(user: str, contents: list[tuple[str, int]]) -> bytes:
    doc = {
        "eid": "BE_JOB_REQUEST", "ets": 1767225600000, "mid": f"LF.STEP.{user}",
        "actor": {"type": "System", "id": "lernflow test data"},
        "object": {"type": "CourseBatchEnrolment", "id": f"{MAYA[2]}_{user}"},
        "edata": {"contents": [{"contentId": c, "status": s} for c, s in contents],
                  "action": "batch-enrolment-update", "iteration": 1, "batchId": MAYA[2],
                  "userId": user, "courseId": MAYA[1]},
    }  # fmt: skip
    return json.dumps(doc).encode()


events = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.lists(st.tuples(st.sampled_from(CONTENTS), st.sampled_from([2, 2, 1])), min_size=1,
                 max_size=3),
    ),
    min_size=1,
    max_size=12,
)  # fmt: skip


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__(botany())
        self.enrolment_writes = 0

    def write_enrolments(self, writes: Any) -> None:
        self.enrolment_writes += len(writes)
        super().write_enrolments(writes)


def _process(
    batches: list[list[int]], payloads: list[bytes], filter_processed: bool = True
) -> tuple[CountingStore, MemoryOutbox]:
    s = _settings(filter_processed)
    store, outbox = CountingStore(), MemoryOutbox()
    processor: BatchProcessor[Any] = SPEC.processor(s, logic=ActivityLogic(s, store), outbox=outbox)
    parse = SPEC.parser(s)
    recs = records(SPEC.input_topic_name(s), payloads)
    for batch in batches:
        processor.process([parse(recs[i]) for i in batch])
    return store, outbox


def _state(store: MemoryStore) -> dict[str, Any]:
    enrolments = {
        k: {c: v for c, v in row.items() if c != "completedon"}
        | {"completed": "completedon" in row}
        for k, row in store.enrolment_rows.items()
    }
    return {
        "consumption": store.consumption_rows, "enrolments": enrolments,
        "aggregates": store.aggregates, "ledger": store.ledger, "markers": store.markers,
        "dedup": store.dedup,
    }  # fmt: skip


def _messages(outbox: MemoryOutbox) -> Counter[tuple[str, str, str]]:
    out: Counter[tuple[str, str, str]] = Counter()
    for m in outbox.messages:
        topic, v = m.topic, json.loads(m.value)
        if True:
            kind = v.get("edata", {}).get("type") or v.get("edata", {}).get("action", "")
            who = v.get("object", {}).get("id", "")
            out[(topic.rsplit(".", 2)[-2], str(kind), str(who))] += 1
    return out


@hyp_settings(max_examples=150, deadline=None)
@given(events)
def test_one_batch_ends_where_one_record_at_a_time_ends(
    evs: list[tuple[str, list[tuple[str, int]]]],
) -> None:
    payloads = [_event(u, cs) for u, cs in evs]
    one_by_one, out_a = _process([[i] for i in range(len(payloads))], payloads)
    together, out_b = _process([list(range(len(payloads)))], payloads)
    assert _state(together) == _state(one_by_one)
    assert _messages(out_b) == _messages(out_a)
    assert together.enrolment_writes <= len({u for u, _cs in evs})


def test_a_learners_three_records_in_one_batch_are_written_once() -> None:
    payloads = [_event(MAYA[0], [(c, 2)]) for c in (SEEDS, ROOTS, LEAVES)]
    store, _out = _process([[0, 1, 2]], payloads)
    assert store.enrolment_writes == 1
    reference, _ = _process([[0], [1], [2]], payloads)
    assert reference.enrolment_writes == 3
    assert _state(store) == _state(reference)


@pytest.mark.parametrize("filter_processed", [True, False])
def test_a_completion_followed_by_more_records_keeps_its_completion_and_certificate(
    filter_processed: bool,
) -> None:
    payloads = [
        _event(MAYA[0], [(SEEDS, 2), (ROOTS, 2), (LEAVES, 2)]),
        _event(MAYA[0], [(FLOWERS, 2)]),
        _event(MAYA[0], [(SEEDS, 2)]),
    ]
    store, out = _process([[0, 1, 2]], payloads, filter_processed)
    reference, out_ref = _process([[0], [1], [2]], payloads, filter_processed)
    assert "completedon" in store.enrolment_rows[MAYA]
    assert store.enrolment_rows[MAYA]["status"] == 2
    assert _state(store) == _state(reference)
    assert _messages(out) == _messages(out_ref)
    certs = [k for k in _messages(out) if k[1] == "issue-certificate"]
    assert len(certs) == 1
    assert store.enrolment_writes == 1


def test_merged_writes_keep_an_earlier_completion_and_the_highest_offsets() -> None:
    key = MAYA
    done = rules.EnrolmentUpdate(2, 100, {SEEDS: 2}, 1_700_000_000_000, 1)
    later = rules.EnrolmentUpdate(2, 100, {SEEDS: 2, ROOTS: 2}, None, 2)
    seeds = rules.MergedContent(SEEDS, 2, 1, 1)
    seeds_again = rules.MergedContent(SEEDS, 2, 2, 2)
    agg = rules.AggregateUpdate(MAYA[1], MAYA[0], "cb:b", 1.0, 1)
    agg_later = rules.AggregateUpdate(MAYA[1], MAYA[0], "cb:b", 2.0, 2)
    [merged] = rules.merge_writes([
        rules.EnrolmentWrite(key, (seeds,), (rules.AppliedOffset("t:0", 4),), done, (agg,)),
        rules.EnrolmentWrite(key, (seeds_again,), (rules.AppliedOffset("t:0", 9),), later,
                             (agg_later,)),
        rules.EnrolmentWrite(key, (), (rules.AppliedOffset("t:1", 2),), None, ()),
    ])  # fmt: skip
    assert merged.counters == (seeds_again,)
    assert merged.applied == (rules.AppliedOffset("t:0", 9), rules.AppliedOffset("t:1", 2))
    assert merged.enrolment == rules.EnrolmentUpdate(
        2, 100, {SEEDS: 2, ROOTS: 2}, 1_700_000_000_000, 2
    )
    assert merged.pending_since_ms == 1_700_000_000_000
    assert merged.aggregates == (agg_later,)
