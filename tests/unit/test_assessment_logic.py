"""assessment-aggregator rules and the processor's round logic, on the project's own data.

The cases T-B1, T-B2 and D-B1..D-B3 (docs/flows/assessment-aggregator.md) run on
``tests/data/assessment`` through the flow's production orchestration (the shell's processor of
its ``SPEC`` with :class:`AssessmentLogic`) on the in-memory store and outbox of
``tests.assessment_kit``; the expected values are worked out from
the rules by hand (see ``tests/data/assessment/README.md``). Then parse failures, exact output
formats, and properties of scoring and aggregation.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lernflow.flows.assessment_aggregator.content import (
    ContentMetaUnavailable,
    TotalQuestions,
    check_content,
    leafnodes_key,
    resolve_total_questions,
    total_questions_from_cache,
    total_questions_from_content_read,
)
from lernflow.flows.assessment_aggregator.counters import Metric
from lernflow.flows.assessment_aggregator.decisions import (
    AssessDecision,
    Verdict,
    evaluate_assess_event,
)
from lernflow.flows.assessment_aggregator.events import (
    AssessAnswer,
    AttemptKey,
    BatchAssessEvent,
    RecomputeRequest,
    parse_assess_message,
)
from lernflow.flows.assessment_aggregator.flow import SPEC
from lernflow.flows.assessment_aggregator.formats import (
    certificate_request,
    epoch_ms,
    format_agg_date,
    format_grand_total,
)
from lernflow.flows.assessment_aggregator.processor import AssessmentLogic
from lernflow.flows.assessment_aggregator.rows import (
    StoredAttempt,
    StoredScore,
    stored_score_of,
)
from lernflow.flows.assessment_aggregator.scoring import (
    aggregate_scores,
    latest_answers,
    score_answers,
)
from lernflow.flows.assessment_aggregator.store import FLOW
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import gson_roundtrip_json, java_double_to_string
from tests.assessment_kit import (
    START_MS,
    MemoryFlow,
    MemoryStore,
    activity_snapshot,
    base_settings,
    cert_attempt_id,
)
from tests.paths import DATA
from tests.shellkit import metric, run

OWN = DATA / "assessment"

ADA = "lf-user-ada"
ALGEBRA = "lf-course-algebra"
BATCH_ALG = "lf-batch-algebra-1"
FRACTIONS = "lf-quiz-fractions"
A1 = "lf-attempt-a1"
A2 = "lf-attempt-a2"


def event_bytes(name: str) -> bytes:
    return (OWN / "events" / f"{name}.json").read_bytes().strip()


def own_leaf_nodes() -> dict[str, set[str]]:
    """The relation cache (Redis DB 10) as our seed file lists it."""
    doc = json.loads((OWN / "relation_cache.json").read_text())
    return {key: set(members) for key, members in doc.items()}


def own_content_cache() -> dict[str, str]:
    """The content cache (Redis DB 5): content id → the exact JSON string value."""
    doc: dict[str, str] = json.loads((OWN / "content_cache.json").read_text())
    return doc


# --------------------------------------------------------------------------------------------
# T-B1 "Update event to db": our nine events in order, each with the verdict, the attempt
# totals, the content's aggregates after it and the certificate's attemptId the rules give
# --------------------------------------------------------------------------------------------

T_B1 = [
    # event, verdict, (total_score, total_max_score, grand_total), aggregates of that content
    # after the event (score, max_score, attempts_count), certificate attemptId
    ("t_b1_1_first_attempt", Verdict.WRITE, (1.33, 2.0, "1.33/2.0"), (1.33, 2.0, 1.0), A1),
    ("t_b1_2_older_attempt", Verdict.OLDER, None, (1.33, 2.0, 1.0), None),
    (
        "t_b1_3_named_fail_but_valid",
        Verdict.WRITE,
        (5.0, 10.0, "5.0/10.0"),
        (5.0, 10.0, 1.0),
        "lf-attempt-b1",
    ),
    (
        "t_b1_4_nested_params",
        Verdict.WRITE,
        (1.0, 1.0, "1.0/1.0"),
        (1.0, 1.0, 1.0),
        "lf-attempt-c1",
    ),
    ("t_b1_5_newer_attempt", Verdict.WRITE, (2.0, 3.0, "2.0/3.0"), (2.0, 3.0, 1.0), A1),
    (
        "t_b1_6_repeated_questions",
        Verdict.WRITE,
        (2.0, 2.0, "2.0/2.0"),
        (2.0, 2.0, 1.0),
        "lf-attempt-d1",
    ),
    (
        "t_b1_7_course_without_leaf_nodes",
        Verdict.WRITE,
        (1.33, 2.0, "1.33/2.0"),
        (1.33, 2.0, 1.0),
        A1,
    ),
    ("t_b1_8_content_not_in_course", Verdict.CONTENT_NOT_IN_COURSE, None, None, None),
    # two attempts on one content: best score 2.0 of attempt a1, and a1 is also the latest
    ("t_b1_9_second_attempt", Verdict.WRITE, (1.33, 3.0, "1.33/3.0"), (2.0, 3.0, 2.0), A1),
]


def run_t_b1() -> tuple[MemoryFlow, list[AssessDecision | None]]:
    flow = MemoryFlow(leaf_nodes=own_leaf_nodes())
    decisions = [flow.process(event_bytes(name)) for name, *_ in T_B1]
    return flow, decisions


@pytest.mark.parametrize("step", range(len(T_B1)), ids=[t[0] for t in T_B1])
def test_t_b1_each_event_gets_its_verdict_score_aggregates_and_certificate(step):
    name, verdict, score, aggregates, cert = T_B1[step]
    flow = MemoryFlow(leaf_nodes=own_leaf_nodes())
    for earlier, *_ in T_B1[:step]:
        flow.process(event_bytes(earlier))
    certs_before = len(flow.certs)
    event = parse_assess_message(event_bytes(name))

    decision = flow.process(event_bytes(name))

    assert decision is not None
    assert decision.verdict is verdict
    if score is not None:
        assert decision.row is not None
        assert (
            decision.row.total_score,
            decision.row.total_max_score,
            decision.row.grand_total,
        ) == score
        assert isinstance(event, BatchAssessEvent)
        assert flow.attempts[event.key] == decision.row
    if aggregates is not None:
        stored = flow.activity_row(event.course_id, event.user_id, event.batch_id)["aggregates"]
        c = event.content_id
        assert (
            stored[f"score:{c}"],
            stored[f"max_score:{c}"],
            stored[f"attempts_count:{c}"],
        ) == aggregates
    new_certs = flow.certs[certs_before:]
    assert [cert_attempt_id(c) for c in new_certs] == ([cert] if cert else [])


T_B1_QUESTIONS = {
    # event → {question id: (assess_ts of the kept answer, score, max_score)}
    "t_b1_1_first_attempt": {
        "lf-q-half": (1599999995000, 1.0, 1.0),
        "lf-q-third": (1599999998000, 0.33, 1.0),
    },
    "t_b1_2_older_attempt": {"lf-q-ratio": (1598999990000, 5.0, 10.0)},
    "t_b1_3_named_fail_but_valid": {"lf-q-angle": (1600099990000, 5.0, 10.0)},
    "t_b1_4_nested_params": {"lf-q-sum": (1600199990000, 1.0, 1.0)},
    "t_b1_5_newer_attempt": {
        "lf-q-half": (1600000480000, 0.0, 1.0),
        "lf-q-half-b": (1600000485000, 1.0, 1.0),
        "lf-q-third": (1600000490000, 1.0, 1.0),
    },
    "t_b1_6_repeated_questions": {
        "lf-q-force": (1600299930000, 1.0, 1.0),
        "lf-q-mass": (1600299940000, 1.0, 1.0),
    },
    "t_b1_9_second_attempt": {
        "lf-q-half": (1600000210000, 1.0, 1.0),
        "lf-q-third": (1600000220000, 0.33, 1.0),
        "lf-q-ratio": (1600000230000, 0.0, 1.0),
    },
}


@pytest.mark.parametrize("name", T_B1_QUESTIONS)
def test_t_b1_dedup_keeps_the_latest_answer_of_each_question(name):
    event = parse_assess_message(event_bytes(name))
    assert isinstance(event, BatchAssessEvent)

    questions = score_answers(event.answers).questions

    assert {q.id: (q.assess_ts, q.score, q.max_score) for q in questions} == T_B1_QUESTIONS[name]
    assert [q.assess_ts for q in questions] == sorted(q.assess_ts for q in questions)


def test_t_b1_metrics_rows_and_outputs():
    flow, _ = run_t_b1()

    expected = {
        "skipped-event-count": 1,  # event 2
        "db-read-count": 2,  # events 2 and 5 found a stored row
        "db-update-count": 7,
        "failed-event-count": 1,  # event 8
        "batch-success-event-count": 7,
        "cache-hit-count": 8,
        "cache-hit-miss-count": 1,  # event 7: its course has no leaf-node set
        "db-score-read-count": 7,
        "recompute-agg-event-count": 0,
        "db-score-update-count": 7,
        "cert-issue-events-count": 7,
    }
    assert {k: flow.metrics[k] for k in expected} == expected
    assert [cert_attempt_id(c) for c in flow.certs] == [
        A1, "lf-attempt-b1", "lf-attempt-c1", A1, "lf-attempt-d1", A1, A1,
    ]  # fmt: skip
    assert [v for v, _ in flow.failed] == [event_bytes("t_b1_8_content_not_in_course")]
    assert "lf-quiz-not-in-course" in flow.failed[0][1]

    dee = [r for k, r in flow.attempts.items() if k.user_id == "lf-user-dee"]
    assert [(r.total_score, r.total_max_score, r.grand_total) for r in dee] == [
        (2.0, 2.0, "2.0/2.0")
    ]

    ada = sorted(
        (r for k, r in flow.attempts.items() if (k.user_id, k.course_id) == (ADA, ALGEBRA)),
        key=lambda r: (r.batch_id, r.content_id, r.attempt_id),
    )
    assert [(r.attempt_id, r.total_score, r.total_max_score, r.grand_total) for r in ada] == [
        (A1, 2.0, 3.0, "2.0/3.0"),
        (A2, 1.33, 3.0, "1.33/3.0"),
    ]
    first = ada[0]
    assert first.last_attempted_on == 1600000500000
    assert first.created_on == START_MS + 1000  # the time of event 1, kept by the overwrite (5)
    assert first.updated_on == START_MS + 5000

    act = flow.activity_row(ALGEBRA, ADA, BATCH_ALG)
    assert act["agg_details"] == [
        '{"attempt_id":"lf-attempt-a1","last_attempted_on":"Sep 13, 2020, 12:35:00 PM",'
        '"score":2.0,"content_id":"lf-quiz-fractions","max_score":3.0,"type":"attempt_metrics"}',
        '{"attempt_id":"lf-attempt-a2","last_attempted_on":"Sep 13, 2020, 12:30:50 PM",'
        '"score":1.33,"content_id":"lf-quiz-fractions","max_score":3.0,"type":"attempt_metrics"}',
    ]
    assert act["aggregates"] == {
        f"score:{FRACTIONS}": 2.0,
        f"max_score:{FRACTIONS}": 3.0,
        f"attempts_count:{FRACTIONS}": 2.0,
    }
    assert act["agg_last_updated"] == dict.fromkeys(act["aggregates"], START_MS + 9000)
    assert flow.activity_row("lf-course-physics", "lf-user-dee", "lf-batch-physics-1")[
        "aggregates"
    ] == {
        "score:lf-quiz-forces": 2.0,
        "max_score:lf-quiz-forces": 2.0,
        "attempts_count:lf-quiz-forces": 1.0,
    }
    assert flow.activity_row("lf-course-arith", "lf-user-cy", "lf-batch-arith-1")["aggregates"] == {
        "score:lf-quiz-sums": 1.0,
        "max_score:lf-quiz-sums": 1.0,
        "attempts_count:lf-quiz-sums": 1.0,
    }
    assert flow.activity_row("lf-course-geometry", "lf-user-bo", "lf-batch-geometry-1")[
        "aggregates"
    ] == {
        "score:lf-quiz-angles": 5.0,
        "max_score:lf-quiz-angles": 10.0,
        "attempts_count:lf-quiz-angles": 1.0,
    }
    assert flow.activity_row("lf-course-algebra-unlisted", ADA, BATCH_ALG)["aggregates"] == {
        "score:lf-quiz-fractions-unlisted": 1.33,
        "max_score:lf-quiz-fractions-unlisted": 2.0,
        "attempts_count:lf-quiz-fractions-unlisted": 1.0,
    }


def test_t_b1_first_event_keeps_the_latest_answer_of_each_question_as_udt_values():
    event = parse_assess_message(event_bytes("t_b1_1_first_attempt"))
    assert isinstance(event, BatchAssessEvent)

    score = score_answers(event.answers)

    assert [(q.id, q.assess_ts, q.score) for q in score.questions] == [
        ("lf-q-half", 1599999995000, 1.0),
        ("lf-q-third", 1599999998000, 0.33),
    ]
    q = score.questions[0]
    assert q.max_score == 1.0
    assert q.type == "mcq"
    assert q.title == "What is half of four?\n"
    assert q.description == ""
    assert q.duration == Decimal("14.0")
    assert str(q.duration) == "14.0"  # a whole-number duration keeps one decimal
    assert q.resvalues == ({"1": '{"text":"Two\\n"}'},)
    assert q.params[0] == {"1": '{"text":"Two\\n"}'}
    assert q.params[-1] == {"answer": '{"correct":["1"]}'}
    assert (score.total_score, score.total_max_score, score.grand_total) == (1.33, 2.0, "1.33/2.0")


def test_t_b1_older_event_question_without_type_keeps_null_and_the_latest_answer_scores_5_of_10():
    event = parse_assess_message(event_bytes("t_b1_2_older_attempt"))
    assert isinstance(event, BatchAssessEvent)

    (q,) = score_answers(event.answers).questions

    assert (q.id, q.assess_ts, q.score, q.max_score, q.type) == (
        "lf-q-ratio",
        1598999990000,
        5.0,
        10.0,
        None,
    )
    assert q.resvalues == ({"∑x": "true"},)
    assert q.params == ()
    assert q.duration == Decimal("9.0")


def test_t_b1_nested_param_object_is_stored_as_gson_text_with_doubles_and_without_nulls():
    event = parse_assess_message(event_bytes("t_b1_4_nested_params"))
    assert isinstance(event, BatchAssessEvent)

    (q,) = score_answers(event.answers).questions

    assert q.resvalues == ({"1": "random(20,20)"},)
    # members keep their order; integers become doubles; null members are dropped; < & = '
    # are escaped
    assert q.params == (
        {
            "item": '{"keywords":["lf"],"subject":"Arithmetic","channel":"lf-channel",'
            '"level":2.0,"version":1.0,"answer":true,"options":[{"text":"OPT_A",'
            '"tags":["T1","T2"],"answer":true},{"text":"OPT_B","tags":[],"answer":false}],'
            '"identifier":1.0,"ratio":0.5,"note":"a\\u003cb \\u0026 c\\u003d\\u0027d\\u0027"}'
        },
    )


# --------------------------------------------------------------------------------------------
# T-B2 (question-count check on): content cache first, then the content read API
# --------------------------------------------------------------------------------------------


def content_api(counts: dict[str, int | None]) -> Callable[[str], str]:
    def get(content_id: str) -> str:
        return json.dumps(
            {"responseCode": "OK", "result": {"content": {"totalQuestions": counts[content_id]}}}
        )

    return get


def test_t_b2_question_count_check_uses_cache_then_api_and_ignores_excess_questions():
    flow = MemoryFlow(
        leaf_nodes=own_leaf_nodes(),
        skip_missing_records=True,
        cache=own_content_cache(),
        api=content_api({"lf-quiz-bonds": 4, "lf-quiz-cells": 2}),
    )
    names = [
        "t_b2_1_cache_count_fits",
        "t_b2_2_api_count_fits",
        "t_b2_3_too_many_questions",
        "t_b2_4_api_count_fits_listed_course",
    ]

    verdicts = [d.verdict if d else None for d in (flow.process(event_bytes(n)) for n in names)]

    assert verdicts == [Verdict.WRITE, Verdict.WRITE, Verdict.TOO_MANY_QUESTIONS, Verdict.WRITE]
    assert flow.api_calls == ["lf-quiz-bonds", "lf-quiz-cells"]
    expected = {
        "batch-success-event-count": 3,
        "cache-hit-count": 5,  # 1 leaf-node set (biology) + 4 content-cache lookups
        "cache-hit-miss-count": 5,  # 3 chemistry leaf-node misses + bonds and cells not cached
        "api-hit-success-count": 2,
        "ignored-event-count": 1,
        "failed-event-count": 0,
        "cert-issue-events-count": 3,
    }
    assert {k: flow.metrics[k] for k in expected} == expected
    assert [v for v, _ in flow.failed] == [event_bytes("t_b2_3_too_many_questions")]
    assert (
        flow.failed[0][1] == "2 distinct questions exceed totalQuestions 1 of content lf-quiz-ions"
    )
    e2 = parse_assess_message(event_bytes("t_b2_2_api_count_fits"))
    assert isinstance(e2, BatchAssessEvent)
    row = flow.attempts[e2.key]
    assert (len(row.question), row.grand_total) == (4, "1.33/4.0")


def test_t_b2_api_count_below_the_distinct_questions_ignores_the_event():
    flow = MemoryFlow(
        leaf_nodes=own_leaf_nodes(),
        skip_missing_records=True,
        api=content_api({"lf-quiz-bonds": 3}),
    )

    decision = flow.process(event_bytes("t_b2_2_api_count_fits"))

    assert decision is not None and decision.verdict is Verdict.TOO_MANY_QUESTIONS
    assert flow.metrics["ignored-event-count"] == 1
    assert [v for v, _ in flow.failed] == [event_bytes("t_b2_2_api_count_fits")]
    assert not flow.attempts and not flow.certs


def test_t_b2_unknown_api_count_lets_the_attempt_through():
    flow = MemoryFlow(
        leaf_nodes=own_leaf_nodes(),
        skip_missing_records=True,
        api=content_api({"lf-quiz-bonds": None}),
    )

    decision = flow.process(event_bytes("t_b2_2_api_count_fits"))

    assert decision is not None and decision.verdict is Verdict.WRITE
    assert flow.metrics["api-hit-success-count"] == 1 and len(flow.attempts) == 1


def test_t_b2_failed_content_api_parks_the_event():
    flow = MemoryFlow(
        leaf_nodes=own_leaf_nodes(),
        skip_missing_records=True,
        api=lambda _cid: '{"responseCode":"RESOURCE_NOT_FOUND","result":{}}',
    )

    assert flow.process(event_bytes("t_b2_2_api_count_fits")) is None

    assert flow.failed[0][0] == event_bytes("t_b2_2_api_count_fits")
    assert flow.failed[0][1].startswith(
        "Failed to fetch the content meta for the content ID: lf-quiz-bonds"
    )
    assert flow.metrics["api-hit-failed-count"] == 1
    assert flow.metrics["failed-event-count"] == 1
    assert not flow.attempts and not flow.certs


def test_t_b2_cached_content_values_give_their_total_questions():
    cache = own_content_cache()

    assert total_questions_from_cache(cache["lf-quiz-atoms"]) == 2
    assert total_questions_from_cache(cache["lf-quiz-ions"]) == 1


# --------------------------------------------------------------------------------------------
# Derived cases D-B1..D-B3, and replay safety
# --------------------------------------------------------------------------------------------

ADA_AGGREGATES_AFTER_T_B1 = {
    f"score:{FRACTIONS}": 2.0,
    f"max_score:{FRACTIONS}": 3.0,
    f"attempts_count:{FRACTIONS}": 2.0,
}


def test_d_b1_recompute_request_rewrites_the_same_aggregates_and_sends_a_certificate():
    flow, _ = run_t_b1()
    attempts_before = dict(flow.attempts)
    assert len(attempts_before) == 6
    assert flow.activity_row(ALGEBRA, ADA, BATCH_ALG)["aggregates"] == ADA_AGGREGATES_AFTER_T_B1
    before = flow.metrics.copy()

    decision = flow.process(event_bytes("d_b1_recompute"))

    assert decision is not None and decision.verdict is Verdict.RECOMPUTE
    assert isinstance(decision.event, RecomputeRequest) and decision.row is None
    delta = flow.metrics - before
    assert delta == Counter(
        {
            "cache-hit-count": 1,
            "recompute-agg-event-count": 1,
            "db-score-read-count": 1,
            "db-score-update-count": 1,
            "cert-issue-events-count": 1,
        }
    )
    assert flow.attempts == attempts_before
    act = flow.activity_row(ALGEBRA, ADA, BATCH_ALG)
    assert act["aggregates"] == ADA_AGGREGATES_AFTER_T_B1
    assert act["agg_last_updated"] == dict.fromkeys(ADA_AGGREGATES_AFTER_T_B1, START_MS + 10000)
    assert cert_attempt_id(flow.certs[-1]) == A1


def test_d_b2_replayed_newer_event_is_skipped_without_certificate_or_any_change():
    flow, _ = run_t_b1()
    attempts_before = dict(flow.attempts)
    assert (attempts_before[AttemptKey(ADA, ALGEBRA, BATCH_ALG, FRACTIONS, A1)].grand_total) == (
        "2.0/3.0"
    )
    assert flow.activity_row(ALGEBRA, ADA, BATCH_ALG)["aggregates"] == ADA_AGGREGATES_AFTER_T_B1
    snapshot = activity_snapshot(flow)
    before = flow.metrics.copy()
    certs_before = list(flow.certs)
    assert len(certs_before) == 7

    decision = flow.process(event_bytes("t_b1_5_newer_attempt"))

    assert decision is not None and decision.verdict is Verdict.REPLAYED
    assert "equals the stored last_attempted_on 1600000500000" in decision.reason
    delta = flow.metrics - before
    assert delta["skipped-event-count"] == 1
    assert delta["db-read-count"] == 1
    assert delta["db-score-read-count"] == 1  # the aggregates were checked, and found current
    assert delta["db-update-count"] == 0 and delta["db-score-update-count"] == 0
    assert flow.certs == certs_before
    assert flow.attempts == attempts_before
    assert activity_snapshot(flow) == snapshot


def test_d_b3_malformed_json_is_parked_and_the_flow_continues():
    flow = MemoryFlow(leaf_nodes=own_leaf_nodes())

    with pytest.raises(InvalidEvent, match="not valid JSON"):
        parse_assess_message(b'{"courseId": "lf-course-x", ')
    assert flow.process(b"{not json") is None
    decision = flow.process(event_bytes("t_b1_1_first_attempt"))

    assert flow.metrics["failed-event-count"] == 1
    assert [v for v, _ in flow.failed] == [b"{not json"]
    assert "not valid JSON" in flow.failed[0][1]
    assert decision is not None and decision.verdict is Verdict.WRITE
    assert [cert_attempt_id(c) for c in flow.certs] == [A1]


def test_replay_after_a_crash_before_the_score_step_heals_aggregates_and_sends_the_certificate():
    flow = MemoryFlow(leaf_nodes=own_leaf_nodes())
    flow.process(event_bytes("t_b1_1_first_attempt"), crash_before_score_step=True)
    # the attempt row was written before the crash; nothing after it
    assert [k.attempt_id for k in flow.attempts] == [A1]
    assert not flow.activity and not flow.certs

    healed = flow.process(event_bytes("t_b1_1_first_attempt"))
    again = flow.process(event_bytes("t_b1_1_first_attempt"))

    assert healed is not None and healed.verdict is Verdict.REPLAYED
    assert flow.activity_row(ALGEBRA, ADA, BATCH_ALG)["aggregates"][f"score:{FRACTIONS}"] == 1.33
    assert [cert_attempt_id(c) for c in flow.certs] == [A1]
    assert again is not None and again.verdict is Verdict.REPLAYED
    assert flow.metrics["skipped-event-count"] == 2
    assert len(flow.certs) == 1


def test_event_processed_twice_gives_identical_rows_and_one_certificate():
    flow = MemoryFlow(leaf_nodes=own_leaf_nodes())
    flow.process(event_bytes("t_b1_9_second_attempt"))
    attempts = dict(flow.attempts)
    activity = activity_snapshot(flow)
    assert flow.activity_row(ALGEBRA, ADA, BATCH_ALG)["aggregates"] == {
        f"score:{FRACTIONS}": 1.33,
        f"max_score:{FRACTIONS}": 3.0,
        f"attempts_count:{FRACTIONS}": 1.0,
    }

    second = flow.process(event_bytes("t_b1_9_second_attempt"))

    assert second is not None and second.verdict is Verdict.REPLAYED
    assert flow.attempts == attempts
    assert activity_snapshot(flow) == activity
    assert len(flow.certs) == 1


def test_processor_batches_a_learners_messages_in_rounds_that_see_each_others_writes():
    """Two messages of one learner in one call: the second sees the first one's row."""
    flow = MemoryFlow(leaf_nodes=own_leaf_nodes())
    items = [
        flow.parse(flow.record(event_bytes(name)))
        for name in ["t_b1_1_first_attempt", "t_b1_5_newer_attempt"]
    ]

    flow.processor.process(items)

    outcomes = [o for _i, o in flow.outcomes]
    assert [o.decision.verdict for o in outcomes if o.decision] == [Verdict.WRITE, Verdict.WRITE]
    row = flow.attempts[AttemptKey(ADA, ALGEBRA, BATCH_ALG, FRACTIONS, A1)]
    assert (row.grand_total, row.last_attempted_on) == ("2.0/3.0", 1600000500000)
    assert [cert_attempt_id(c) for c in flow.certs] == [A1, A1]


