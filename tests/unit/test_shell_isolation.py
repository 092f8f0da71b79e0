"""The processor shell isolates the events a server rejects, and parks each event once.

Issue 15 D1: a round that fails with an error that is not transient is run again in halves
until the items that fail alone are found; those are parked with the server's message, the rest
applied, in order per key. A transient error still stops the flow. Parking is idempotent by
origin (topic, partition, offset): an item already on the failed topic is not parked again.
"""

from __future__ import annotations

import errno
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from cassandra import InvalidRequest, OperationTimedOut, Unauthorized
from confluent_kafka import KafkaError, KafkaException

from lernflow.config import load_settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.flow import SPEC as ACTIVITY
from lernflow.flows.activity_aggregate_updater.processor import ActivityLogic
from lernflow.flows.parked import ParkedOrigins
from lernflow.flows.shell import BatchProcessor, Item, Round, error_message
from lernflow.kernel.dlq import Origin, envelope_headers, origin_of
from lernflow.kernel.errors import InvalidEvent, TransientError
from lernflow.kernel.retry import is_event_fault
from lernflow.sources.kafka import KafkaRecord
from tests.shellkit import MemoryOutbox, metric, run
from tests.unit.test_activity_processor import MAYA, MemoryStore, _events, _relation

FLOW = "unit-isolation"
FAILED = "unit.isolation.failed"
INPUT = "unit.isolation.input"
KEY_TOO_LONG = (
    'Error from server: code=2200 [Invalid query] message="Key length of 70015 is longer '
    'than maximum of 65535"'
)


@dataclass(frozen=True)
class Ev:
    """A parsed test event: an entity key and an id the store may reject."""

    key: str
    id: str


@dataclass
class MemoryLogic:
    """A FlowLogic over an in-memory store that rejects some ids as a server would."""

    reject: set[str] = field(default_factory=set)
    transient: set[str] = field(default_factory=set)
    park_ids: set[str] = field(default_factory=set)  # parked by the flow's own rules
    skip_ids: set[str] = field(default_factory=set)  # skipped by the flow's own rules
    applied: list[str] = field(default_factory=list)
    rounds_run: list[list[str]] = field(default_factory=list)

    def round_key(self, value: Ev) -> object:
        return value.key

    def run_round(self, round_: Round[Ev]) -> None:
        ids = [e.id for _i, e in round_.values()]
        self.rounds_run.append(ids)
        for item, e in round_.values():
            if e.id in self.park_ids:
                round_.park(item, "rule says no", "InvalidEvent")
            if e.id in self.skip_ids:
                round_.skip("rule-skip")
        if self.transient & set(ids):
            raise OperationTimedOut("Cassandra timed out")
        if self.reject & set(ids):  # a batched write: the whole request fails
            raise InvalidRequest(KEY_TOO_LONG)
        self.applied.extend(ids)

    def close(self) -> None:
        return None


def _item(offset: int, ev: Ev | None, error: str | None = None) -> Item[Ev]:
    record = KafkaRecord(INPUT, 0, offset, None, json.dumps({"id": ev and ev.id}).encode(), 0)
    return Item(record, value=ev, error=error, shard_entity=ev.key if ev else "")


def _items(*evs: Ev) -> list[Item[Ev]]:
    return [_item(n, e) for n, e in enumerate(evs)]


def _processor(
    logic: MemoryLogic, parked: ParkedOrigins | None = None
) -> tuple[BatchProcessor[Ev], MemoryOutbox]:
    outbox = MemoryOutbox()
    return BatchProcessor(FLOW, FAILED, logic, outbox, parked), outbox


def _failed(**labels: str) -> float:
    return metric("lernflow_events_failed_total", flow=FLOW, **labels)


def _skipped(kind: str) -> float:
    return metric("lernflow_events_skipped_total", flow=FLOW, reason_kind=kind)


def test_rejected_items_are_isolated_and_parked_and_the_rest_applied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    evs = [Ev(f"k{n}", f"id{n}") for n in range(10)]
    logic = MemoryLogic(reject={"id3", "id7"})
    processor, outbox = _processor(logic)
    before = _failed(reason_kind="InvalidRequest")
    with caplog.at_level(logging.WARNING, logger="lernflow.flows.shell"):
        processor.process(_items(*evs))
    assert sorted(logic.applied) == sorted(f"id{n}" for n in range(10) if n not in (3, 7))
    parked = outbox.on(FAILED)
    assert [p["source"]["offset"] for p in parked] == [3, 7]
    assert {p["error_type"] for p in parked} == {"InvalidRequest"}
    assert all("Key length of 70015 is longer than maximum of 65535" in p["reason"] for p in parked)
    assert all("Traceback" not in p["reason"] for p in parked)
    assert _failed(reason_kind="InvalidRequest") == before + 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "isolated" in warnings[0].getMessage()


