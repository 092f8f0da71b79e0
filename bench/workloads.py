"""Synthetic Sunbird-shaped workloads shared by benchmarks and tests.

A course with two units and four lessons (the fourth optional); every fifth learner stops after
two lessons. Seeding writes what the LMS and the relation cache would hold before the events.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from config import Settings
from lernflow.kernel.clients import cassandra_session

COURSE = "do_syn_course"
BATCH = "syn_batch"
LESSONS = ["do_syn_l1", "do_syn_l2", "do_syn_l3", "do_syn_l4"]
UNITS = {"do_syn_unit1": LESSONS[:2], "do_syn_unit2": LESSONS[2:]}


def completes(learner: int, lesson_index: int) -> bool:
    """Whether the learner finishes this lesson."""
    return not (learner % 5 == 0 and lesson_index >= 2)


def write_all(
    session: Any, statement: Any, rows: list[tuple[Any, ...]], chunk: int = 20_000
) -> None:
    """Idempotent bulk writes in chunks; a chunk that times out (a flush, a GC pause of a busy
    node) is written again, up to five times."""
    from cassandra import OperationTimedOut, WriteTimeout
    from cassandra.concurrent import execute_concurrent_with_args

    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        for attempt in range(5):
            try:
                execute_concurrent_with_args(session, statement, part, concurrency=100)
                break
            except (OperationTimedOut, WriteTimeout):
                if attempt == 4:
                    raise
                time.sleep(2 * (attempt + 1))


def seed_activity(settings: Settings, learners: int) -> None:
    """Relation cache, enrolments (status 0) and the LMS's consumption status rows."""
    # the relation cache as relation-cache-updater builds it from the published hierarchy
    from flows.relation_cache_updater import rules as relation_rules
    from flows.relation_cache_updater.store import RelationCacheWriter

    collection = "application/vnd.ekstep.content-collection"
    tree = {
        "identifier": COURSE, "mimeType": collection, "visibility": "Default", "status": "Live",
        "children": [
            {"identifier": unit, "mimeType": collection, "visibility": "Parent",
             "children": [{"identifier": c, "mimeType": "application/pdf",
                           "relationalMetadata": {"optional": c == LESSONS[3]}} for c in lessons]}
            for unit, lessons in UNITS.items()
        ],
    }  # fmt: skip
    writer = RelationCacheWriter(settings)
    writer.write(relation_rules.plan(COURSE, tree))
    writer.close()

    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    enrol = session.prepare(
        "INSERT INTO user_enrolments (userid, courseid, batchid, status, active) VALUES (?, ?, ?, 0, true)"
    )
    lms = session.prepare(
        "UPDATE user_content_consumption SET status=2, progress=100 "
        "WHERE userid=? AND courseid=? AND batchid=? AND contentid=?"
    )
    write_all(session, enrol, [(f"learner{i}", COURSE, BATCH) for i in range(learners)])
    write_all(
        session, lms,
        [(f"learner{i}", COURSE, BATCH, lesson) for i in range(learners)
         for j, lesson in enumerate(LESSONS) if completes(i, j)],
    )  # fmt: skip
    cluster.shutdown()


def activity_events(learners: int) -> list[tuple[bytes, bytes]]:
    """(key, value) BE_JOB_REQUESTs: one per completed lesson, lesson by lesson."""
    return list(iter_activity_events(learners))


def activity_event_count(learners: int) -> int:
    """How many events :func:`activity_events` gives for ``learners``."""
    return sum(completes(i, j) for i in range(learners) for j in range(len(LESSONS)))


def iter_activity_events(learners: int) -> Iterator[tuple[bytes, bytes]]:
    """:func:`activity_events` one at a time (a million events without holding them)."""
    for j, lesson in enumerate(LESSONS):
        for i in range(learners):
            if completes(i, j):
                body = (
                    '{"eid":"BE_JOB_REQUEST","ets":1,"mid":"LMS.syn","actor":{"id":"Course Batch Updater","type":"System"},'
                    '"edata":{"action":"batch-enrolment-update","iteration":1,'
                    f'"batchId":"{BATCH}","userId":"learner{i}","courseId":"{COURSE}",'
                    f'"contents":[{{"contentId":"{lesson}","status":2}}]}}}}'
                )
                yield (f"learner{i}".encode(), body.encode())


def user_id(n: int) -> str:
    """The id of synthetic user ``n``."""
    return f"syn-user-{n:07d}"


