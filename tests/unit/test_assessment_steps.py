"""Several messages of one learner in one batch are planned step by step and written once
(docs/flows/assessment-aggregator.md#one-batch).

The reference is the same production orchestration (the flow's ``SPEC`` processor with
:class:`AssessmentLogic` on the in-memory store) fed one message per batch, which reads and
writes after every message: the attempt rows, the ``user_activity_agg`` rows, the certificate
requests, the parked messages and Sunbird's counters must be the same, while the batch writes
each attempt row and each aggregate row once. A batch stopped by a lost server and run again
ends where one message at a time ends.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from bench.assessment import _row
from lernflow.flows.assessment_aggregator.content import leafnodes_key
from lernflow.flows.assessment_aggregator.events import BatchAssessEvent, parse_assess_message
from lernflow.flows.assessment_aggregator.flow import SPEC
from lernflow.flows.assessment_aggregator.processor import AssessmentLogic
from lernflow.flows.assessment_aggregator.store import BATCH_BYTES, ServerStore
from lernflow.flows.shell import BatchProcessor
from lernflow.kernel.errors import TransientError
from tests.assessment_kit import START_MS, MemoryStore, base_settings
from tests.shellkit import MemoryOutbox, records

CACHED, UNCACHED = "lf-course-steps", "lf-course-steps-uncached"
QUIZ, QUIZ_2, STRAY = "lf-quiz-steps-1", "lf-quiz-steps-2", "lf-quiz-not-in-course"
Message = tuple[str, str, str, str, str, int, tuple[tuple[str, int], ...]]
"""(user, course, batch, content, attempt, assessmentTs, answers) — no answers: recompute."""


def _payload(m: Message) -> bytes:
    user, course, batch, content, attempt, ts, answers = m
    doc: dict[str, Any] = {"courseId": course, "batchId": batch, "userId": user,
                           "contentId": content, "attemptId": attempt, "assessmentTs": ts}  # fmt: skip
    if answers:
        doc["events"] = [
            {"eid": "ASSESS", "ets": ts - 100 + n,
             "edata": {"item": {"id": q, "maxscore": 2, "params": [], "title": "t", "type": "mcq",
                                "desc": "d"}, "score": score, "resvalues": [], "duration": 3}}
            for n, (q, score) in enumerate(answers)
        ]  # fmt: skip
    return json.dumps(doc).encode()


messages = st.lists(
    st.tuples(
        st.sampled_from(["lf-user-ada", "lf-user-bo"]),
        st.sampled_from([CACHED, CACHED, UNCACHED]),
        st.sampled_from(["lf-batch-1", "lf-batch-2"]),
        st.sampled_from([QUIZ, QUIZ, QUIZ_2, STRAY]),
        st.sampled_from(["a1", "a2", "a3"]),
        st.sampled_from([1_600_000_001_000, 1_600_000_002_000, 1_600_000_003_000]),
        st.one_of(
            st.just(()),
            st.lists(st.tuples(st.sampled_from(["q1", "q2", "q3"]), st.integers(0, 2)),
                     min_size=1, max_size=3).map(tuple),
        ),
    ),
    min_size=1,
    max_size=14,
)  # fmt: skip


class CountingStore(MemoryStore):
    """The in-memory store, counting the rows each write call is given."""

    def __init__(self) -> None:
        super().__init__({leafnodes_key(CACHED): {QUIZ, QUIZ_2}}, {})
        self.attempt_writes = 0
        self.agg_writes = 0

    def write_attempts(self, rows: Any) -> None:
        super().write_attempts(rows)
        self.attempt_writes += len(rows)

    def update_aggs(self, updates: Any) -> None:
        super().update_aggs(updates)
        self.agg_writes += len(updates)


class Run:
    """The SPEC processor on a :class:`CountingStore`, a fixed clock and request id."""

    def __init__(self) -> None:
        s = base_settings()
        self.store, self.outbox = CountingStore(), MemoryOutbox()
        self.counters: Counter[str] = Counter()
        logic = AssessmentLogic(
            s, store=self.store, clock=lambda: START_MS, request_id=lambda: "req",
            report=lambda _item, outcome: self.counters.update(outcome.counters),
        )  # fmt: skip
        self.processor: BatchProcessor[Any] = SPEC.processor(s, logic=logic, outbox=self.outbox)
        self.parse = SPEC.parser(s)
        self.topic = SPEC.input_topic_name(s)

    def process(self, batches: list[list[int]], payloads: list[bytes]) -> Run:
        recs = records(self.topic, payloads)
        for batch in batches:
            self.processor.process([self.parse(recs[i]) for i in batch])
        return self

    def state(self) -> dict[str, Any]:
        return {"attempts": self.store.attempts, "activity": self.store.activity}

    def messages(self) -> dict[str, Any]:
        """Every message by topic, and the certificate requests of each learner in order."""
        by_learner: dict[tuple[str, str, str], list[bytes]] = {}
        for m in self.outbox.messages:
            doc = json.loads(m.value)
            if "edata" in doc:
                who = (
                    doc["edata"]["userIds"][0],
                    doc["edata"]["courseId"],
                    doc["edata"]["batchId"],
                )
                by_learner.setdefault(who, []).append(m.value)
        every = Counter(
            (
                m.topic,
                json.dumps({k: v for k, v in json.loads(m.value).items() if k != "failed_at"}),
            )
            for m in self.outbox.messages
        )  # a parked message's envelope says when it was parked
        return {"all": every, "certificates": by_learner, "counters": self.counters}


@hyp_settings(max_examples=150, deadline=None)
@given(messages, messages)
def test_one_batch_ends_where_one_message_at_a_time_ends(
    stored: list[Message], batch: list[Message]
) -> None:
    """``stored`` is processed first in both runs (rows the batch may overwrite)."""
    before = [_payload(m) for m in stored]
    payloads = before + [_payload(m) for m in batch]
    first = [[i] for i in range(len(before))]
    rest = range(len(before), len(payloads))
    one_by_one = Run().process([*first, *[[i] for i in rest]], payloads)
    together = Run().process([*first, list(rest)], payloads)
    assert together.state() == one_by_one.state()
    assert together.messages() == one_by_one.messages()
    reference = Run().process(first, payloads)  # what the batch itself has to write, at most
    attempts = [m for m in batch if m[6]]  # a row at most per attempt message (crash points)
    learners = {(m[0], m[1], m[2]) for m in batch}
    assert together.store.attempt_writes - reference.store.attempt_writes <= len(attempts)
    assert together.store.agg_writes - reference.store.agg_writes <= len(learners)


@hyp_settings(max_examples=60, deadline=None)
@given(messages, messages, st.sampled_from(["write_attempts", "scores"]))
def test_a_batch_stopped_by_a_lost_server_and_run_again_ends_where_one_at_a_time_ends(
    stored: list[Message], batch: list[Message], fault: str
) -> None:
    before = [_payload(m) for m in stored]
    payloads = before + [_payload(m) for m in batch]
    first = [[i] for i in range(len(before))]
    rest = list(range(len(before), len(payloads)))
    one_by_one = Run().process([*first, *[[i] for i in rest]], payloads)
    crashed = Run().process(first, payloads)
    crashed.store.fail_on = fault
    with contextlib.suppress(TransientError):  # a fault the batch does not reach is none
        crashed.process([rest], payloads)
    crashed.store.fail_on = None
    crashed.process([rest], payloads)  # the replay from the last committed offset
    assert crashed.state() == one_by_one.state()
    # every learner that was sent a certificate request is sent one on its final state
    expected, got = one_by_one.messages()["certificates"], crashed.messages()["certificates"]
    assert got.keys() >= expected.keys()
    for who, certs in expected.items():
        assert got[who][-1] == certs[-1]


def test_a_learners_three_messages_in_one_batch_write_the_aggregates_once() -> None:
    """Each step's attempt rows go after the earlier steps' certificate requests (a crash
    between them must not turn a stored row into the earlier messages' view), the aggregates
    once at the end."""
    msgs: list[Message] = [
        ("lf-user-ada", CACHED, "lf-batch-1", QUIZ, "a1", 1_600_000_001_000, (("q1", 1),)),
        ("lf-user-ada", CACHED, "lf-batch-1", QUIZ, "a2", 1_600_000_002_000, (("q1", 2),)),
        ("lf-user-ada", CACHED, "lf-batch-1", QUIZ, "a1", 1_600_000_003_000, (("q2", 2),)),
    ]
    payloads = [_payload(m) for m in msgs]
    together = Run().process([[0, 1, 2]], payloads)
    one_by_one = Run().process([[0], [1], [2]], payloads)
    assert (together.store.attempt_writes, together.store.agg_writes) == (3, 1)
    assert (one_by_one.store.attempt_writes, one_by_one.store.agg_writes) == (3, 3)
    assert together.state() == one_by_one.state()
    assert together.messages() == one_by_one.messages()
    certs = together.messages()["certificates"][("lf-user-ada", CACHED, "lf-batch-1")]
    assert [json.loads(c)["edata"]["attemptId"] for c in certs] == ["a1", "a2", "a1"]


def test_the_first_message_overwritten_later_in_the_batch_sees_the_row_as_stored_before() -> None:
    """a1 is stored; the batch scores a2 (which must see the stored a1), then rewrites a1."""
    stored: Message = ("lf-user-ada", CACHED, "lf-batch-1", QUIZ, "a1", 1_600_000_001_000,
                       (("q1", 2),))  # fmt: skip
    batch: list[Message] = [
        ("lf-user-ada", CACHED, "lf-batch-1", QUIZ, "a2", 1_600_000_002_000, (("q1", 1),)),
        ("lf-user-ada", CACHED, "lf-batch-1", QUIZ, "a1", 1_600_000_003_000, (("q1", 0),)),
    ]
    payloads = [_payload(m) for m in [stored, *batch]]
    together = Run().process([[0], [1, 2]], payloads)
    one_by_one = Run().process([[0], [1], [2]], payloads)
    assert together.messages() == one_by_one.messages()
    assert together.state() == one_by_one.state()
    certs = together.messages()["certificates"][("lf-user-ada", CACHED, "lf-batch-1")]
    assert [json.loads(c)["edata"]["attemptId"] for c in certs] == ["a1", "a2", "a1"]


class RecordingExecutor:
    """``CassandraExecutor.execute_many`` recorded: (CQL, parameter tuples) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[Any, ...]]]] = []

    def execute_many(self, cql: str, params: Any, what: str) -> list[Any]:
        self.calls.append((cql, list(params)))
        return [[] for _p in params]