def test_shell_runs_t_b1_as_one_batch_in_rounds_and_counts_what_it_sends_skips_and_parks():
    """The SPEC processor (shell + AssessmentLogic) on the in-memory store, all of T-B1 and a
    malformed message in one batch: the same verdicts, rows and aggregates as one at a time,
    and the shell's metrics count every certificate request, skip and park."""
    settings = base_settings()
    cert_topic = settings.topics.full(settings.topics.issue_certificate_request)
    failed_topic = SPEC.failed_topic_name(settings)
    counted = {
        "certs out": ("lernflow_events_out_total", {"topic": cert_topic}),
        "failed out": ("lernflow_events_out_total", {"topic": failed_topic}),
        "older": ("lernflow_events_skipped_total", {"reason_kind": "older"}),
        "not in course": ("lernflow_events_failed_total", {"reason_kind": "content-not-in-course"}),
        "unparseable": ("lernflow_events_failed_total", {"reason_kind": "InvalidEvent"}),
    }
    before = {k: metric(name, flow=FLOW, **labels) for k, (name, labels) in counted.items()}
    store = MemoryStore(own_leaf_nodes(), {})
    logic = AssessmentLogic(settings, store=store, clock=lambda: START_MS, request_id=lambda: "r")
    payloads = [event_bytes(name) for name, *_ in T_B1] + [b"{not json"]

    outbox, _processor = run(SPEC, settings, logic, payloads)

    delta = {k: metric(n, flow=FLOW, **lb) - before[k] for k, (n, lb) in counted.items()}
    assert delta == {
        "certs out": 7, "failed out": 2, "older": 1, "not in course": 1, "unparseable": 1,
    }  # fmt: skip
    assert [c["edata"]["attemptId"] for c in outbox.on(cert_topic)] == [
        A1, "lf-attempt-b1", "lf-attempt-c1", "lf-attempt-d1", A1, A1, A1,
    ]  # fmt: skip
    unparseable, not_in_course = (m["reason"] for m in outbox.on(failed_topic))  # shell's first
    assert unparseable.startswith("message is not valid JSON")
    assert "lf-quiz-not-in-course" in not_in_course
    one_by_one, _ = run_t_b1()
    assert {k: r.grand_total for k, r in store.attempts.items()} == {
        k: r.grand_total for k, r in one_by_one.attempts.items()
    }
    assert {k: (a["aggregates"], a["agg_details"]) for k, a in store.activity.items()} == {
        k: (a["aggregates"], a["agg_details"]) for k, a in one_by_one.activity.items()
    }


