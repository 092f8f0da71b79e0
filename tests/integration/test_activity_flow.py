"""activity-aggregate-updater on the real stack: each upstream case on our own data (tests/data/
activity), replay safety, bad input. The rules are in docs/flows/activity-aggregate-updater.md;
the expected values below are worked out from them by hand, not taken from a run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, kafka_consumer, redis_client
from lernflow.sources.options import consumer_group
from tests.flowkit import create_topics, produce, read_json, run_to_end
from tests.paths import DATA

FLOW = "activity-aggregate-updater"
AX = DATA / "activity"

# (user, course, batch) of each course of tests/data/activity
MAYA = ("lf-user-maya", "lf-course-botany", "lf-batch-botany-01")
TOMAS = ("lf-user-tomas", "lf-course-geology", "lf-batch-geology-01")
NOOR = ("lf-user-noor", "lf-course-optics", "lf-batch-optics-01")
SEEDS, ROOTS, LEAVES, FLOWERS = (
    "lf-botany-seeds", "lf-botany-roots", "lf-botany-leaves", "lf-botany-flowers",
)  # fmt: skip
GROWTH, PLANTS = "lf-botany-unit-growth", "lf-botany-unit-plants"
T_A1 = ("t_a1_1_seeds", "t_a1_2_roots", "t_a1_3_leaves")

COURSES = ("geology", "botany", "optics")

# Dedup keys: MD5 of "course|batch|user|content|2", uppercase (computed with md5sum).
KEY_SEEDS = "C15ACB0293A153BC696116C8603F2714"
KEY_ROOTS = "C7837490FC10FD003D20BFA746FAD1D3"
KEY_LEAVES = "559E8468A07C6F54809E34329CC87922"
KEY_FLOWERS = "B3163457002ED87C46F7FD2C382A3959"
KEY_ROCKS = "5FFCE81E1904C8D5D3DEB0CB2DD56E56"
KEY_LENSES = "AA7B4FAF8A3CE03330C602009855A271"
KEY_MIRRORS = "60071D4611D17D097218F22B9597D513"


def _fixture(name: str) -> bytes:
    """One event of tests/data/activity/events."""
    return (AX / "events" / f"{name}.json").read_bytes().strip()


def _execute(settings: Settings, statements: list[str]) -> None:
    cluster, session = cassandra_session(settings.cassandra)
    try:
        for stmt in statements:
            session.execute(stmt)
    finally:
        cluster.shutdown()


def seed_cassandra(settings: Settings) -> None:
    """The LMS rows of tests/data/activity/lms_seed.json, into the test keyspace."""
    seed = json.loads((AX / "lms_seed.json").read_text())
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        for table, rows in seed.items():
            for row in rows:
                cols = ", ".join(row)
                marks = ", ".join(["%s"] * len(row))
                session.execute(
                    f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values())
                )
    finally:
        cluster.shutdown()


def seed_relation_cache(settings: Settings, *names: str) -> None:
    """SADD the relation-cache sets of the named courses (all three when none is named)."""
    client = redis_client(settings.redis, settings.redis.relation_cache_db)
    for name in names or COURSES:
        for key, members in json.loads(
            (AX / "relation_cache" / f"{name}.json").read_text()
        ).items():
            client.sadd(key, *members)
    client.close()


def _topics(settings: Settings) -> tuple[str, str, str, str]:
    t = settings.topics
    return (
        t.full(t.course_batch_job_request), t.full(t.activity_agg_failed),
        t.full(t.issue_certificate_request), t.full(t.telemetry_raw),
    )  # fmt: skip


def _rows(settings: Settings, cql: str, *args: object) -> list:
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        return list(session.execute(cql, args))
    finally:
        cluster.shutdown()


def state(settings: Settings) -> tuple:
    """The job's tables, without wall-clock columns."""
    consumption = sorted(
        (r.userid, r.courseid, r.batchid, r.contentid, r.status, r.viewcount, r.completedcount)
        for r in _rows(settings, "SELECT * FROM user_content_consumption")
    )
    aggs = sorted(
        (r.activity_id, r.user_id, r.context_id, tuple(sorted((r.aggregates or {}).items())))
        for r in _rows(settings, "SELECT * FROM user_activity_agg")
    )
    enrol = sorted(
        (r.userid, r.courseid, r.batchid, r.status, r.progress,
         tuple(sorted((r.contentstatus or {}).items())), r.completedon is not None)
        for r in _rows(settings, "SELECT * FROM user_enrolments")
    )  # fmt: skip
    return consumption, aggs, enrol


