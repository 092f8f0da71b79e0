"""assessment-aggregator on the real stack, on our own data (tests/data/assessment).

T-B1 (nine events in order), T-B2 (question-count check with a local content read API),
D-B1 (recompute), D-B2/D-B3 as a full replay and as malformed input. The expected values are
worked out from the rules in docs/flows/assessment-aggregator.md.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, kafka_consumer, redis_client
from lernflow.sources.options import consumer_group
from tests.flowkit import create_topics, produce, read_json, run_to_end
from tests.paths import DATA

FLOW = "assessment-aggregator"
OWN = DATA / "assessment"
T_B1 = [
    "t_b1_1_first_attempt", "t_b1_2_older_attempt", "t_b1_3_named_fail_but_valid",
    "t_b1_4_nested_params", "t_b1_5_newer_attempt", "t_b1_6_repeated_questions",
    "t_b1_7_course_without_leaf_nodes", "t_b1_8_content_not_in_course", "t_b1_9_second_attempt",
]  # fmt: skip
ADA, ALGEBRA, BATCH_ALG = "lf-user-ada", "lf-course-algebra", "lf-batch-algebra-1"

# What T-B1 leaves in the tables: (user, course, batch, content, attempt, last_attempted_on,
# total_score, total_max_score, grand_total, number of questions) per attempt row ...
ATTEMPTS_AFTER_T_B1 = [
    (ADA, ALGEBRA, BATCH_ALG, "lf-quiz-fractions", "lf-attempt-a1",
     1600000500000, 2.0, 3.0, "2.0/3.0", 3),  # event 5 overwrote event 1; event 2 was older
    (ADA, ALGEBRA, BATCH_ALG, "lf-quiz-fractions", "lf-attempt-a2",
     1600000250000, 1.33, 3.0, "1.33/3.0", 3),
    (ADA, "lf-course-algebra-unlisted", BATCH_ALG, "lf-quiz-fractions-unlisted", "lf-attempt-a1",
     1600000000000, 1.33, 2.0, "1.33/2.0", 2),
    ("lf-user-bo", "lf-course-geometry", "lf-batch-geometry-1", "lf-quiz-angles", "lf-attempt-b1",
     1600100000000, 5.0, 10.0, "5.0/10.0", 1),
    ("lf-user-cy", "lf-course-arith", "lf-batch-arith-1", "lf-quiz-sums", "lf-attempt-c1",
     1600200000000, 1.0, 1.0, "1.0/1.0", 1),
    ("lf-user-dee", "lf-course-physics", "lf-batch-physics-1", "lf-quiz-forces", "lf-attempt-d1",
     1600300000000, 2.0, 2.0, "2.0/2.0", 2),
]  # fmt: skip


def _course_aggregates(content: str, score: float, max_score: float, count: float) -> dict:
    return {
        f"score:{content}": score,
        f"max_score:{content}": max_score,
        f"attempts_count:{content}": count,
    }


# ... and (course, user, context, aggregates) per user_activity_agg row
AGGREGATES_AFTER_T_B1 = [
    (ALGEBRA, ADA, f"cb:{BATCH_ALG}", _course_aggregates("lf-quiz-fractions", 2.0, 3.0, 2.0)),
    ("lf-course-algebra-unlisted", ADA, f"cb:{BATCH_ALG}",
     _course_aggregates("lf-quiz-fractions-unlisted", 1.33, 2.0, 1.0)),
    ("lf-course-arith", "lf-user-cy", "cb:lf-batch-arith-1",
     _course_aggregates("lf-quiz-sums", 1.0, 1.0, 1.0)),
    ("lf-course-geometry", "lf-user-bo", "cb:lf-batch-geometry-1",
     _course_aggregates("lf-quiz-angles", 5.0, 10.0, 1.0)),
    ("lf-course-physics", "lf-user-dee", "cb:lf-batch-physics-1",
     _course_aggregates("lf-quiz-forces", 2.0, 2.0, 1.0)),
]  # fmt: skip


def _event(name: str) -> bytes:
    return (OWN / "events" / f"{name}.json").read_bytes().strip()


def _seed_relation_cache(settings: Settings) -> None:
    doc = json.loads((OWN / "relation_cache.json").read_text())
    client = redis_client(settings.redis, settings.redis.relation_cache_db)
    for key, members in doc.items():
        client.sadd(key, *members)
    client.close()


def _seed_content_cache(settings: Settings) -> None:
    doc = json.loads((OWN / "content_cache.json").read_text())
    client = redis_client(settings.redis, settings.redis.content_cache_db)
    for key, value in doc.items():
        client.set(key, value)
    client.close()


def _topics(settings: Settings) -> tuple[str, str, str]:
    t = settings.topics
    return (
        t.full(t.telemetry_assess),
        t.full(t.telemetry_assess_failed),
        t.full(t.issue_certificate_request),
    )


def _rows(settings: Settings, cql: str, *args: object) -> list:
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        return list(session.execute(cql, args))
    finally:
        cluster.shutdown()


def _ms(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


def _state(settings: Settings) -> tuple[list, list]:
    """Every attempt row and every user_activity_agg row, all columns the flow writes."""
    attempts = _rows(
        settings,
        "SELECT user_id, course_id, batch_id, content_id, attempt_id, created_on, updated_on, "
        "last_attempted_on, total_score, total_max_score, grand_total, question "
        "FROM assessment_aggregator",
    )
    aggs = _rows(
        settings,
        "SELECT activity_id, user_id, context_id, aggregates, agg_details, agg_last_updated "
        "FROM user_activity_agg",
    )
    return sorted(map(tuple, attempts)), sorted(
        (
            a.activity_id,
            a.user_id,
            a.context_id,
            tuple(sorted(a.aggregates.items())),
            tuple(a.agg_details),
            tuple(sorted(a.agg_last_updated.items())),
        )
        for a in aggs
    )


def _summary(settings: Settings) -> tuple[list, list]:
    """The state reduced to the values the rules decide (see ATTEMPTS/AGGREGATES_AFTER_T_B1)."""
    attempts = _rows(
        settings,
        "SELECT user_id, course_id, batch_id, content_id, attempt_id, last_attempted_on, "
        "total_score, total_max_score, grand_total, question FROM assessment_aggregator",
    )
    aggs = _rows(
        settings, "SELECT activity_id, user_id, context_id, aggregates FROM user_activity_agg"
    )
    return (
        sorted((*r[:5], _ms(r.last_attempted_on), *r[6:9], len(r.question)) for r in attempts),
        sorted((a.activity_id, a.user_id, a.context_id, dict(a.aggregates)) for a in aggs),
    )


def _committed(settings: Settings) -> int:
    """The input offsets the flow has committed, summed over the partitions."""
    inp = _topics(settings)[0]
    consumer = kafka_consumer(settings.kafka, group_id=consumer_group(settings, FLOW))
    try:
        parts = [TopicPartition(inp, p) for p in range(settings.kafka.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=30))
    finally:
        consumer.close()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"flow": FLOW, **labels}) or 0.0


@pytest.fixture
def t_b1(settings: Settings) -> Settings:
    create_topics(settings)
    _seed_relation_cache(settings)
    inp, _failed, _cert = _topics(settings)
    for name in T_B1:  # in order, one partition (same key) so the order holds
        produce(settings, inp, [_event(name)], key=b"t-b1")
    run_to_end(FLOW, settings)
    return settings


def test_t_b1_rows_aggregates_certificates_and_failed_event(t_b1: Settings) -> None:
    settings = t_b1
    _inp, failed, cert = _topics(settings)

    assert _summary(settings) == (ATTEMPTS_AFTER_T_B1, AGGREGATES_AFTER_T_B1)
    a1 = _rows(
        settings,
        "SELECT created_on, updated_on FROM assessment_aggregator WHERE user_id=%s AND "
        "course_id=%s AND batch_id=%s AND content_id=%s AND attempt_id=%s",
        ADA, ALGEBRA, BATCH_ALG, "lf-quiz-fractions", "lf-attempt-a1",
    )  # fmt: skip
    assert a1[0].created_on <= a1[0].updated_on  # created by event 1, overwritten by event 5
    (ada,) = _rows(
        settings,
        "SELECT agg_details FROM user_activity_agg WHERE activity_type='Course' "
        "AND activity_id=%s AND user_id=%s AND context_id=%s",
        ALGEBRA, ADA, f"cb:{BATCH_ALG}",
    )  # fmt: skip
    assert list(ada.agg_details) == [
        '{"attempt_id":"lf-attempt-a1","last_attempted_on":"Sep 13, 2020, 12:35:00 PM",'
        '"score":2.0,"content_id":"lf-quiz-fractions","max_score":3.0,"type":"attempt_metrics"}',
        '{"attempt_id":"lf-attempt-a2","last_attempted_on":"Sep 13, 2020, 12:30:50 PM",'
        '"score":1.33,"content_id":"lf-quiz-fractions","max_score":3.0,"type":"attempt_metrics"}',
    ]

    certs = read_json(settings, cert)
    # one per written event (1, 3, 4, 5, 6, 7, 9); a1 is the latest attempt of lf-quiz-fractions
    assert Counter(c["edata"]["attemptId"] for c in certs) == {
        "lf-attempt-a1": 4, "lf-attempt-b1": 1, "lf-attempt-c1": 1, "lf-attempt-d1": 1,
    }  # fmt: skip
    parked = read_json(settings, failed)
    assert len(parked) == 1
    assert parked[0]["payload"].strip() == _event("t_b1_8_content_not_in_course").decode()
    assert "lf-quiz-not-in-course is not a leaf node" in parked[0]["reason"]
    assert _committed(settings) == len(T_B1)


def test_replaying_all_input_changes_no_row_and_sends_no_certificate(t_b1: Settings) -> None:
    """D-B2 for every event at once: event 5 again (and the other written ones) is a replay."""
    settings = t_b1
    _inp, failed, cert = _topics(settings)
    assert _summary(settings) == (ATTEMPTS_AFTER_T_B1, AGGREGATES_AFTER_T_B1)
    before = _state(settings)
    assert len(read_json(settings, cert)) == 7
    read_before = _metric("lernflow_events_in_total")
    older_before = _metric("lernflow_events_skipped_total", reason_kind="older")
    parked = _metric("lernflow_events_skipped_total", reason_kind="already-parked")

    run_to_end(FLOW, settings, from_beginning=True)

    # the nine events were read again: events 1 and 2 are now older than the stored attempt
    # (event 5's time), event 8 is not parked again (parking is idempotent by origin) ...
    assert _metric("lernflow_events_in_total") - read_before == len(T_B1)
    assert _metric("lernflow_events_skipped_total", reason_kind="older") - older_before == 2
    assert _metric("lernflow_events_skipped_total", reason_kind="already-parked") - parked == 1
    assert len(read_json(settings, failed)) == 1
    # ... and nothing else changed
    assert _state(settings) == before
    assert len(read_json(settings, cert)) == 7


def test_d_b1_recompute_event_rewrites_same_aggregates_and_requests_certificate(
    t_b1: Settings,
) -> None:
    settings = t_b1
    inp, _failed, cert = _topics(settings)
    assert _summary(settings) == (ATTEMPTS_AFTER_T_B1, AGGREGATES_AFTER_T_B1)
    attempts_before = _state(settings)[0]
    seen = {m["mid"] for m in read_json(settings, cert)}

    produce(settings, inp, [_event("d_b1_recompute")], key=b"t-b1")
    run_to_end(FLOW, settings)

    # the topic has several partitions, so "the last one read" is not "the newest": diff by mid
    new = [m for m in read_json(settings, cert) if m["mid"] not in seen]
    assert [(m["edata"]["attemptId"], m["edata"]["userIds"]) for m in new] == [
        ("lf-attempt-a1", [ADA])
    ]
    assert _state(settings)[0] == attempts_before  # no assessment_aggregator write
    assert _summary(settings)[1] == AGGREGATES_AFTER_T_B1


def test_d_b3_malformed_and_edge_events_are_parked_with_reasons_and_good_ones_applied(
    settings: Settings,
) -> None:
    create_topics(settings)
    _seed_relation_cache(settings)
    inp, failed, _cert = _topics(settings)
    good = _event("t_b1_6_repeated_questions")
    bad = [b"{not json", b"[]", b'{"edata": 5}', b"\xff\xfe", b'{"assessmentTs": "x"}']
    produce(settings, inp, [bad[0], good, *bad[1:]], key=b"k")
    run_to_end(FLOW, settings)
    parked = read_json(settings, failed)
    assert len(parked) == len(bad)
    assert all(p["reason"] and p["source"]["topic"] == inp for p in parked)
    rows = _rows(
        settings,
        "SELECT total_score FROM assessment_aggregator WHERE user_id=%s AND course_id=%s",
        "lf-user-dee", "lf-course-physics",
    )  # fmt: skip
    assert [r.total_score for r in rows] == [2.0]
    assert _committed(settings) == len(bad) + 1


class _ContentRead:
    """A local stand-in for the content read API (GET <prefix><content id>)."""

    def __init__(self, totals: dict[str, Any]) -> None:
        import http.server
        import threading

        totals_ = totals
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cid = self.path.rsplit("/", 1)[-1]
                requests.append(cid)
                body = json.dumps(
                    {
                        "responseCode": "OK",
                        "result": {
                            "content": {"identifier": cid, "totalQuestions": totals_.get(cid)}
                        },
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/content/v3/read/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_t_b2_question_count_check_uses_cache_then_content_read_api(settings: Settings) -> None:
    api = _ContentRead({"lf-quiz-bonds": 4, "lf-quiz-cells": 2})
    try:
        s = settings.with_overrides(
            assessment=settings.assessment.model_copy(
                update={"skip_missing_records": True, "content_read_url": api.url}
            )
        )
        create_topics(s)
        _seed_relation_cache(s)
        _seed_content_cache(s)
        inp, failed, cert = _topics(s)
        for name in [
            "t_b2_1_cache_count_fits",
            "t_b2_2_api_count_fits",
            "t_b2_3_too_many_questions",
            "t_b2_4_api_count_fits_listed_course",
        ]:
            produce(s, inp, [_event(name)], key=b"t-b2")
        run_to_end(FLOW, s)
    finally:
        api.close()
    written = _rows(
        s,
        "SELECT course_id, content_id, grand_total FROM assessment_aggregator WHERE user_id=%s "
        "ALLOW FILTERING",
        "lf-user-eli",
    )
    assert sorted(tuple(r) for r in written) == [
        ("lf-course-bio", "lf-quiz-cells", "1.0/2.0"),
        ("lf-course-chem", "lf-quiz-atoms", "1.33/2.0"),
        ("lf-course-chem", "lf-quiz-bonds", "1.33/4.0"),
    ]
    # atoms and ions are answered from the content cache; only the uncached two are read
    assert sorted(api.requests) == ["lf-quiz-bonds", "lf-quiz-cells"]
    parked = read_json(s, failed)
    assert len(parked) == 1
    assert json.loads(parked[0]["payload"])["contentId"] == "lf-quiz-ions"
    assert "2 distinct questions exceed totalQuestions 1" in parked[0]["reason"]
    assert len(read_json(s, cert)) == 3