# --------------------------------------------------------------------------------------------
# Parsing and validation failures
# --------------------------------------------------------------------------------------------


def assess_message(**overrides: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "courseId": "lf-course",
        "batchId": "batch1",
        "userId": "user1",
        "contentId": "lf-content",
        "attemptId": "attempt1",
        "assessmentTs": 1600000000000,
        "events": [answer_event("q1", 1599999990000, score=1, maxscore=1)],
    }
    msg.update(overrides)
    return {k: v for k, v in msg.items() if v is not ...}


def answer_event(
    qid: str, ets: int, *, score: Any = 1, maxscore: Any = 1, **edata: Any
) -> dict[str, Any]:
    item = {"id": qid, "maxscore": maxscore, "params": [], "title": "t", "type": "mcq", "desc": "d"}
    data = {"item": item, "score": score, "resvalues": [], "duration": 3}
    data.update(edata)
    return {"eid": "ASSESS", "ets": ets, "edata": data}


def with_edata(**changes: Any) -> dict[str, Any]:
    ev = answer_event("q1", 1599999990000)
    for path, value in changes.items():
        target = ev["edata"]
        parts = path.split("__")
        for p in parts[:-1]:
            target = target[p]
        if value is ...:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return assess_message(events=[ev])


PARSE_FAILURES = [
    ("not json", b"{not json", "message is not valid JSON"),
    ("not utf-8", b'{"courseId":"\xff"}', "message is not UTF-8"),
    ("array", b"[1, 2]", "message must be a JSON object, got array"),
    ("empty object", b"{}", "courseId is missing"),
    (
        "NaN",
        json.dumps(assess_message(assessmentTs=float("nan"))).encode(),
        "NaN is not a JSON number",
    ),
    ("huge number", b'{"courseId":"c","x":1e999}', "out of the double range"),
    ("courseId number", assess_message(courseId=5), "courseId must be a string, got number"),
    ("contentId missing", assess_message(contentId=...), "contentId is missing"),
    ("batchId empty", assess_message(batchId=""), "batchId is empty"),
    ("userId null", assess_message(userId=None), "userId must be a string, got null"),
    ("attemptId missing", assess_message(attemptId=...), "attemptId is missing"),
    ("assessmentTs missing", assess_message(assessmentTs=...), "assessmentTs is missing"),
    (
        "assessmentTs string",
        assess_message(assessmentTs="1600000000000"),
        "assessmentTs must be an integer",
    ),
    ("assessmentTs decimal", assess_message(assessmentTs=1.5), "assessmentTs must be an integer"),
    ("assessmentTs > long", assess_message(assessmentTs=2**63), "does not fit a 64-bit timestamp"),
    ("events object", assess_message(events={"a": 1}), "events must be an array, got object"),
    ("event not object", assess_message(events=["x"]), "events[0] must be an object, got string"),
    ("ets missing", assess_message(events=[{"edata": {}}]), "events[0].ets is missing"),
    ("ets boolean", assess_message(events=[{"ets": True}]), "events[0].ets must be an integer"),
    ("edata missing", assess_message(events=[{"ets": 1}]), "events[0].edata is missing"),
    ("item missing", with_edata(item=...), "events[0].edata.item is missing"),
    ("item id missing", with_edata(item__id=...), "events[0].edata.item.id is missing"),
    ("item id number", with_edata(item__id=7), "events[0].edata.item.id must be a string"),
    ("params missing", with_edata(item__params=...), "events[0].edata.item.params is missing"),
    ("params object", with_edata(item__params={}), "events[0].edata.item.params must be an array"),
    (
        "params element",
        with_edata(item__params=["a"]),
        "events[0].edata.item.params[0] must be an object",
    ),
    ("resvalues missing", with_edata(resvalues=...), "events[0].edata.resvalues is missing"),
    ("score string", with_edata(score="1"), "events[0].edata.score must be a number, got string"),
    (
        "maxscore boolean",
        with_edata(item__maxscore=True),
        "events[0].edata.item.maxscore must be a number",
    ),
    (
        "title object",
        with_edata(item__title={}),
        "events[0].edata.item.title must be a string or null",
    ),
    ("recompute without userId", assess_message(events=..., userId=...), "userId is missing"),
    ("surrogate", b'{"courseId":"\\ud800"}', "courseId contains an unpaired surrogate"),
]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(r, why) for _, r, why in PARSE_FAILURES],
    ids=[n for n, *_ in PARSE_FAILURES],
)
def test_unparseable_or_incomplete_message_raises_invalid_event_with_the_reason(raw, reason):
    value = raw if isinstance(raw, bytes) else json.dumps(raw).encode()

    with pytest.raises(InvalidEvent) as info:
        parse_assess_message(value)

    assert reason in info.value.reason