def _rows(count: int, questions: int, text: str = "t") -> list[Any]:
    out = []
    for n in range(count):
        m: Message = ("lf-user-" + str(n), CACHED, "lf-batch-1", QUIZ, "a1", 1_600_000_001_000,
                      tuple((f"q{i}-{text}", 1) for i in range(questions)))  # fmt: skip
        event = parse_assess_message(_payload(m))
        assert isinstance(event, BatchAssessEvent)
        out.append(_row(event, START_MS))
    return out


def test_attempt_rows_are_joined_in_unlogged_batches_and_a_large_row_goes_alone() -> None:
    store = object.__new__(ServerStore)
    store._cas = cas = RecordingExecutor()  # type: ignore[assignment]
    store._q_insert = "INSERT INTO t (a) VALUES (?)"
    store.write_attempts(_rows(11, 2))
    assert [c.count("INSERT") for c, _p in cas.calls] == [8, 3]
    assert all(c.startswith("BEGIN UNLOGGED BATCH ") for c, _p in cas.calls)
    assert sum(len(p) for _c, ps in cas.calls for p in ps) == 11 * 12
    cas.calls.clear()
    large = _rows(1, 3, "x" * BATCH_BYTES)
    store.write_attempts([*_rows(3, 2), *large])
    assert [(c, len(ps)) for c, ps in cas.calls] == [(store._q_insert, 4)]