def dedup_keys(settings: Settings) -> set[str]:
    client = redis_client(settings.redis, settings.redis.dedup_db)
    keys = set(client.keys("*"))
    client.close()
    return keys


def committed_position(settings: Settings) -> int:
    """Sum over the input's partitions of the flow's committed consumer-group offsets."""
    inp = settings.topics.full(settings.topics.course_batch_job_request)
    consumer = kafka_consumer(settings.kafka, group_id=consumer_group(settings, FLOW))
    try:
        parts = [TopicPartition(inp, p) for p in range(settings.kafka.partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=30))
    finally:
        consumer.close()


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"flow": FLOW, **labels}) or 0.0


@pytest.fixture
def seeded(settings: Settings) -> Settings:
    create_topics(settings)
    seed_cassandra(settings)
    seed_relation_cache(settings)
    return settings


def _agg(settings: Settings, activity: str, user: str = MAYA[0], batch: str = MAYA[2]) -> dict:
    rows = _rows(
        settings,
        "SELECT aggregates FROM user_activity_agg WHERE activity_type='Course' AND activity_id=%s "
        "AND user_id=%s AND context_id=%s",
        activity, user, f"cb:{batch}",
    )  # fmt: skip
    return dict(rows[0].aggregates) if rows else {}


def _consumption(settings: Settings, key: tuple[str, str, str]) -> dict[str, tuple[Any, ...]]:
    """contentid -> (viewcount, completedcount, status, progress) of one enrolment."""
    return {
        r.contentid: (r.viewcount, r.completedcount, r.status, r.progress)
        for r in _rows(
            settings,
            "SELECT * FROM user_content_consumption WHERE userid=%s AND courseid=%s AND batchid=%s",
            *key,
        )
    }


def _enrolment(settings: Settings, key: tuple[str, str, str]) -> Any:
    rows = _rows(
        settings,
        "SELECT * FROM user_enrolments WHERE userid=%s AND courseid=%s AND batchid=%s",
        *key,
    )
    return rows[0] if rows else None


def _audit_summary(settings: Settings, topic: str) -> list[tuple[str, str]]:
    return sorted((a["edata"]["type"], a["object"]["id"]) for a in read_json(settings, topic))


def test_t_a1_completes_the_enrolment_once_with_sunbird_outputs(seeded: Settings) -> None:
    """All four lessons are already status 2 in the LMS: the first event completes the
    enrolment (progress 4 of 4); the next two only count their lesson."""
    s = seeded
    inp, failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture(n) for n in T_A1], key=MAYA[0].encode())
    run_to_end(FLOW, s)

    # each completed lesson: one more view and one completion; flowers untouched
    assert _consumption(s, MAYA) == {
        SEEDS: (2, 1, 2, 100), ROOTS: (3, 1, 2, 100),
        LEAVES: (2, 1, 2, 100), FLOWERS: (3, 0, 2, 100),
    }  # fmt: skip
    assert _agg(s, MAYA[1]) == {"completedCount": 4.0}
    assert _agg(s, GROWTH) == {"completedCount": 2.0}
    assert _agg(s, PLANTS) == {"completedCount": 2.0}  # flowers is optional in this unit
    enrol = _enrolment(s, MAYA)
    assert (enrol.status, enrol.progress) == (2, 4)
    assert dict(enrol.contentstatus) == {SEEDS: 2, ROOTS: 2, LEAVES: 2, FLOWERS: 2}
    assert enrol.completedon is not None

    certs = read_json(s, cert)
    assert len(certs) == 1
    assert certs[0]["object"]["id"] == "lf-batch-botany-01_lf-course-botany"
    assert certs[0]["edata"]["userIds"] == ["lf-user-maya"]
    assert (certs[0]["edata"]["courseId"], certs[0]["edata"]["batchId"]) == MAYA[1:]
    # lessons viewed before: no "start"; never completed before: "complete"
    assert _audit_summary(s, audit) == [
        ("complete", LEAVES), ("complete", ROOTS), ("complete", SEEDS),
        ("enrol-complete", "lf-user-maya"),
    ]  # fmt: skip
    assert dedup_keys(s) == {KEY_SEEDS, KEY_ROOTS, KEY_LEAVES}
    assert read_json(s, failed) == []