def seed_users(settings: Settings, users: int, schools: int = 100) -> None:
    """Sunbird user tables for ``users`` learners: one root org, schools, states/districts/blocks,
    profile locations, user types and a framework (what the user service writes)."""
    import json

    from cassandra.concurrent import execute_concurrent_with_args

    ks = settings.cassandra.sunbird_keyspace
    cluster, session = cassandra_session(settings.cassandra, ks)
    try:
        session.execute(
            "INSERT INTO organisation (id, orgname, isrootorg) VALUES ('syn_root', 'Synthetic Board', true)"
        )
        session.execute(
            "INSERT INTO system_settings (id, field, value) VALUES ('custodianOrgId', 'custodianOrgId', 'syn_root')"
        )
        org = session.prepare(
            "INSERT INTO organisation (id, orgname, isrootorg, externalid, rootorgid) VALUES (?, ?, false, ?, 'syn_root')"
        )
        execute_concurrent_with_args(
            session, org, [(f"syn_school_{s}", f"School No. {s}", f"2910{s:07d}") for s in range(schools)],
            concurrency=100,
        )  # fmt: skip
        loc = session.prepare("INSERT INTO location (id, name, type, code) VALUES (?, ?, ?, ?)")
        places = [(f"syn_state_{i}", f"State {i}", "state", f"S{i}") for i in range(5)]
        places += [(f"syn_district_{i}", f"District {i}", "district", f"D{i}") for i in range(50)]
        places += [(f"syn_block_{i}", f"Block {i}", "block", f"B{i}") for i in range(200)]
        execute_concurrent_with_args(session, loc, places, concurrency=100)
        ins = session.prepare(
            "INSERT INTO user (id, userid, firstname, lastname, rootorgid, email, phone, language, "
            "framework, profilelocation, profileusertypes) VALUES (?, ?, ?, ?, 'syn_root', ?, ?, ?, ?, ?, ?)"
        )
        member = session.prepare(
            "INSERT INTO user_organisation (userid, organisationid, isdeleted) VALUES (?, ?, false)"
        )
        fw = {"id": ["syn_fw"], "board": ["CBSE"], "medium": ["English"],
              "gradeLevel": ["Class 5"], "subject": ["Mathematics", "Science"]}  # fmt: skip
        types = '[{"type":"student"}]'

        def row(n: int) -> tuple[object, ...]:
            uid = user_id(n)
            where = json.dumps([
                {"id": f"syn_state_{n % 5}", "type": "state"},
                {"id": f"syn_district_{n % 50}", "type": "district"},
                {"id": f"syn_block_{n % 200}", "type": "block"},
                {"id": f"syn_school_{n % schools}", "type": "school"},
            ])  # fmt: skip
            return (uid, uid, f"Learner{n}", "Synthetic", f"enc-email-{n}==", f"enc-phone-{n}==",
                    ["English"], fw, where, types)  # fmt: skip

        step = 20_000
        for start in range(0, users, step):
            ns = range(start, min(users, start + step))
            execute_concurrent_with_args(session, ins, [row(n) for n in ns], concurrency=200)
            execute_concurrent_with_args(
                session, member, [(user_id(n), f"syn_school_{n % schools}") for n in ns],
                concurrency=200,
            )  # fmt: skip
    finally:
        cluster.shutdown()


def audit_events(users: int, pid: str = "learner-service") -> list[tuple[bytes, bytes]]:
    """(key, value) AUDIT 'Update' events by the user service, one per user."""
    import json

    out = []
    for n in range(users):
        uid = user_id(n)
        event = {
            "eid": "AUDIT", "ets": 1700000000000 + n, "ver": "3.0", "mid": f"syn-audit-{n}",
            "actor": {"id": uid, "type": "User"},
            "context": {"channel": "syn_root", "env": "User",
                        "pdata": {"id": "syn", "pid": pid, "ver": "1"},
                        "cdata": [{"type": "SignupType", "id": "google" if n % 2 else "sso"}]},
            "object": {"id": uid, "type": "User"},
            "edata": {"state": "Update", "props": ["firstName"]},
        }  # fmt: skip
        out.append((uid.encode(), json.dumps(event).encode()))
    return out


def course_hierarchy(n: int, units: int = 3, leaves: int = 5) -> dict[str, object]:
    """A published course: ``units`` units of ``leaves`` lessons (the last of each optional)."""
    collection = "application/vnd.ekstep.content-collection"
    cid = f"do_syn_pub_{n:06d}"
    return {
        "identifier": cid, "mimeType": collection, "visibility": "Default", "status": "Live",
        "children": [
            {"identifier": f"{cid}_u{u}", "mimeType": collection, "visibility": "Parent",
             "children": [
                 {"identifier": f"{cid}_u{u}_l{j}", "mimeType": "application/pdf",
                  "relationalMetadata": {"optional": j == leaves - 1}}
                 for j in range(leaves)
             ]}
            for u in range(units)
        ],
    }  # fmt: skip


def seed_hierarchies(settings: Settings, courses: int) -> list[tuple[bytes, bytes]]:
    """Store ``courses`` published hierarchies; return their post-publish events (key, value)."""
    import json

    from cassandra.concurrent import execute_concurrent_with_args

    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.hierarchy_keyspace)
    ins = session.prepare("INSERT INTO content_hierarchy (identifier, hierarchy) VALUES (?, ?)")
    trees = [course_hierarchy(n) for n in range(courses)]
    execute_concurrent_with_args(
        session, ins, [(t["identifier"], json.dumps(t)) for t in trees], concurrency=100
    )
    cluster.shutdown()
    events = []
    for t in trees:
        cid = str(t["identifier"])
        event = {
            "eid": "BE_JOB_REQUEST", "ets": 1700000000000, "mid": f"LP.syn.{cid}",
            "actor": {"id": "Post Publish Processor", "type": "System"},
            "object": {"ver": "1", "id": cid},
            "edata": {"action": "post-publish-process", "iteration": 1, "identifier": cid,
                      "mimeType": "application/vnd.ekstep.content-collection", "status": "Live"},
        }  # fmt: skip
        events.append((cid.encode(), json.dumps(event).encode()))
    return events