def test_a_round_with_no_rejected_item_runs_once() -> None:
    logic = MemoryLogic()
    processor, outbox = _processor(logic)
    processor.process(_items(*(Ev(f"k{n}", f"id{n}") for n in range(8))))
    assert len(logic.rounds_run) == 1
    assert outbox.messages == []


def test_isolation_keeps_each_keys_items_in_order() -> None:
    # key a: a1, a2 (rejected), a3; key b: b1, b2 — rounds [a1 b1] [a2 b2] [a3]
    evs = [Ev("a", "a1"), Ev("b", "b1"), Ev("a", "a2"), Ev("b", "b2"), Ev("a", "a3")]
    logic = MemoryLogic(reject={"a2"})
    processor, outbox = _processor(logic)
    processor.process(_items(*evs))
    assert logic.applied == ["a1", "b1", "b2", "a3"]
    assert [p["source"]["offset"] for p in outbox.on(FAILED)] == [2]


def test_a_transient_error_still_stops_the_flow_and_parks_nothing() -> None:
    logic = MemoryLogic(reject={"id1"}, transient={"id2"})
    processor, outbox = _processor(logic)
    with pytest.raises(OperationTimedOut):
        processor.process(_items(*(Ev(f"k{n}", f"id{n}") for n in range(4))))
    assert outbox.on(FAILED) == []


def test_a_full_disk_stops_the_flow_instead_of_parking_every_event() -> None:
    class DiskFull(MemoryLogic):
        def run_round(self, round_: Round[Ev]) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    processor, outbox = _processor(DiskFull())
    with pytest.raises(OSError, match="No space"):
        processor.process(_items(*(Ev(f"k{n}", f"id{n}") for n in range(4))))
    assert outbox.on(FAILED) == []


def test_parks_and_skips_of_a_failed_round_count_once() -> None:
    # id1 is parked and id2 skipped by the rules, in a round that id3 makes fail
    logic = MemoryLogic(reject={"id3"}, park_ids={"id1"}, skip_ids={"id2"})
    processor, outbox = _processor(logic)
    skipped_before = _skipped("rule-skip")
    rule_before = _failed(reason_kind="InvalidEvent")
    processor.process(_items(*(Ev(f"k{n}", f"id{n}") for n in range(4))))
    parked = outbox.on(FAILED)
    assert sorted((p["source"]["offset"], p["error_type"]) for p in parked) == [
        (1, "InvalidEvent"),
        (3, "InvalidRequest"),
    ]
    assert _skipped("rule-skip") == skipped_before + 1
    assert _failed(reason_kind="InvalidEvent") == rule_before + 1


def test_an_item_parked_before_is_not_parked_again() -> None:
    # the failed topic's tail already holds offsets 0 and 2 (a run before a restart)
    already = {Origin(INPUT, 0, 0), Origin(INPUT, 0, 2)}
    logic = MemoryLogic(reject={"id2", "id3"})
    processor, outbox = _processor(logic, ParkedOrigins(lambda: already))
    skipped_before = _skipped("already-parked")
    items = [_item(0, None, error="not json"), _item(1, Ev("k1", "id1"))]
    items += [_item(2, Ev("k2", "id2")), _item(3, Ev("k3", "id3"))]
    processor.process(items)
    assert [p["source"]["offset"] for p in outbox.on(FAILED)] == [3]
    assert _skipped("already-parked") == skipped_before + 2
    processor.process(items)  # the same input again (a replay): nothing new
    assert [p["source"]["offset"] for p in outbox.on(FAILED)] == [3]
    assert _skipped("already-parked") == skipped_before + 5  # 0, 2 and now 3


def test_the_tail_is_read_once_and_only_when_something_is_parked() -> None:
    loads: list[int] = []

    def load() -> set[Origin]:
        loads.append(1)
        return set()

    parked = ParkedOrigins(load)
    processor, _outbox = _processor(MemoryLogic(reject={"id1"}), parked)
    processor.process(_items(Ev("k0", "id0")))
    assert loads == []
    processor.process([_item(5, Ev("k1", "id1")), _item(6, None, error="bad")])
    processor.process([_item(7, None, error="bad")])
    assert loads == [1]


def test_two_parkings_of_one_item_in_a_round_are_one_envelope() -> None:
    logic = MemoryLogic(park_ids={"id0"})
    processor, outbox = _processor(logic)

    class TwoReasons(MemoryLogic):
        def run_round(self, round_: Round[Ev]) -> None:
            for item, _e in round_.values():
                round_.park(item, "user u1 rejected", "Rejected")
                round_.park(item, "user u2 rejected", "Rejected")

    processor.logic = TwoReasons()
    processor.process(_items(Ev("k0", "id0")))
    (parked,) = outbox.on(FAILED)
    assert parked["reason"] == "user u1 rejected; user u2 rejected"


