"""assessment-aggregator's production orchestration in memory, for unit and conformance tests.

:class:`MemoryStore` is the flow's ``AssessmentStore`` on dicts; :class:`MemoryFlow` drives the
flow's :data:`~flows.assessment_aggregator.flow.SPEC` processor (the shell's parse step,
rounds, parking and sending, and :class:`AssessmentLogic`) with it and
:class:`tests.shellkit.MemoryOutbox`, one message at a time. Nothing here re-implements the
flow.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import pytest

from lernflow.config import Settings, load_settings
from lernflow.flows.assessment_aggregator.content import leafnodes_key
from lernflow.flows.assessment_aggregator.counters import Metric
from lernflow.flows.assessment_aggregator.decisions import AssessDecision
from lernflow.flows.assessment_aggregator.events import AttemptKey
from lernflow.flows.assessment_aggregator.flow import SPEC
from lernflow.flows.assessment_aggregator.logic import Event, Outcome
from lernflow.flows.assessment_aggregator.processor import AssessmentLogic
from lernflow.flows.assessment_aggregator.rows import (
    AssessmentAggregatorRow,
    CurrentActivityAgg,
    StoredAttempt,
    StoredScore,
    UserActivityAggUpdate,
    stored_score_of,
)
from lernflow.flows.shell import Item
from lernflow.kernel.errors import TransientError
from lernflow.sources.kafka import KafkaRecord
from tests.shellkit import MemoryOutbox

START_MS = 1_700_000_000_000

ActivityKey = tuple[str, str, str, str]


class MemoryStore:
    """``AssessmentStore`` in memory: the tables and caches the flow reads and writes.

    ``api`` answers the content read API (``api_calls`` lists the content ids asked).
    ``fail_on`` names one call that raises a :class:`TransientError` once, as a lost server
    would (the processor then stops where it is, as a crashed worker does).
    """

    def __init__(
        self,
        leaf_nodes: dict[str, set[str]],
        cache: dict[str, str],
        api: Callable[[str], str] | None = None,
    ) -> None:
        self.leaf = leaf_nodes
        self.cache = cache
        self.api = api
        self.api_calls: list[str] = []
        self.attempts: dict[AttemptKey, AssessmentAggregatorRow] = {}
        self.activity: dict[ActivityKey, dict[str, Any]] = {}
        self.fail_on: str | None = None

    def _step(self, name: str) -> None:
        if self.fail_on == name:
            self.fail_on = None
            msg = f"injected fault in {name}"
            raise TransientError(msg)

    def leaf_nodes(self, course_ids: Sequence[str]) -> list[set[str]]:
        return [set(self.leaf.get(leafnodes_key(c), set())) for c in course_ids]

    def content_cache(self, content_ids: Sequence[str]) -> list[str | bytes | None]:
        return [self.cache.get(c) for c in content_ids]

    def content_read(self, content_id: str) -> str:
        self.api_calls.append(content_id)
        assert self.api is not None
        return self.api(content_id)

    def stored_attempts(self, keys: Sequence[AttemptKey]) -> list[StoredAttempt | None]:
        rows = [self.attempts.get(k) for k in keys]
        return [
            None if r is None else StoredAttempt(r.last_attempted_on, r.created_on) for r in rows
        ]

    def write_attempts(self, rows: Sequence[AssessmentAggregatorRow]) -> None:
        self._step("write_attempts")
        for r in rows:
            key = AttemptKey(r.user_id, r.course_id, r.batch_id, r.content_id, r.attempt_id)
            self.attempts[key] = r

    def scores(self, keys: Sequence[tuple[str, str, str]]) -> list[list[StoredScore]]:
        self._step("scores")
        by_key: dict[tuple[str, str, str], list[tuple[AttemptKey, AssessmentAggregatorRow]]] = {}
        for k, r in self.attempts.items():
            by_key.setdefault((k.user_id, k.course_id, k.batch_id), []).append((k, r))
        return [
            [
                stored_score_of(r)  # in clustering order, as Cassandra returns them
                for _k, r in sorted(
                    by_key.get(key, []), key=lambda kv: (kv[0].content_id, kv[0].attempt_id)
                )
            ]
            for key in keys
        ]

    def current_aggs(self, keys: Sequence[tuple[str, str, str]]) -> list[CurrentActivityAgg | None]:
        rows = [
            self.activity.get(("Course", course, user, f"cb:{batch}"))
            for user, course, batch in keys
        ]
        return [
            None if r is None else CurrentActivityAgg(dict(r["aggregates"]), list(r["agg_details"]))
            for r in rows
        ]

    def update_aggs(self, updates: Sequence[UserActivityAggUpdate]) -> None:
        for u in updates:
            row = self.activity.setdefault(
                (u.activity_type, u.activity_id, u.user_id, u.context_id),
                {"aggregates": {}, "agg_last_updated": {}, "agg_details": []},
            )
            row["aggregates"] = {**row["aggregates"], **u.aggregates}
            row["agg_last_updated"] = {**row["agg_last_updated"], **u.agg_last_updated}
            row["agg_details"] = list(u.agg_details)

    def close(self) -> None:
        pass


@cache
def base_settings() -> Settings:
    return load_settings()


def settings_with(skip_missing_records: bool = False) -> Settings:
    base = base_settings()
    return base.with_overrides(
        assessment=base.assessment.model_copy(update={"skip_missing_records": skip_missing_records})
    )


class MemoryFlow:
    """One message at a time through the flow's ``SPEC`` processor on a :class:`MemoryStore`.

    Each ``process`` call is one batch at a clock one second later than the previous one.
    ``failed`` and ``certs`` are read back from the produced messages; ``metrics`` sums the
    Sunbird counters of the logic's outcomes, plus ``failed-event-count`` for a message the
    shell parked as unparseable (Sunbird counts those too).
    """

    def __init__(
        self,
        leaf_nodes: dict[str, set[str]],
        skip_missing_records: bool = False,
        cache: dict[str, str] | None = None,
        api: Callable[[str], str] | None = None,
    ) -> None:
        s = settings_with(skip_missing_records)
        self.store = MemoryStore(leaf_nodes, dict(cache or {}), api)
        self.outbox = MemoryOutbox()
        self.metrics: Counter[str] = Counter()
        self.outcomes: list[tuple[Item[Event], Outcome]] = []
        self.clock = START_MS
        self._requests = 0
        self._offset = 0
        self._input = SPEC.input_topic_name(s)
        self._failed_topic = SPEC.failed_topic_name(s)
        self._cert_topic = s.topics.full(s.topics.issue_certificate_request)
        self.parse = SPEC.parser(s)
        self.logic = AssessmentLogic(
            s,
            store=self.store,
            clock=lambda: self.clock,
            request_id=self._request_id,
            report=lambda item, outcome: self.outcomes.append((item, outcome)),
        )
        self.processor = SPEC.processor(s, logic=self.logic, outbox=self.outbox)

    def _request_id(self) -> str:
        self._requests += 1
        return f"req-{self._requests}"

    def record(self, value: bytes) -> KafkaRecord:
        """``value`` as the next record of the input topic."""
        record = KafkaRecord(self._input, 0, self._offset, None, value, self.clock)
        self._offset += 1
        return record

    def process(
        self, value: bytes, *, crash_before_score_step: bool = False
    ) -> AssessDecision | None:
        """Run one message; the decision, or None when it was parked before one."""
        self.clock += 1000
        item = self.parse(self.record(value))
        if crash_before_score_step:
            self.store.fail_on = "scores"
            with pytest.raises(TransientError):
                self.processor.process([item])
            return None
        reported, parked = len(self.outcomes), len(self.failed)
        self.processor.process([item])
        new = self.outcomes[reported:]
        if not new:  # the shell parked it: it never reached the logic
            assert len(self.failed) == parked + 1
            self.metrics[Metric.FAILED] += 1
            return None
        ((_item, outcome),) = new
        self.metrics.update(outcome.counters)
        return outcome.decision

    @property
    def api_calls(self) -> list[str]:
        return self.store.api_calls

    @property
    def attempts(self) -> dict[AttemptKey, AssessmentAggregatorRow]:
        return self.store.attempts

    @property
    def activity(self) -> dict[ActivityKey, dict[str, Any]]:
        return self.store.activity

    @property
    def failed(self) -> list[tuple[bytes, str]]:
        """(original message, reason) of every message parked on the failed topic."""
        out = []
        for doc in self.outbox.on(self._failed_topic):
            raw = (
                base64.b64decode(doc["payload_base64"])
                if "payload_base64" in doc
                else doc["payload"].encode()
            )
            out.append((raw, doc["reason"]))
        return out

    @property
    def certs(self) -> list[str]:
        return [m.value.decode() for m in self.outbox.messages if m.topic == self._cert_topic]

    def activity_row(self, course_id: str, user_id: str, batch_id: str) -> dict[str, Any]:
        return self.activity[("Course", course_id, user_id, f"cb:{batch_id}")]


def cert_attempt_id(cert: str) -> str:
    attempt_id: str = json.loads(cert)["edata"]["attemptId"]
    return attempt_id


def activity_snapshot(flow: MemoryFlow) -> str:
    return json.dumps({repr(k): v for k, v in flow.activity.items()}, sort_keys=True)
