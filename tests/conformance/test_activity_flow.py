"""activity-aggregate-updater on the real stack with Sunbird's own files (conformance run)."""

from __future__ import annotations

import json
import re

import pytest

from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session, redis_client
from tests.conformance.conftest import SUNBIRD_FIXTURES
from tests.flowkit import create_topics, produce, read_json, run_to_end

FLOW = "activity-aggregate-updater"
FX = SUNBIRD_FIXTURES / "activity"


def _fixture(name: str) -> bytes:
    return (FX / f"{name}.json").read_bytes().strip()


def _execute(settings: Settings, statements: list[str]) -> None:
    cluster, session = cassandra_session(settings.cassandra)
    try:
        for stmt in statements:
            session.execute(stmt)
    finally:
        cluster.shutdown()


def seed_cassandra(settings: Settings) -> None:
    """The INSERTs of Sunbird's test.cql, into the test keyspace."""
    text = (FX / "test.cql").read_text()
    inserts = re.findall(r"^INSERT INTO .*?;", text, flags=re.MULTILINE | re.DOTALL)
    ks = settings.cassandra.courses_keyspace
    _execute(settings, [s.replace("sunbird_courses.", f"{ks}.").rstrip(";") for s in inserts])


def seed_relation_cache(settings: Settings, *cases: int) -> None:
    client = redis_client(settings.redis, settings.redis.relation_cache_db)
    for case in cases:
        doc = json.loads((FX / f"CASE_{case}_cacheData.json").read_text())
        for entry in doc["cacheData"]:
            for pairs in entry.values():
                for key, members in pairs.items():
                    client.sadd(key, *(members if isinstance(members, list) else [members]))
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


@pytest.fixture
def seeded(settings: Settings) -> Settings:
    create_topics(settings)
    seed_cassandra(settings)
    seed_relation_cache(settings, 1, 2, 3)
    return settings


def _agg(settings: Settings, activity: str, user: str = "user001", batch: str = "Batch1") -> dict:
    rows = _rows(
        settings,
        "SELECT aggregates FROM user_activity_agg WHERE activity_type='Course' AND activity_id=%s "
        "AND user_id=%s AND context_id=%s",
        activity, user, f"cb:{batch}",
    )  # fmt: skip
    return dict(rows[0].aggregates) if rows else {}


def test_t_a1_completes_the_enrolment_once_with_sunbird_outputs(seeded: Settings) -> None:
    s = seeded
    inp, failed, cert, audit = _topics(s)
    produce(
        s,
        inp,
        [_fixture("CC_EVENT1"), _fixture("CC_EVENT2"), _fixture("CC_EVENT3")],
        key=b"user001",
    )
    run_to_end(FLOW, s)

    cons = {r.contentid: (r.viewcount, r.completedcount, r.status, r.progress) for r in _rows(
        s, "SELECT * FROM user_content_consumption WHERE userid='user001' AND courseid='course001' AND batchid='Batch1'")}  # fmt: skip
    assert cons == {
        "do_R1": (2, 1, 2, 100), "do_R2": (2, 1, 2, 100),
        "do_R3": (2, 1, 2, 100), "do_R4": (1, 0, 2, 100),
    }  # fmt: skip
    assert _agg(s, "course001") == {"completedCount": 4.0}
    assert _agg(s, "unit1") == {"completedCount": 2.0}
    assert _agg(s, "unit2") == {"completedCount": 2.0}
    enrol = _rows(
        s,
        "SELECT * FROM user_enrolments WHERE userid='user001' AND courseid='course001' AND batchid='Batch1'",
    )[0]
    assert (enrol.status, enrol.progress) == (2, 4)
    assert dict(enrol.contentstatus) == {"do_R1": 2, "do_R2": 2, "do_R3": 2, "do_R4": 2}
    assert enrol.completedon is not None

    certs = read_json(s, cert)
    assert len(certs) == 1
    assert certs[0]["object"]["id"] == "Batch1_course001"
    assert certs[0]["edata"]["userIds"] == ["user001"]
    audits = read_json(s, audit)
    assert sorted((a["edata"]["type"], a["object"]["id"]) for a in audits) == [
        ("complete", "do_R1"),
        ("complete", "do_R2"),
        ("complete", "do_R3"),
        ("enrol-complete", "user001"),
    ]
    assert dedup_keys(s) == {
        "3451DF21A5A0A0816E3B5A50F5121901", "7ED85D751A886B72B74EBD924793416C",
        "14EB88DD87DAEAE73E817F4C4F6AC9D8",
    }  # fmt: skip
    assert read_json(s, failed) == []