def test_event_faults_are_the_errors_a_retry_will_not_fix() -> None:
    assert is_event_fault(InvalidRequest(KEY_TOO_LONG))
    assert is_event_fault(ValueError("bad value"))
    assert is_event_fault(KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)))
    assert not is_event_fault(OperationTimedOut())
    assert not is_event_fault(TransientError("Kafka undelivered"))
    assert not is_event_fault(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert not is_event_fault(MemoryError())
    assert not is_event_fault(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_event_fault(PermissionError(errno.EACCES, "Permission denied"))
    assert not is_event_fault(Unauthorized("no SELECT permission"))
    assert is_event_fault(OSError(errno.ENAMETOOLONG, "File name too long"))
    for missing in (  # Cassandra 4's answers when the schema is not applied
        'message="table user_enrolments does not exist"',
        'message="keyspace sunbird_courses does not exist"',
        'message="Undefined column name progress in table sunbird_courses.user_enrolments"',
    ):
        assert not is_event_fault(InvalidRequest(f"Error from server: code=2200 {missing}"))
    assert is_event_fault(InvalidEvent("bad"))


def test_the_reason_is_one_short_line() -> None:
    assert error_message(InvalidRequest(KEY_TOO_LONG)) == KEY_TOO_LONG
    long = error_message(ValueError("x" * 70_000 + "\n  at line 3"))
    assert len(long) == 500 and "\n" not in long
    assert error_message(ValueError()) == "ValueError"


def test_the_origin_of_a_failed_message_comes_from_its_headers_or_its_envelope() -> None:
    headers = envelope_headers("dev.t", 2, 41)
    assert origin_of(headers, None) == Origin("dev.t", 2, 41)
    envelope = json.dumps(
        {"reason": "r", "source": {"topic": "dev.t", "partition": 1, "offset": 7}}
    )
    assert origin_of((), envelope.encode()) == Origin("dev.t", 1, 7)
    assert origin_of((), b"not an envelope") is None
    assert origin_of(None, b"[1]") is None


def test_activity_run_again_after_a_partial_write_counts_nothing_twice() -> None:
    """The activity flow's round fails after the store applied some enrolments' batches (they
    run concurrently): the halves run again, and neither a count nor a certificate request is
    doubled; only the content AUDIT events produced before the writes are produced again
    (docs/architecture.md#the-processor-shell)."""
    bad_user = "lf-user-rejected"

    class RejectsOneUser(MemoryStore):
        def write_enrolments(self, writes: Any) -> None:
            super().write_enrolments([w for w in writes if w.key[0] != bad_user])
            if any(w.key[0] == bad_user for w in writes):
                raise InvalidRequest(KEY_TOO_LONG)

    s = load_settings()
    s = s.with_overrides(topics=s.topics.model_copy(update={"env": "unit-iso"}))
    cert, audit = (
        s.topics.full(s.topics.issue_certificate_request),
        s.topics.full(s.topics.telemetry_raw),
    )
    bad = json.loads(_events("t_a1_1_seeds")[0])
    bad["edata"]["userId"] = bad_user
    maya = _events("t_a1_1_seeds")

    clean = RejectsOneUser(_relation())
    clean_out, _p = run(ACTIVITY, s, ActivityLogic(s, clean), maya)
    store = RejectsOneUser(_relation())
    out, _p = run(ACTIVITY, s, ActivityLogic(s, store), [maya[0], json.dumps(bad).encode()])

    assert store.consumption_rows[MAYA] == clean.consumption_rows[MAYA]
    assert store.aggregates == clean.aggregates
    wall_clock = {"completedon"}
    enrolment = store.enrolment_rows[MAYA]
    assert {k: v for k, v in enrolment.items() if k not in wall_clock} == {
        k: v for k, v in clean.enrolment_rows[MAYA].items() if k not in wall_clock
    }
    assert len(out.on(cert)) == len(clean_out.on(cert)) == 1
    assert out.on(cert)[0]["mid"] == rules.certificate_mid(MAYA, enrolment["completedon"])
    assert store.markers == {}
    (parked,) = out.on(ACTIVITY.failed_topic_name(s))
    assert (parked["source"]["offset"], parked["error_type"]) == (1, "InvalidRequest")

    def audits(outbox: Any, user: str) -> list[str]:
        return sorted(a["edata"]["type"] for a in outbox.on(audit) if a["actor"]["id"] == user)

    # Maya's write was applied before the failure: run again, she is a replay and sends nothing;
    # the rejected event's AUDITs were produced once per run of a part holding it (2 here)
    assert audits(out, MAYA[0]) == audits(clean_out, MAYA[0]) == ["complete", "enrol-complete"]
    assert audits(out, bad_user) == ["complete", "complete", "start", "start"]