@pytest.mark.parametrize("events", [..., None, []], ids=["missing", "null", "empty"])
def test_message_without_events_is_a_recompute_request(events):
    msg = assess_message(events=events, attemptId=...)

    parsed = parse_assess_message(json.dumps(msg))

    assert parsed == RecomputeRequest(
        "lf-course", "batch1", "user1", "lf-content", None, 1600000000000
    )


def test_missing_scores_and_duration_read_as_zero_and_missing_texts_as_null():
    ev = answer_event("q1", 5, score=None, maxscore=None, duration=None)
    del ev["edata"]["item"]["title"]
    event = parse_assess_message(json.dumps(assess_message(events=[ev])))
    assert isinstance(event, BatchAssessEvent)

    (q,) = score_answers(event.answers).questions

    assert (q.score, q.max_score, q.duration, q.title) == (0.0, 0.0, Decimal("0.0"), None)


def test_null_inside_kept_answer_params_is_rejected_but_ignored_in_a_superseded_answer():
    bad = answer_event("q1", 10)
    bad["edata"]["item"]["params"] = [{"1": None}]
    good = answer_event("q1", 20)
    superseded = parse_assess_message(json.dumps(assess_message(events=[bad, good])))
    kept = parse_assess_message(json.dumps(assess_message(events=[good | {"ets": 5}, bad])))
    assert isinstance(superseded, BatchAssessEvent) and isinstance(kept, BatchAssessEvent)

    assert len(score_answers(superseded.answers).questions) == 1
    with pytest.raises(InvalidEvent, match=r"events\[1\]\.edata\.item\.params\[0\]\.1 is null"):
        score_answers(kept.answers)