def test_same_input_twice_after_dedup_expiry_leaves_the_same_state_and_one_certificate(
    seeded: Settings,
) -> None:
    s = seeded
    inp, _failed, cert, _audit = _topics(s)
    produce(
        s, inp, [*(_fixture(n) for n in T_A1), _fixture("d_a4_three_of_four_completed")], key=b"k"
    )
    run_to_end(FLOW, s)
    first = state(s)
    assert _agg(s, MAYA[1]) == {"completedCount": 4.0}
    redis_client(s.redis, s.redis.dedup_db).flushdb()  # the dedup TTL has expired
    run_to_end(FLOW, s, from_beginning=True)
    assert state(s) == first
    assert len(read_json(s, cert)) == 1


def _hierarchy(settings: Settings, course: str, status: str) -> None:
    doc = json.dumps({"identifier": course, "status": status})
    _execute(settings, [
        f"INSERT INTO {settings.cassandra.hierarchy_keyspace}.content_hierarchy "
        f"(identifier, hierarchy) VALUES ('{course}', '{doc}')"
    ])  # fmt: skip


def test_t_a2_live_course_without_leaf_nodes_is_parked_and_nothing_is_written(
    seeded: Settings,
) -> None:
    s = seeded
    redis_client(s.redis, s.redis.relation_cache_db).flushdb()
    _hierarchy(s, MAYA[1], "Live")
    before = state(s)
    inp, failed, cert, _audit = _topics(s)
    produce(s, inp, [_fixture(n) for n in T_A1], key=b"k")
    run_to_end(FLOW, s)  # does not crash
    parked = read_json(s, failed)
    assert len(parked) == 3
    assert all(
        "leaf nodes are not available for a published collection: lf-course-botany" in p["reason"]
        for p in parked
    )
    assert {json.loads(p["payload"])["edata"]["contents"][0]["contentId"] for p in parked} == {
        SEEDS,
        ROOTS,
        LEAVES,
    }
    assert state(s) == before  # no half-applied counts
    assert _consumption(s, MAYA)[SEEDS] == (1, 0, 2, 100)  # the seed row, as written by the LMS
    assert dedup_keys(s) == set()
    assert read_json(s, cert) == []


def test_t_a3_retired_course_skips_progress_and_certificate(seeded: Settings) -> None:
    s = seeded
    redis_client(s.redis, s.redis.relation_cache_db).flushdb()
    _hierarchy(s, MAYA[1], "Retired")
    retired_before = _metric("lernflow_events_skipped_total", reason_kind="retired-collection")
    inp, failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture(n) for n in T_A1], key=b"k")
    run_to_end(FLOW, s)
    assert dedup_keys(s) == set()
    assert read_json(s, cert) == []
    assert read_json(s, failed) == []
    assert _enrolment(s, MAYA).status == 1
    # consumption still counted; no course progress, and no unit rows (no ancestors cached)
    cons = _consumption(s, MAYA)
    assert {c: v[:2] for c, v in cons.items()} == {
        SEEDS: (2, 1),
        ROOTS: (3, 1),
        LEAVES: (2, 1),
        FLOWERS: (3, 0),
    }
    assert _rows(s, "SELECT * FROM user_activity_agg") == []
    assert _audit_summary(s, audit) == [
        ("complete", LEAVES),
        ("complete", ROOTS),
        ("complete", SEEDS),
    ]
    retired = _metric("lernflow_events_skipped_total", reason_kind="retired-collection")
    assert retired - retired_before == 3


