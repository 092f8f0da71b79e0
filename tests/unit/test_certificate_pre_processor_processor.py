"""certificate-pre-processor's production orchestration (shell + logic) on an in-memory store.

The data are the PP-1 case of tests/unit/test_certificate_pre_processor_rules.py (our own
tests/data/certificates/pre.*): lf_user_01 is active, completed, 80 % on the quiz and asks for a
re-issue, so the batch's one template gives one generate event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_pre_processor import rules
from lernflow.flows.certificate_pre_processor.flow import SPEC
from lernflow.flows.certificate_pre_processor.plan import BatchKey, LearnerKey
from lernflow.flows.certificate_pre_processor.processor import PreProcessorLogic
from tests.shellkit import metric, run
from tests.unit import test_certificate_pre_processor_rules as pp

NOW = 1721035800.5
OTHER = "lf_user_02"
BATCH_KEY = BatchKey(pp.COURSE, pp.BATCH)


class MemoryStore:
    """The flow's reads from dicts (decoded as the server store decodes them); records reads."""

    def __init__(self) -> None:
        self.templates_by_batch: dict[BatchKey, Any] = {
            BATCH_KEY: {pp.TMPL: pp.load("pre.template.json")}
        }
        self.rows: dict[LearnerKey, dict[str, Any]] = {
            LearnerKey(pp.USER, pp.COURSE, pp.BATCH): pp.user_row()
        }
        self.aggs: dict[LearnerKey, dict[str, float]] = {
            LearnerKey(pp.USER, pp.COURSE, pp.BATCH): dict(pp.USER_AGGREGATES)
        }
        self.types: dict[str, str | None] = {pp.QUIZ: "selfAssess"}
        self.users: dict[str, dict[str, Any]] = {pp.USER: pp.profile("pre.profile.full.json")}
        self.names: dict[str, str] = {pp.COURSE: pp.COURSE_NAME}
        self.reads: list[tuple[str, list[Any]]] = []
        self.closed = False

    def _read(self, what: str, keys: Sequence[Any], values: dict[Any, Any], default: Any) -> Any:
        self.reads.append((what, list(keys)))
        return {k: values.get(k, default) for k in keys}

    def templates(self, keys: Sequence[BatchKey]) -> dict[BatchKey, Any]:
        return self._read("templates", keys, self.templates_by_batch, None)

    def enrolments(self, keys: Sequence[LearnerKey]) -> dict[LearnerKey, dict[str, Any] | None]:
        return self._read("enrolments", keys, self.rows, None)

    def aggregates(self, keys: Sequence[LearnerKey]) -> dict[LearnerKey, dict[str, float]]:
        return self._read("aggregates", keys, self.aggs, {})

    def content_types(self, ids: Sequence[str]) -> dict[str, str | None]:
        return self._read("content_types", ids, self.types, None)

    def profiles(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        return self._read("profiles", user_ids, self.users, None)

    def course_names(self, course_ids: Sequence[str]) -> dict[str, str | None]:
        return self._read("course_names", course_ids, self.names, None)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def settings() -> Settings:
    s = load_settings()
    certs = s.certificates.model_copy(
        update={
            "supported_content_types": "selfAssess",
            "cert_domain_url": "https://learn.lernflow.example",
            "zone": "UTC",
            "suppress_missing_metadata": True,
        }
    )
    return s.with_overrides(
        topics=s.topics.model_copy(update={"env": "unit-cpp"}), certificates=certs
    )


def _logic(settings: Settings, store: MemoryStore) -> PreProcessorLogic:
    return PreProcessorLogic(settings, store, clock=lambda: NOW)


def _request(users: list[str] | None = None, **edata: object) -> bytes:
    doc = json.loads(pp.event_1(**edata))
    if users is not None:
        doc["edata"]["userIds"] = users
    return json.dumps(doc).encode()


def _generate(settings: Settings) -> str:
    return settings.topics.full(settings.topics.generate_certificate_request)


def _skipped(kind: str) -> float:
    return metric("lernflow_events_skipped_total", flow=SPEC.name, reason_kind=kind)


def test_an_eligible_learner_gets_one_generate_request(settings: Settings) -> None:
    out_before = metric("lernflow_events_out_total", flow=SPEC.name, topic=_generate(settings))
    store = MemoryStore()
    outbox, _p = run(SPEC, settings, _logic(settings, store), [_request()])
    request = rules.parse_request(_request())
    assert isinstance(request, rules.IssueRequest)
    expected = pp.expected_pp1_event()
    expected["ets"] = int(NOW * 1000)
    expected["mid"] = rules.generate_mid(request, pp.USER, pp.TMPL)
    assert outbox.on(_generate(settings)) == [expected]
    assert [m.topic for m in outbox.messages] == [_generate(settings)]  # nothing parked
    after = metric("lernflow_events_out_total", flow=SPEC.name, topic=_generate(settings))
    assert after == out_before + 1
    learner = LearnerKey(pp.USER, pp.COURSE, pp.BATCH)
    assert store.reads == [
        ("templates", [BATCH_KEY]),
        ("aggregates", [learner]),
        ("enrolments", [learner]),
        ("content_types", [pp.QUIZ]),
        ("profiles", [pp.USER]),
        ("course_names", [pp.COURSE]),
    ]


def test_a_replayed_request_rebuilds_the_same_event(settings: Settings) -> None:
    first, _p = run(SPEC, settings, _logic(settings, MemoryStore()), [_request()])
    again, _p = run(SPEC, settings, _logic(settings, MemoryStore()), [_request()])
    assert first.on(_generate(settings)) == again.on(_generate(settings))


def test_an_ineligible_learner_is_skipped_with_its_kind(settings: Settings) -> None:
    before = _skipped("not-eligible-enrollment")
    store = MemoryStore()
    store.rows[LearnerKey(pp.USER, pp.COURSE, pp.BATCH)]["active"] = False
    outbox, _p = run(SPEC, settings, _logic(settings, store), [_request()])
    assert outbox.messages == []
    assert _skipped("not-eligible-enrollment") == before + 1


def test_a_batch_without_templates_is_skipped_as_template_none(settings: Settings) -> None:
    before = _skipped("not-eligible-template-none")
    store = MemoryStore()
    store.templates_by_batch.clear()
    outbox, _p = run(SPEC, settings, _logic(settings, store), [_request()])
    assert outbox.messages == []
    assert _skipped("not-eligible-template-none") == before + 1
    # nothing the templates need is read: no enrolment, no scores, no content types
    assert [what for what, keys in store.reads if keys] == ["templates", "profiles", "course_names"]


def test_every_user_is_decided_and_a_fatal_rejection_is_parked(settings: Settings) -> None:
    failed = SPEC.failed_topic_name(settings)
    failed_before = metric("lernflow_events_failed_total", flow=SPEC.name, reason_kind="Rejected")
    store = MemoryStore()
    other = LearnerKey(OTHER, pp.COURSE, pp.BATCH)
    store.rows[other] = {**pp.user_row(), "userid": OTHER, "completedon": None}
    store.aggs[other] = dict(pp.USER_AGGREGATES)
    store.users[OTHER] = pp.profile("pre.profile.full.json")
    outbox, _p = run(SPEC, settings, _logic(settings, store), [_request([pp.USER, OTHER])])
    assert [e["edata"]["userId"] for e in outbox.on(_generate(settings))] == [pp.USER]
    (parked,) = outbox.on(failed)
    assert parked["source"]["offset"] == 0
    assert f"user {OTHER}, template {pp.TMPL}: " in parked["reason"]
    assert "completedon is null" in parked["reason"]
    after = metric("lernflow_events_failed_total", flow=SPEC.name, reason_kind="Rejected")
    assert after == failed_before + 1


def test_a_course_without_a_name_is_parked(settings: Settings) -> None:
    store = MemoryStore()
    store.names.clear()
    outbox, _p = run(SPEC, settings, _logic(settings, store), [_request()])
    (parked,) = outbox.on(SPEC.failed_topic_name(settings))
    assert "has no name in the collection cache or a published hierarchy" in parked["reason"]
    assert outbox.on(_generate(settings)) == []


def test_a_batch_of_requests_is_one_round_and_bad_input_goes_through_the_shell(
    settings: Settings,
) -> None:
    other_action = _skipped("other-action")
    store = MemoryStore()
    payloads = [_request(), b"{not json", _request(action="something-else"), _request()]
    outbox, _p = run(SPEC, settings, _logic(settings, store), payloads)
    assert len(outbox.on(_generate(settings))) == 2  # the same request twice: two events
    assert [p["source"]["offset"] for p in outbox.on(SPEC.failed_topic_name(settings))] == [1]
    assert _skipped("other-action") == other_action + 1
    assert [what for what, _keys in store.reads].count("templates") == 1  # one round


def test_close_releases_the_store(settings: Settings) -> None:
    store = MemoryStore()
    _outbox, processor = run(SPEC, settings, _logic(settings, store), [])
    processor.close()
    assert store.closed
