"""Synthetic Sunbird-shaped workloads shared by benchmarks and tests.

A course with two units and four lessons (the fourth optional); every fifth learner stops after
two lessons. Seeding writes what the LMS and the relation cache would hold before the events.
"""

from __future__ import annotations

from config import Settings
from lernflow.clients import cassandra_session, redis_client

COURSE = "do_syn_course"
BATCH = "syn_batch"
LESSONS = ["do_syn_l1", "do_syn_l2", "do_syn_l3", "do_syn_l4"]
UNITS = {"do_syn_unit1": LESSONS[:2], "do_syn_unit2": LESSONS[2:]}


def completes(learner: int, lesson_index: int) -> bool:
    """Whether the learner finishes this lesson."""
    return not (learner % 5 == 0 and lesson_index >= 2)


def seed_activity(settings: Settings, learners: int) -> None:
    """Relation cache, enrolments (status 0) and the LMS's consumption status rows."""
    r = redis_client(settings.redis, settings.redis.relation_cache_db)
    pipe = r.pipeline(transaction=False)
    pipe.sadd(f"{COURSE}:{COURSE}:leafnodes", *LESSONS)
    pipe.sadd(f"{COURSE}:{COURSE}:optionalnodes", LESSONS[3])
    for unit, lessons in UNITS.items():
        pipe.sadd(f"{COURSE}:{unit}:leafnodes", *lessons)
        for lesson in lessons:
            pipe.sadd(f"{COURSE}:{lesson}:ancestors", unit, COURSE)
    pipe.execute()
    r.close()
    from cassandra.concurrent import execute_concurrent_with_args

    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    enrol = session.prepare(
        "INSERT INTO user_enrolments (userid, courseid, batchid, status, active) VALUES (?, ?, ?, 0, true)"
    )
    lms = session.prepare(
        "UPDATE user_content_consumption SET status=2, progress=100 "
        "WHERE userid=? AND courseid=? AND batchid=? AND contentid=?"
    )
    execute_concurrent_with_args(
        session, enrol, [(f"learner{i}", COURSE, BATCH) for i in range(learners)], concurrency=100
    )
    execute_concurrent_with_args(
        session, lms,
        [(f"learner{i}", COURSE, BATCH, lesson) for i in range(learners)
         for j, lesson in enumerate(LESSONS) if completes(i, j)],
        concurrency=100,
    )  # fmt: skip
    cluster.shutdown()


def activity_events(learners: int) -> list[tuple[bytes, bytes]]:
    """(key, value) BE_JOB_REQUESTs: one per completed lesson, lesson by lesson."""
    out = []
    for j, lesson in enumerate(LESSONS):
        for i in range(learners):
            if completes(i, j):
                body = (
                    '{"eid":"BE_JOB_REQUEST","ets":1,"mid":"LMS.syn","actor":{"id":"Course Batch Updater","type":"System"},'
                    '"edata":{"action":"batch-enrolment-update","iteration":1,'
                    f'"batchId":"{BATCH}","userId":"learner{i}","courseId":"{COURSE}",'
                    f'"contents":[{{"contentId":"{lesson}","status":2}}]}}}}'
                )
                out.append((f"learner{i}".encode(), body.encode()))
    return out