def test_param_values_keep_strings_and_gson_encode_everything_else():
    params = [
        {
            "s": "a<b",
            "n": 1,
            "f": 0.5,
            "b": False,
            "l": [1, None, "x=y"],
            "o": {"k": None, "m": "it's"},
        }
    ]
    ev = answer_event("q1", 5)
    ev["edata"]["item"]["params"] = params
    event = parse_assess_message(json.dumps(assess_message(events=[ev])))
    assert isinstance(event, BatchAssessEvent)

    (q,) = score_answers(event.answers).questions

    assert q.params == (
        {
            "s": "a<b",
            "n": "1.0",
            "f": "0.5",
            "b": "false",
            "l": '[1.0,null,"x\\u003dy"]',
            "o": '{"m":"it\\u0027s"}',
        },
    )


# --------------------------------------------------------------------------------------------
# Content validation, dedup, question count lookups
# --------------------------------------------------------------------------------------------


def test_content_is_valid_when_leaf_nodes_are_missing_and_invalid_only_when_absent_from_the_set():
    assert check_content("lf-x", set()) == check_content("lf-y", frozenset())
    assert check_content("lf-x", set()).valid and not check_content("lf-x", set()).cache_hit
    assert check_content("lf-x", {"lf-x"}).valid and check_content("lf-x", {"lf-x"}).cache_hit
    assert not check_content("lf-x", {"lf-y"}).valid
    assert leafnodes_key("lf-c") == "lf-c:lf-c:leafnodes"