def test_same_input_twice_after_dedup_expiry_leaves_the_same_state_and_one_certificate(
    seeded: Settings,
) -> None:
    s = seeded
    inp, _failed, cert, _audit = _topics(s)
    produce(
        s,
        inp,
        [_fixture("CC_EVENT1"), _fixture("CC_EVENT2"), _fixture("CC_EVENT3"), _fixture("EVENT_2")],
        key=b"k",
    )
    run_to_end(FLOW, s)
    first = state(s)
    redis_client(s.redis, s.redis.dedup_db).flushdb()  # the dedup TTL has expired
    run_to_end(FLOW, s, from_beginning=True)
    assert state(s) == first
    assert len(read_json(s, cert)) == 1


def test_t_a2_live_course_without_leaf_nodes_is_parked_and_nothing_is_written(
    seeded: Settings,
) -> None:
    s = seeded
    redis_client(s.redis, s.redis.relation_cache_db).flushdb()
    _execute(s, [f"INSERT INTO {s.cassandra.hierarchy_keyspace}.content_hierarchy (identifier, hierarchy) "
                 "VALUES ('course001', '{\"identifier\":\"course001\",\"status\":\"Live\"}')"])  # fmt: skip
    before = state(s)
    inp, failed, cert, _audit = _topics(s)
    produce(s, inp, [_fixture("CC_EVENT1"), _fixture("CC_EVENT2"), _fixture("CC_EVENT3")], key=b"k")
    run_to_end(FLOW, s)  # does not crash
    parked = read_json(s, failed)
    assert len(parked) == 3
    assert all(
        "leaf nodes are not available for a published collection: course001" in p["reason"]
        for p in parked
    )
    assert {json.loads(p["payload"])["edata"]["contents"][0]["contentId"] for p in parked} == {
        "do_R1",
        "do_R2",
        "do_R3",
    }
    assert state(s) == before  # no half-applied counts
    assert dedup_keys(s) == set()
    assert read_json(s, cert) == []


def test_t_a3_retired_course_skips_progress_and_certificate(seeded: Settings) -> None:
    s = seeded
    redis_client(s.redis, s.redis.relation_cache_db).flushdb()
    _execute(s, [f"INSERT INTO {s.cassandra.hierarchy_keyspace}.content_hierarchy (identifier, hierarchy) "
                 "VALUES ('course001', '{\"identifier\":\"course001\",\"status\":\"Retired\"}')"])  # fmt: skip
    inp, failed, cert, _audit = _topics(s)
    produce(s, inp, [_fixture("CC_EVENT1"), _fixture("CC_EVENT2"), _fixture("CC_EVENT3")], key=b"k")
    run_to_end(FLOW, s)
    assert dedup_keys(s) == set()
    assert read_json(s, cert) == []
    assert read_json(s, failed) == []
    enrol = _rows(
        s,
        "SELECT status FROM user_enrolments WHERE userid='user001' AND courseid='course001' AND batchid='Batch1'",
    )[0]
    assert enrol.status == 1
    views = {
        r.contentid: r.viewcount
        for r in _rows(
            s, "SELECT contentid, viewcount FROM user_content_consumption WHERE userid='user001'"
        )
    }
    assert views["do_R1"] == 2  # consumption still counted, as Sunbird does


def test_d_a1_no_enrolment_row_means_no_enrolment_write(seeded: Settings) -> None:
    s = seeded
    inp, _failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture("EVENT_1")], key=b"k")
    run_to_end(FLOW, s)
    user, course, batch = (
        "8454cb21-3ce9-4e30-85b5-fade097880d8",
        "do_1127212344324751361295",
        "0126083288437637121",
    )
    cons = {r.contentid: (r.viewcount, r.completedcount) for r in _rows(
        s, "SELECT contentid, viewcount, completedcount FROM user_content_consumption WHERE userid=%s", user)}  # fmt: skip
    assert cons == {
        "do_11260735471149056012299": (4, 2),
        "do_11260735471149056012300": (2, 2),
        "do_11260735471149056012301": (0, 1),
    }
    assert _agg(s, course, user, batch) == {"completedCount": 2.0}
    assert _rows(s, "SELECT * FROM user_enrolments WHERE userid=%s", user) == []
    assert dedup_keys(s) == {"903CA2D41869A6EE3D73BFA280622A34"}
    assert read_json(s, audit) == [] and read_json(s, cert) == []