def test_d_a1_no_enrolment_row_means_no_enrolment_write(seeded: Settings) -> None:
    """Only rocks (status 2) counts; fossils is still status 1 in the LMS, so 2 of 3 lessons."""
    s = seeded
    inp, failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture("d_a1_one_completed_no_enrolment")], key=b"k")
    run_to_end(FLOW, s)
    user, course, batch = TOMAS
    assert {c: v[:2] for c, v in _consumption(s, TOMAS).items()} == {
        "lf-geology-rocks": (6, 2),
        "lf-geology-minerals": (2, 2),
        "lf-geology-fossils": (0, 1),
    }
    assert _agg(s, course, user, batch) == {"completedCount": 2.0}
    for unit in ("lf-geology-unit-1", "lf-geology-unit-2", "lf-geology-unit-3"):
        assert _agg(s, unit, user, batch) == {"completedCount": 1.0}, unit
    assert _rows(s, "SELECT * FROM user_enrolments WHERE userid=%s", user) == []
    assert dedup_keys(s) == {KEY_ROCKS}
    # viewed and completed before: no content audit; no enrolment: no certificate
    assert read_json(s, audit) == [] and read_json(s, cert) == [] and read_json(s, failed) == []


def test_d_a3_other_actions_are_skipped(seeded: Settings) -> None:
    s = seeded
    inp, failed, cert, audit = _topics(s)
    before = state(s)
    skipped_before = _metric("lernflow_events_skipped_total", reason_kind="other-action")
    read_before = _metric("lernflow_events_in_total")
    produce(s, inp, [_fixture("d_a3_other_action")], key=b"k")
    run_to_end(FLOW, s)
    # the event was read and counted as skipped, and the position moved past it ...
    assert _metric("lernflow_events_in_total") - read_before == 1
    assert (
        _metric("lernflow_events_skipped_total", reason_kind="other-action") - skipped_before == 1
    )
    assert committed_position(s) == 1
    # ... and nothing else happened
    assert state(s) == before
    assert dedup_keys(s) == set()
    assert read_json(s, failed) == [] and read_json(s, cert) == [] and read_json(s, audit) == []


def test_d_a4_multi_content_event_completes_with_optional_excluded(seeded: Settings) -> None:
    """Seeds, leaves and flowers completed in one message (roots only in progress in it)."""
    s = seeded
    inp, failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture("d_a4_three_of_four_completed")], key=b"k")
    run_to_end(FLOW, s)
    assert {c: v[:2] for c, v in _consumption(s, MAYA).items()} == {
        SEEDS: (2, 1),
        ROOTS: (2, 0),
        LEAVES: (2, 1),
        FLOWERS: (4, 1),
    }
    assert _agg(s, PLANTS) == {"completedCount": 2.0}
    assert _agg(s, GROWTH) == {"completedCount": 2.0}
    assert _agg(s, MAYA[1]) == {"completedCount": 4.0}
    assert (_enrolment(s, MAYA).status, _enrolment(s, MAYA).progress) == (2, 4)
    assert len(read_json(s, cert)) == 1
    assert _audit_summary(s, audit) == [
        ("complete", FLOWERS), ("complete", LEAVES), ("complete", SEEDS),
        ("enrol-complete", "lf-user-maya"),
    ]  # fmt: skip
    assert dedup_keys(s) == {KEY_SEEDS, KEY_LEAVES, KEY_FLOWERS}
    assert read_json(s, failed) == []


def test_d_a5_redelivery_within_the_dedup_window_has_no_effect(seeded: Settings) -> None:
    s = seeded
    inp, failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture("t_a1_1_seeds")], key=b"k")
    run_to_end(FLOW, s)
    after_first = state(s)
    maya = (*MAYA, "cb:" + MAYA[2])
    done = ((FLOWERS, 2), (LEAVES, 2), (ROOTS, 2), (SEEDS, 2))
    assert after_first == (
        [
            (*MAYA, FLOWERS, 2, 3, 0), (*MAYA, LEAVES, 2, 1, 0),
            (*MAYA, ROOTS, 2, 2, 0), (*MAYA, SEEDS, 2, 2, 1),
            (*TOMAS, "lf-geology-fossils", 1, 0, 1), (*TOMAS, "lf-geology-minerals", 2, 2, 2),
            (*TOMAS, "lf-geology-rocks", 2, 5, 1),
        ],
        [
            (GROWTH, maya[0], maya[3], (("completedCount", 2.0),)),
            (PLANTS, maya[0], maya[3], (("completedCount", 2.0),)),
            (MAYA[1], maya[0], maya[3], (("completedCount", 4.0),)),
        ],
        [(*MAYA, 2, 4, done, True)],
    )  # fmt: skip
    assert _audit_summary(s, audit) == [("complete", SEEDS), ("enrol-complete", "lf-user-maya")]
    assert len(read_json(s, cert)) == 1
    assert dedup_keys(s) == {KEY_SEEDS}

    dedup_before = _metric("lernflow_events_deduplicated_total")
    produce(s, inp, [_fixture("t_a1_1_seeds")], key=b"k")  # a new message, same completion
    run_to_end(FLOW, s)
    assert _metric("lernflow_events_deduplicated_total") - dedup_before == 1
    assert committed_position(s) == 2
    assert state(s) == after_first
    assert _audit_summary(s, audit) == [("complete", SEEDS), ("enrol-complete", "lf-user-maya")]
    assert len(read_json(s, cert)) == 1
    assert read_json(s, failed) == []