def test_equal_ets_for_one_question_keeps_the_answer_that_came_first():
    first = answer_event("q1", 100, score=1)
    second = answer_event("q1", 100, score=0)
    event = parse_assess_message(json.dumps(assess_message(events=[first, second])))
    assert isinstance(event, BatchAssessEvent)

    (kept,) = latest_answers(event.answers)

    assert kept.score == 1.0 and kept.position == 0


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (None, 0),
        ('{"totalQuestions":1}', 1),
        ('{"total_Questions":"3"}', 3),
        ('{"TOTALQUESTIONS":2.9}', 2),
        ('{"totalQuestions":""}', 0),
        ('{"totalQuestions":"many"}', 0),
        ('{"totalQuestions":true}', 0),
        ('{"name":"x"}', 0),
        ("not json", 0),
        ("[1]", 0),
        (b'{"totalQuestions":4}', 4),
    ],
)
def test_content_cache_total_questions_follows_datacache_key_normalisation(value, count):
    assert total_questions_from_cache(value) == count


def test_content_read_answer_gives_total_questions_or_none_and_refuses_bad_answers():
    ok = '{"responseCode":"ok","result":{"content":{"totalQuestions":%s}}}'
    assert total_questions_from_content_read(ok % "4", "c") == 4
    assert total_questions_from_content_read(ok % "null", "c") is None
    assert total_questions_from_content_read('{"responseCode":"OK","result":{}}', "c") is None
    for body, counter in [
        (ok % "4.0", Metric.API_SUCCESS),
        ('{"responseCode":"SERVER_ERROR"}', Metric.API_FAILED),
        ('{"result":{}}', None),
        ("<html>", None),
    ]:
        with pytest.raises(ContentMetaUnavailable) as info:
            total_questions_from_content_read(body, "c")
        assert info.value.reason.startswith(
            "Failed to fetch the content meta for the content ID: c"
        )
        assert (
            (counter in info.value.counters)
            if counter
            else Metric.API_FAILED not in info.value.counters
        )


def test_total_questions_lookup_asks_the_api_only_when_the_cache_gives_zero():
    calls: list[str] = []

    def api(cid: str) -> str:
        calls.append(cid)
        return '{"responseCode":"OK","result":{"content":{"totalQuestions":7}}}'

    assert resolve_total_questions("c", '{"totalQuestions":2}', api) == TotalQuestions(
        2, (Metric.CACHE_HIT,)
    )
    assert calls == []
    assert resolve_total_questions("c", None, api) == TotalQuestions(
        7, (Metric.CACHE_HIT, Metric.CACHE_MISS, Metric.API_SUCCESS)
    )
    assert calls == ["c"]


# --------------------------------------------------------------------------------------------
# Upsert decision with unusual stored rows
# --------------------------------------------------------------------------------------------


def one_question_event(ts: int = 2000) -> BatchAssessEvent:
    event = parse_assess_message(json.dumps(assess_message(assessmentTs=ts)))
    assert isinstance(event, BatchAssessEvent)
    return event


def test_stored_row_with_null_last_attempted_on_is_overwritten_and_null_created_on_becomes_now():
    event = one_question_event()

    decision = evaluate_assess_event(
        event, leaf_nodes=set(), now_ms=9, stored_attempt=lambda _k: StoredAttempt(None, None)
    )

    assert decision.verdict is Verdict.WRITE
    assert decision.row is not None and decision.row.created_on == 9
    assert decision.counters == (
        Metric.CACHE_MISS,
        Metric.DB_READ,
        Metric.DB_UPDATE,
        Metric.BATCH_SUCCESS,
    )


def test_newer_attempt_overwrites_and_keeps_created_on_older_one_is_skipped():
    event = one_question_event(ts=2000)

    newer = evaluate_assess_event(
        event,
        leaf_nodes={"lf-content"},
        now_ms=50,
        stored_attempt=lambda _k: StoredAttempt(1999, 7),
    )
    older = evaluate_assess_event(
        event,
        leaf_nodes={"lf-content"},
        now_ms=50,
        stored_attempt=lambda _k: StoredAttempt(2001, 7),
    )

    assert newer.row is not None
    assert (newer.row.created_on, newer.row.updated_on, newer.row.last_attempted_on) == (
        7,
        50,
        2000,
    )
    assert older.verdict is Verdict.OLDER and older.row is None and not older.aggregate
    assert older.counters == (Metric.CACHE_HIT, Metric.DB_READ, Metric.SKIPPED)
    assert "is older than the stored last_attempted_on 2001" in older.reason


def test_stored_attempt_is_not_read_for_rejected_content():
    def unexpected(_key: AttemptKey) -> StoredAttempt | None:
        raise AssertionError

    decision = evaluate_assess_event(
        one_question_event(), leaf_nodes={"lf-other"}, now_ms=1, stored_attempt=unexpected
    )

    assert decision.verdict is Verdict.CONTENT_NOT_IN_COURSE and decision.to_failed_topic
    assert decision.counters == (Metric.CACHE_HIT, Metric.FAILED)


# --------------------------------------------------------------------------------------------
# Score step details
# --------------------------------------------------------------------------------------------


def score_row(
    content: str, attempt: str, score: float | None, max_score: float | None, ts: int | None
) -> StoredScore:
    return StoredScore(content, attempt, ts, max_score, score)


REQ = RecomputeRequest("course", "batch", "user", "content")