def test_d_a3_other_actions_are_skipped(seeded: Settings) -> None:
    s = seeded
    inp, failed, cert, audit = _topics(s)
    before = state(s)
    produce(s, inp, [_fixture("EVENT_5")], key=b"k")
    run_to_end(FLOW, s)
    assert state(s) == before
    assert read_json(s, failed) == [] and read_json(s, cert) == [] and read_json(s, audit) == []


def test_d_a4_multi_content_event_completes_with_optional_excluded(seeded: Settings) -> None:
    s = seeded
    inp, _failed, cert, _audit = _topics(s)
    produce(s, inp, [_fixture("EVENT_2")], key=b"k")
    run_to_end(FLOW, s)
    assert _agg(s, "unit2") == {"completedCount": 2.0}
    assert _agg(s, "course001") == {"completedCount": 4.0}
    assert len(read_json(s, cert)) == 1
    assert len(dedup_keys(s)) == 3


def test_d_a5_redelivery_within_the_dedup_window_has_no_effect(seeded: Settings) -> None:
    s = seeded
    inp, _failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture("CC_EVENT1")], key=b"k")
    run_to_end(FLOW, s)
    after_first, audits, certs = state(s), len(read_json(s, audit)), len(read_json(s, cert))
    produce(s, inp, [_fixture("CC_EVENT1")], key=b"k")  # a new message, same completion
    run_to_end(FLOW, s)
    assert state(s) == after_first
    assert len(read_json(s, audit)) == audits and len(read_json(s, cert)) == certs


def test_a_thousand_malformed_events_are_parked_and_good_ones_around_them_applied(
    seeded: Settings,
) -> None:
    s = seeded
    inp, failed, cert, _audit = _topics(s)
    base = json.loads(_fixture("CC_EVENT1"))
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
            e["edata"]["contents"] = [{"contentId": "do_R1", "status": "2"}]
            bad.append(json.dumps(e).encode())
        elif kind == 4:
            e = json.loads(json.dumps(base))
            e["edata"]["contents"] = "do_R1"
            bad.append(json.dumps(e).encode())
        elif kind == 5:
            e = json.loads(json.dumps(base))
            e["edata"]["batchId"] = 42
            bad.append(json.dumps(e).encode())
        elif kind == 6:
            bad.append(b"\xff\xfe\x00" + bytes([i % 256]))
        else:
            bad.append(json.dumps([i]).encode())
    good = [_fixture("CC_EVENT1"), _fixture("CC_EVENT2"), _fixture("CC_EVENT3")]
    produce(s, inp, bad[:500] + good[:1] + bad[500:] + good[1:], key=b"k")
    run_to_end(FLOW, s)
    parked = read_json(s, failed)
    assert len(parked) == 1000
    assert all(
        p["reason"] and p["source"]["topic"] == inp and isinstance(p["source"]["offset"], int)
        for p in parked
    )
    assert _agg(s, "course001") == {"completedCount": 4.0}
    assert len(read_json(s, cert)) == 1


def test_d_a2_contents_of_one_message_are_applied_together(seeded: Settings) -> None:
    """Sunbird splits EVENT_3 into two records and counts 1 (it reads R11's fresh row as status 1);
    lernflow applies the message's completions together and counts both (docs/fixes-over-sunbird.md)."""
    s = seeded
    inp, failed, cert, audit = _topics(s)
    produce(s, inp, [_fixture("EVENT_3")], key=b"k")
    run_to_end(FLOW, s)
    cons = {r.contentid: (r.viewcount, r.completedcount) for r in _rows(
        s, "SELECT contentid, viewcount, completedcount FROM user_content_consumption WHERE userid='U11'")}  # fmt: skip
    assert cons == {"R11": (1, 1), "R22": (1, 1)}
    assert _agg(s, "C11", "U11", "B11") == {"completedCount": 2.0}
    assert sorted(a["edata"]["type"] for a in read_json(s, audit)) == [
        "complete",
        "complete",
        "start",
        "start",
    ]
    assert _rows(s, "SELECT * FROM user_enrolments WHERE userid='U11'") == []
    assert len(dedup_keys(s)) == 2
    assert read_json(s, failed) == [] and read_json(s, cert) == []