def test_a_thousand_malformed_events_are_parked_and_good_ones_around_them_applied(
    seeded: Settings,
) -> None:
    s = seeded
    inp, failed, cert, _audit = _topics(s)
    base = json.loads(_fixture("t_a1_1_seeds"))
    bad: list[bytes] = []
    for i in range(1000):
        kind = i % 8
        if kind == 0:
            bad.append(b"{broken json %d" % i)
        elif kind == 1:
            bad.append(json.dumps({"eid": "BE_JOB_REQUEST", "n": i}).encode())  # no edata
        elif kind == 2:
            e = json.loads(json.dumps(base))
            del e["edata"]["userId"]
            bad.append(json.dumps(e).encode())
        elif kind == 3:
            e = json.loads(json.dumps(base))
            e["edata"]["contents"] = [{"contentId": SEEDS, "status": "2"}]
            bad.append(json.dumps(e).encode())
        elif kind == 4:
            e = json.loads(json.dumps(base))
            e["edata"]["contents"] = SEEDS
            bad.append(json.dumps(e).encode())
        elif kind == 5:
            e = json.loads(json.dumps(base))
            e["edata"]["batchId"] = 42
            bad.append(json.dumps(e).encode())
        elif kind == 6:
            bad.append(b"\xff\xfe\x00" + bytes([i % 256]))
        else:
            bad.append(json.dumps([i]).encode())
    good = [_fixture(n) for n in T_A1]
    produce(s, inp, bad[:500] + good[:1] + bad[500:] + good[1:], key=b"k")
    run_to_end(FLOW, s)
    parked = read_json(s, failed)
    assert len(parked) == 1000
    assert all(
        p["reason"] and p["source"]["topic"] == inp and isinstance(p["source"]["offset"], int)
        for p in parked
    )
    assert _agg(s, MAYA[1]) == {"completedCount": 4.0}
    assert {c: v[:2] for c, v in _consumption(s, MAYA).items()} == {
        SEEDS: (2, 1),
        ROOTS: (3, 1),
        LEAVES: (2, 1),
        FLOWERS: (3, 0),
    }
    assert len(read_json(s, cert)) == 1


def test_d_a2_contents_of_one_message_are_applied_together(seeded: Settings) -> None:
    """Upstream splits such a message into one record per content, and the second record reads
    the row the first just created with no status (as in progress), so it counts 1. lernflow
    applies the message's completions together and counts both (docs/fixes-over-sunbird.md)."""
    s = seeded
    inp, failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture("d_a2_two_completed_in_one_message")], key=b"k")
    run_to_end(FLOW, s)
    user, course, batch = NOOR
    assert {c: v[:2] for c, v in _consumption(s, NOOR).items()} == {
        "lf-optics-lenses": (1, 1),
        "lf-optics-mirrors": (1, 1),
    }
    assert _agg(s, course, user, batch) == {"completedCount": 2.0}
    assert _agg(s, "lf-optics-unit-light", user, batch) == {"completedCount": 2.0}
    assert _agg(s, "lf-optics-unit-glass", user, batch) == {"completedCount": 1.0}
    # never viewed, never completed: a "start" and a "complete" for each lesson
    assert _audit_summary(s, audit) == [
        ("complete", "lf-optics-lenses"), ("complete", "lf-optics-mirrors"),
        ("start", "lf-optics-lenses"), ("start", "lf-optics-mirrors"),
    ]  # fmt: skip
    assert _rows(s, "SELECT * FROM user_enrolments WHERE userid=%s", user) == []
    assert dedup_keys(s) == {KEY_LENSES, KEY_MIRRORS}
    assert read_json(s, failed) == [] and read_json(s, cert) == []