def test_best_score_tie_keeps_the_first_attempt_in_clustering_order():
    rows = [score_row("c", "b", 5.0, 20.0, 2), score_row("c", "a", 5.0, 10.0, 1)]

    agg = aggregate_scores(REQ, rows, now_ms=1)

    assert agg.aggregates == {"score:c": 5.0, "max_score:c": 10.0, "attempts_count:c": 2.0}


def test_user_without_attempts_gets_no_update_and_an_empty_certificate_attempt():
    agg = aggregate_scores(REQ, [], now_ms=1)

    assert agg.update is None and agg.certificate_attempt_id == ""
    assert agg.counters == (Metric.DB_SCORE_READ,)


def test_attempts_on_two_contents_give_an_empty_certificate_attempt_id():
    rows = [score_row("c1", "a", 1.0, 1.0, 5), score_row("c2", "b", 1.0, 1.0, 6)]

    agg = aggregate_scores(REQ, rows, now_ms=1)

    assert agg.certificate_attempt_id == ""
    assert agg.update is not None and len(agg.update.agg_details) == 2


def test_certificate_attempt_is_the_latest_to_the_millisecond_and_nulls_count_as_oldest():
    rows = [
        score_row("c", "a", 1.0, 1.0, 1600000500001),
        score_row("c", "b", 1.0, 1.0, 1600000500000),
        score_row("c", "n", 1.0, 1.0, None),
    ]

    agg = aggregate_scores(REQ, rows, now_ms=1)

    assert agg.certificate_attempt_id == "a"
    assert aggregate_scores(REQ, [rows[2]], now_ms=1).certificate_attempt_id == "n"


def test_null_stored_values_read_as_zero_and_null_time_is_left_out_of_agg_details():
    agg = aggregate_scores(REQ, [score_row("c", "a", None, None, None)], now_ms=1)

    assert agg.aggregates == {"score:c": 0.0, "max_score:c": 0.0, "attempts_count:c": 1.0}
    assert agg.agg_details == (
        '{"attempt_id":"a","score":0.0,"content_id":"c","max_score":0.0,"type":"attempt_metrics"}',
    )


def test_update_targets_the_course_row_of_the_batch_and_stamps_every_aggregate_key():
    agg = aggregate_scores(REQ, [score_row("c", "a", 1.0, 2.0, 3)], now_ms=77, agg_type="custom")

    assert agg.update is not None
    u = agg.update
    assert (u.activity_type, u.activity_id, u.user_id, u.context_id) == (
        "Course",
        "course",
        "user",
        "cb:batch",
    )
    assert u.agg_last_updated == {"score:c": 77, "max_score:c": 77, "attempts_count:c": 77}
    assert json.loads(u.agg_details[0])["type"] == "custom"


def test_agg_details_strings_use_gson_escaping():
    agg = aggregate_scores(REQ, [score_row("c<1>", "a'b", 1.0, 2.0, 0)], now_ms=1)

    assert agg.agg_details[0] == (
        '{"attempt_id":"a\\u0027b","last_attempted_on":"Jan 1, 1970, 12:00:00 AM","score":1.0,'
        '"content_id":"c\\u003c1\\u003e","max_score":2.0,"type":"attempt_metrics"}'
    )


def test_certificate_request_stays_valid_json_for_ids_with_quotes():
    event = RecomputeRequest('c"1', "b\\2", "u\n3", "x")

    doc = json.loads(certificate_request(event, "", now_ms=5, request_id="r"))

    assert doc["object"]["id"] == 'b\\2_c"1'
    assert doc["edata"]["userIds"] == ["u\n3"] and doc["edata"]["attemptId"] == ""
    assert doc["mid"] == "LP.5.r"


# --------------------------------------------------------------------------------------------
# Java/Gson formats
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "max_score", "text"),
    [
        (1.33, 2.0, "1.33/2.0"),
        (2.0, 10.0, "2.0/10.0"),
        (0.125, 0.335, "0.12/0.34"),
        (2.675, 1 / 3, "2.67/0.33"),
        (0.0, 1e20, "0.0/100000000000000000000.0"),
        (0.005, 0.015, "0.01/0.01"),  # exact binary values: 0.005000…1 and 0.01499…
    ],
)
def test_grand_total_is_java_decimal_format_0_0_hash_with_half_even_on_binary_values(
    score, max_score, text
):
    assert format_grand_total(score, max_score) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.0, "2.0"),
        (1.33, "1.33"),
        (100.0, "100.0"),
        (0.001, "0.001"),
        (9.99e-4, "9.99E-4"),
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (1.5e-7, "1.5E-7"),
        (123456789.0, "1.23456789E8"),
        (-0.5, "-0.5"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
    ],
)
def test_doubles_print_like_java_double_to_string(value, text):
    assert java_double_to_string(value) == text


@pytest.mark.parametrize(
    ("millis", "text"),
    [
        (1600000500000, "Sep 13, 2020, 12:35:00 PM"),
        (1600000000000, "Sep 13, 2020, 12:26:40 PM"),
        (43200000, "Jan 1, 1970, 12:00:00 PM"),
        (-1, "Dec 31, 1969, 11:59:59 PM"),
        (2**63 - 1, "Aug 17, 292278994, 7:12:55 AM"),
    ],
)
def test_agg_dates_use_gsons_java11_default_format_in_utc(millis, text):
    assert format_agg_date(millis) == text


def test_gson_text_escapes_html_characters_and_control_characters():
    assert gson_roundtrip_json(["<>&='\"\\\n\x01\u2028", None, {"a": None}, 3]) == (
        '["\\u003c\\u003e\\u0026\\u003d\\u0027\\"\\\\\\n\\u0001\\u2028",null,{},3.0]'
    )


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

scores = st.integers(0, 1000).map(lambda i: i / 100)
answers_strategy = st.lists(
    st.tuples(st.sampled_from(["q1", "q2", "q3", "q4"]), st.integers(1, 10**12), scores, scores),
    min_size=1,
    max_size=12,
    unique_by=lambda t: t[1],  # distinct ets: otherwise input order decides ties, as in Sunbird
)


def message_bytes(answers: list[tuple[str, int, float, float]], **overrides: Any) -> bytes:
    events = [answer_event(q, ets, score=s, maxscore=m) for q, ets, s, m in answers]
    return json.dumps(assess_message(events=events, **overrides)).encode()


@given(answers=answers_strategy, data=st.data())
def test_order_of_assess_events_does_not_change_the_attempt_row(answers, data):
    shuffled = data.draw(st.permutations(answers))

    def decide(value: bytes) -> AssessDecision:
        return evaluate_assess_event(
            parse_assess_message(value), leaf_nodes=set(), now_ms=1, stored_attempt=lambda _k: None
        )

    assert decide(message_bytes(answers)).row == decide(message_bytes(shuffled)).row


@given(answers=answers_strategy)
def test_totals_are_the_sum_over_the_latest_answer_of_each_distinct_question(answers):
    event = parse_assess_message(message_bytes(answers))
    assert isinstance(event, BatchAssessEvent)
    latest: dict[str, tuple[int, float, float]] = {}
    for q, ets, s, m in answers:
        if q not in latest or ets > latest[q][0]:
            latest[q] = (ets, s, m)

    result = score_answers(event.answers)

    assert {q.id for q in result.questions} == set(latest)
    assert len(result.questions) == len(latest)
    assert result.total_score == math.fsum(v[1] for v in latest.values())
    assert result.total_max_score == math.fsum(v[2] for v in latest.values())
    assert result.grand_total == format_grand_total(result.total_score, result.total_max_score)


stored_rows = st.lists(
    st.builds(
        lambda c, a, s, m, t: StoredScore(c, a, t, m, s),
        st.sampled_from(["c1", "c2", "c3"]),
        st.text("abcdef", min_size=1, max_size=4),
        scores,
        scores,
        st.one_of(st.none(), st.integers(0, 2 * 10**12)),
    ),
    max_size=10,
    unique_by=lambda r: (r.content_id, r.attempt_id),
)


@given(rows=stored_rows, new_score=scores, content=st.sampled_from(["c1", "c2", "c3"]))
def test_best_score_never_decreases_when_an_attempt_is_added(rows, new_score, content):
    before = aggregate_scores(REQ, rows, now_ms=1).aggregates
    added = StoredScore(content, "zzzzz-new", 5, 10.0, new_score)

    after = aggregate_scores(REQ, [*rows, added], now_ms=1).aggregates

    for key, value in before.items():
        if key.startswith("score:"):
            assert after[key] >= value
    assert after[f"score:{content}"] >= new_score
    assert after[f"attempts_count:{content}"] == before.get(f"attempts_count:{content}", 0.0) + 1


@given(rows=stored_rows, data=st.data())
def test_aggregation_does_not_depend_on_the_order_rows_are_read_in(rows, data):
    shuffled = data.draw(st.permutations(rows))

    assert aggregate_scores(REQ, rows, now_ms=3) == aggregate_scores(REQ, shuffled, now_ms=3)


@settings(max_examples=50)
@given(answers=answers_strategy, ts=st.integers(0, 2 * 10**12))
def test_same_message_twice_writes_identical_rows_and_counts_one_attempt(answers, ts):
    value = message_bytes(answers, assessmentTs=ts)
    flow = MemoryFlow(leaf_nodes={})

    first = flow.process(value)
    attempts = dict(flow.attempts)
    activity = json.dumps({repr(k): v for k, v in flow.activity.items()}, sort_keys=True)
    second = flow.process(value)

    assert first is not None and first.verdict is Verdict.WRITE
    assert second is not None and second.verdict is Verdict.REPLAYED
    assert flow.attempts == attempts
    assert json.dumps({repr(k): v for k, v in flow.activity.items()}, sort_keys=True) == activity
    assert (
        flow.activity_row("lf-course", "user1", "batch1")["aggregates"]["attempts_count:lf-content"]
        == 1.0
    )
    assert len(flow.certs) == 1


@given(answers=answers_strategy)
def test_rules_are_deterministic_for_the_same_inputs(answers):
    value = message_bytes(answers)

    def run() -> tuple[AssessDecision, Any]:
        event = parse_assess_message(value)
        decision = evaluate_assess_event(
            event,
            leaf_nodes={"lf-content"},
            now_ms=10,
            stored_attempt=lambda _k: StoredAttempt(1, 2),
        )
        assert decision.row is not None
        agg = aggregate_scores(event, [stored_score_of(decision.row)], now_ms=10)
        return decision, agg

    assert run() == run()


def test_answer_dataclass_carries_its_position_for_reasons_only():
    a = AssessAnswer(1, "q", 1.0, 1.0, None, None, None, 0.0, (), (), position=3)
    b = AssessAnswer(1, "q", 1.0, 1.0, None, None, None, 0.0, (), (), position=0)

    assert score_answers([a]) == score_answers([b])


def test_deeply_nested_message_is_an_invalid_event_not_a_crash():
    value = b'{"courseId":"c","x":' + b"[" * 200_000 + b"]" * 200_000 + b"}"

    with pytest.raises(InvalidEvent, match="nested too deeply"):
        parse_assess_message(value)


def test_driver_timestamps_convert_to_epoch_milliseconds():
    from datetime import UTC, datetime, timedelta, timezone

    assert epoch_ms(datetime(2020, 9, 13, 12, 35, 0)) == 1600000500000  # naive = UTC
    assert (
        epoch_ms(
            datetime(2020, 9, 13, 18, 5, 0, 1000, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        )
        == 1600000500001
    )
    assert epoch_ms(datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)) == -1
    assert epoch_ms(None) is None and epoch_ms(5) == 5


def test_certificate_request_is_the_documented_text_byte_for_byte():
    event = parse_assess_message(event_bytes("t_b1_1_first_attempt"))

    text = certificate_request(
        event, A1, now_ms=1700000000000, request_id="5f1c2e3a-7b8d-4c9e-a0f1-2b3c4d5e6f70"
    )

    assert text == (
        '{"eid": "BE_JOB_REQUEST","ets": 1700000000000,"mid": "LP.1700000000000.5f1c2e3a-7b8d-'
        '4c9e-a0f1-2b3c4d5e6f70","actor": {"id": "Course Certificate Generator","type": "System"},'
        '"context": {"pdata": {"ver": "1.0","id": "org.sunbird.platform"}},"object": {"id": '
        '"lf-batch-algebra-1_lf-course-algebra","type": "CourseCertificateGeneration"},'
        '"edata": {"userIds": ["lf-user-ada"],"action": "issue-certificate",'
        '"iteration": 1, "trigger": "auto-issue","batchId": "lf-batch-algebra-1","reIssue": false,'
        '"courseId": "lf-course-algebra","attemptId":"lf-attempt-a1"}}'
    )


def schema_columns(name: str) -> list[str]:
    """Column (or UDT field) names of a CREATE TABLE/TYPE in our lernflow/resources/schema.cql."""
    cql = (DATA.parents[1] / "lernflow" / "resources" / "schema.cql").read_text()
    body = cql.split(f"$courses.{name} (", 1)[1].split("\n)", 1)[0].split("PRIMARY KEY")[0]
    while "<" in body:  # drop type arguments such as map<text, int> or list<frozen<...>>
        body = re.sub(r"<[^<>]*>", "", body)
    parts = [p.strip() for p in body.replace("\n", " ").split(",")]
    return [p.split()[0] for p in parts if p]


def test_write_descriptions_use_the_column_and_udt_field_names_of_the_schema():
    from dataclasses import fields

    decision = evaluate_assess_event(
        one_question_event(), leaf_nodes=set(), now_ms=1, stored_attempt=lambda _k: None
    )
    assert decision.row is not None
    agg = aggregate_scores(decision.event, [stored_score_of(decision.row)], now_ms=1)
    assert agg.update is not None

    assert set(decision.row.columns()) == set(schema_columns("assessment_aggregator"))
    assert [f.name for f in fields(decision.row.question[0])] == schema_columns("question")
    activity_columns = set(schema_columns("user_activity_agg")) - {"agg"}
    assert {f.name for f in fields(agg.update)} == activity_columns
