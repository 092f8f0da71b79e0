"""``lernflow demo``: show the pipeline working on the local stack.

Today it makes a visible round trip through all three servers with Sunbird-shaped data:
a course structure into the Redis relation cache, an enrolment into Cassandra, and a
``BE_JOB_REQUEST`` onto ``<env>.coursebatch.job.request`` read back from Kafka.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from lernflow.certificates import binding, signing
from lernflow.certificates.fetch import bundled_template_path
from lernflow.config import Settings
from lernflow.flows.relation_cache_updater import rules as relation_rules
from lernflow.kernel.clients import cassandra_session, kafka_consumer, redis_client
from lernflow.ops import runner
from lernflow.ops.cert_why import explain, title
from lernflow.ops.serve.app import certificate_url
from lernflow.ops.user_cache_rebuild import UserCacheRebuild
from lernflow.reports.runner import run_batches
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from lernflow.sources.kafka import read_to_end
from lernflow.sources.options import RunOptions

Report = Callable[[str], None]

# A signature image for the sample signatories: inline (a data URI), so rendering fetches nothing.
SAMPLE_SIGNATURE = (
    "data:image/svg+xml;base64,"
    + base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" width="200" height="60" viewBox="0 0 200 60">'
        b'<path d="M5 42 C 30 5, 55 58, 85 30 S 135 8, 150 36 S 185 40, 195 22" fill="none" '
        b'stroke="#1a237e" stroke-width="3" stroke-linecap="round"/></svg>'
    ).decode()
)

_COLLECTION = "application/vnd.ekstep.content-collection"


def run(settings: Settings, report: Report) -> dict[str, object]:
    """Run the demo; return what it observed (used by the demo test)."""
    run_id = uuid.uuid4().hex[:6]
    course, batch, user = f"do_demo_course_{run_id}", f"demo_batch_{run_id}", f"learner-{run_id}"
    lessons = [f"do_demo_lesson_{i}_{run_id}" for i in (1, 2, 3)]

    quiz_id = f"do_demo_quiz_{run_id}"
    publish_course(
        settings, report, course, "Demo course", {f"do_demo_unit_{run_id}": [*lessons, quiz_id]}
    )
    rc = redis_client(settings.redis, db=settings.redis.relation_cache_db)
    leaves = sorted(rc.smembers(f"{course}:{course}:leafnodes"))
    rc.close()
    report(f"redis    DB {settings.redis.relation_cache_db}: {course} has leaf nodes {leaves}")
    row = _enrol(settings, report, user, course, batch)
    seen = _round_trip(settings, report, run_id, lessons[0], course, batch, user)
    progress = progress_demo(settings, report, run_id)
    quiz = assessment_demo(settings, report, run_id, course, batch, user)
    users = user_cache_demo(settings, report, run_id)
    batch_id, names = progress.pop("batch"), progress.pop("learners")
    assert isinstance(batch_id, str) and isinstance(names, list)
    progress["report"] = report_demo(settings, report, batch_id, names)  # the demo ends with it
    return {"leaves": leaves, "enrolment_status": row.status, "event": seen, "quiz": quiz,
            "progress": progress, "user_cache": users}  # fmt: skip


def _enrol(settings: Settings, report: Report, user: str, course: str, batch: str) -> Any:
    """Enrol ``user`` in Cassandra and read the enrolment back."""
    t0 = time.monotonic()
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        session.execute(
            "INSERT INTO user_enrolments (userid, courseid, batchid, status, active, progress) "
            "VALUES (%s, %s, %s, 0, true, 0)",
            (user, course, batch),
        )
        row = session.execute(
            "SELECT status, progress FROM user_enrolments WHERE userid=%s AND courseid=%s "
            "AND batchid=%s",
            (user, course, batch),
        ).one()
    finally:
        cluster.shutdown()
    report(f"cassandra {settings.cassandra.courses_keyspace}.user_enrolments: {user} enrolled, "
           f"status={row.status} progress={row.progress} [{(time.monotonic() - t0) * 1000:.0f} ms]")  # fmt: skip
    return row


def _round_trip(
    settings: Settings, report: Report, run_id: str, lesson: str, course: str, batch: str, user: str
) -> Any:
    """Produce a lesson-completion BE_JOB_REQUEST and read it back from Kafka."""
    topic = settings.topics.full(settings.topics.course_batch_job_request)
    event = {
        "eid": "BE_JOB_REQUEST",
        "ets": int(time.time() * 1000),
        "mid": f"LP.{run_id}",
        "actor": {"id": "Course Batch Updater", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "object": {"id": f"{batch}_{user}", "type": "CourseBatchEnrolment"},
        "edata": {
            "contents": [{"contentId": lesson, "status": 2}],
            "action": "batch-enrolment-update",
            "iteration": 1,
            "batchId": batch,
            "userId": user,
            "courseId": course,
        },
    }
    t0 = time.monotonic()
    producer = DeliveryTrackingProducer(settings.kafka, client_id="lernflow-demo")
    producer.produce_all([OutMessage(topic, json.dumps(event).encode(), key=user.encode())])
    consumer = kafka_consumer(settings.kafka, group_id=f"lernflow-demo-{run_id}")
    consumer.subscribe([topic])
    seen = None
    deadline = time.monotonic() + 30
    while seen is None and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=1.0):
            if msg.error() is None and msg.key() == user.encode():
                seen = json.loads(msg.value())
    consumer.close()
    if seen is None:
        msg = f"the demo event did not come back from {topic} within 30 s"
        raise RuntimeError(msg)
    report(f"kafka    {topic}: BE_JOB_REQUEST for {user} produced and read back "
           f"(lesson {seen['edata']['contents'][0]['contentId']} completed) "
           f"[{(time.monotonic() - t0) * 1000:.0f} ms]")  # fmt: skip
    return seen


def user_cache_demo(settings: Settings, report: Report, run_id: str) -> dict[str, dict[str, str]]:
    """Learners in Sunbird's user tables; AUDIT events; user-cache-updater fills Redis DB 12."""

    ks = settings.cassandra.sunbird_keyspace
    root, school = f"demo_root_org_{run_id}", f"demo_school_{run_id}"
    state, district = f"demo_state_{run_id}", f"demo_district_{run_id}"
    learners = {f"demo-user-{run_id}-{n}": name for n, name in enumerate(("Asha", "Ravi"), 1)}
    _write_user_tables(settings, ks, learners, root, school, (state, district))
    report(f"cassandra {ks}.user: {len(learners)} learners with a school, state and district")
    topic = settings.topics.full(settings.topics.telemetry_audit)
    msgs = [_audit_created(settings, topic, root, uid) for uid in learners]
    DeliveryTrackingProducer(settings.kafka, client_id="lernflow-demo").produce_all(msgs)
    report(f"kafka    {topic}: {len(msgs)} AUDIT 'Created' events")
    t0 = time.monotonic()
    runner.run("user-cache-updater", settings, RunOptions(until_caught_up=True))
    report(f"flow     user-cache-updater caught up in {time.monotonic() - t0:.1f}s")
    client = redis_client(settings.redis, settings.redis.user_cache_db)
    hashes = {uid: client.hgetall(f"user:{uid}") for uid in learners}
    client.close()
    first = next(iter(learners))
    h = hashes[first]
    report(
        f"redis    DB {settings.redis.user_cache_db} user:{first}: {h.get('firstname')} "
        f"{h.get('lastname')}, {h.get('schoolname')} ({h.get('schooludisecode')}), "
        f"{h.get('district')}, {h.get('state')}, org {h.get('orgname')}, board {h.get('board')}, "
        f"signed in {h.get('usersignintype')} — {len(h)} fields"
    )
    return hashes


def _write_user_tables(
    settings: Settings,
    ks: str,
    learners: dict[str, str],
    root: str,
    school: str,
    places: tuple[str, str],
) -> None:
    """Sunbird's organisation, location and user rows for the user-cache demo."""
    state, district = places
    cluster, session = cassandra_session(settings.cassandra, ks)
    try:
        session.execute(
            "INSERT INTO organisation (id, orgname, isrootorg) VALUES (%s, %s, true)",
            (root, "Demo State Board"),
        )
        session.execute(
            "INSERT INTO organisation (id, orgname, isrootorg, externalid) VALUES (%s, %s, false, %s)",
            (school, "Demo Primary School", "29100100101"),
        )
        for loc, name, kind in ((state, "Karnataka", "state"), (district, "Mysuru", "district")):
            session.execute(
                "INSERT INTO location (id, name, type, code) VALUES (%s, %s, %s, %s)",
                (loc, name, kind, loc),
            )
        locations = json.dumps([{"id": state, "type": "state"}, {"id": district, "type": "district"},
                                {"id": school, "type": "school"}])  # fmt: skip
        for uid, first in learners.items():
            session.execute(
                "INSERT INTO user (id, userid, firstname, lastname, rootorgid, profilelocation, "
                "profileusertypes, framework, language) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (uid, uid, first, "Learner", root, locations, '[{"type":"student"}]',
                 {"board": ["CBSE"], "gradeLevel": ["Class 5"], "id": ["demo_fw"]}, ["English"]),
            )  # fmt: skip
    finally:
        cluster.shutdown()


def _audit_created(settings: Settings, topic: str, root: str, uid: str) -> OutMessage:
    """The AUDIT 'Created' event Sunbird's user service sends for a new user."""
    return OutMessage(
        topic,
        json.dumps(
            {
                "eid": "AUDIT",
                "ets": int(time.time() * 1000),
                "ver": "3.0",
                "mid": f"demo-audit-{uid}",
                "actor": {"id": uid, "type": "User"},
                "context": {
                    "channel": root,
                    "env": "User",
                    "pdata": {"id": "demo", "pid": settings.user_cache.regd_pid, "ver": "1"},
                    "cdata": [{"type": "SignupType", "id": "google"}],
                },
                "object": {"id": uid, "type": "User"},
                "edata": {"state": "Created", "props": ["firstName"]},
            }
        ).encode(),
        key=uid.encode(),
    )


def progress_demo(settings: Settings, report: Report, run_id: str) -> dict[str, object]:
    """A course with two units and an optional lesson; three learners finish lessons."""
    from rich.console import Console

    course, batch = f"do_python_basics_{run_id}", f"batch_{run_id}"
    units = {f"do_unit_syntax_{run_id}": ["lesson-1", "lesson-2"],
             f"do_unit_functions_{run_id}": ["lesson-3", "bonus-lesson"]}  # fmt: skip
    lessons = {name: f"do_{name.replace('-', '_')}_{run_id}" for u in units.values() for name in u}
    optional = {lessons["bonus-lesson"]}
    publish_course(settings, report, course, "Python basics",
                   {u: [lessons[n] for n in names] for u, names in units.items()}, optional)  # fmt: skip
    learners = {
        f"asha-{run_id}": ["lesson-1", "lesson-2", "lesson-3"],
        f"ben-{run_id}": ["lesson-1", "lesson-2"],
        f"chen-{run_id}": ["lesson-1", "bonus-lesson", "lesson-2", "lesson-3"],
    }
    _certificate_setup(settings, course, batch, learners)
    report(f"course   {course}: units {list(units)}; 3 required lessons + 1 optional (bonus)")
    done = {user: [lessons[name] for name in names] for user, names in learners.items()}
    _write_consumption(settings, course, batch, done)
    topic = settings.topics.full(settings.topics.course_batch_job_request)
    msgs = _completion_events(topic, course, batch, done)
    DeliveryTrackingProducer(settings.kafka, client_id="lernflow-demo").produce_all(msgs)
    report(f"kafka    {topic}: {len(msgs)} lesson completions from 3 learners")
    t0 = time.monotonic()
    runner.run("activity-aggregate-updater", settings, RunOptions(until_caught_up=True))
    report(f"flow     activity-aggregate-updater caught up in {time.monotonic() - t0:.1f}s")
    required = {
        u: len([n for n in names if lessons[n] not in optional]) for u, names in units.items()
    }
    table, result = _progress_table(settings, course, batch, list(learners), required)
    Console().print(table)
    certs = _read_new(
        settings, settings.topics.full(settings.topics.issue_certificate_request), batch
    )
    for c in certs:
        report(
            f"kafka    certificate-issue request: {c['object']['id']} for {c['edata']['userIds']}"
        )
    result["certificates"] = len(certs)
    result["issued"] = certificate_demo(settings, report, course, batch, list(learners))
    result["batch"] = batch
    result["learners"] = list(learners)
    return result


def _write_consumption(
    settings: Settings, course: str, batch: str, done: dict[str, list[str]]
) -> None:
    """Enrol each learner and mark their finished lessons, as the LMS content-state API does."""
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        for user, content_ids in done.items():
            session.execute(
                "INSERT INTO user_enrolments (userid, courseid, batchid, status, active, progress, "
                "enrolled_date) VALUES (%s, %s, %s, 0, true, 0, toTimestamp(now()))",
                (user, course, batch),
            )  # fmt: skip
            for content_id in content_ids:  # what the LMS content-state API writes before its event
                session.execute(
                    "UPDATE user_content_consumption SET status=2, progress=100 WHERE userid=%s "
                    "AND courseid=%s AND batchid=%s AND contentid=%s", (user, course, batch, content_id),
                )  # fmt: skip
    finally:
        cluster.shutdown()


def _completion_events(
    topic: str, course: str, batch: str, done: dict[str, list[str]]
) -> list[OutMessage]:
    """One BE_JOB_REQUEST per finished lesson, keyed by learner."""
    msgs = []
    for user, content_ids in done.items():
        for content_id in content_ids:
            event = {
                "eid": "BE_JOB_REQUEST", "ets": int(time.time() * 1000), "mid": f"LMS.{uuid.uuid4()}",
                "actor": {"id": "Course Batch Updater", "type": "System"},
                "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
                "object": {"id": f"{batch}_{user}", "type": "CourseBatchEnrolment"},
                "edata": {"contents": [{"contentId": content_id, "status": 2}],
                          "action": "batch-enrolment-update", "iteration": 1,
                          "batchId": batch, "userId": user, "courseId": course},
            }  # fmt: skip
            msgs.append(OutMessage(topic, json.dumps(event).encode(), key=user.encode()))
    return msgs


def _progress_table(
    settings: Settings, course: str, batch: str, learners: list[str], required: dict[str, int]
) -> tuple[Any, dict[str, object]]:
    """Each learner's enrolment and per-unit completion counts, as a table and a dict."""
    from rich.table import Table

    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    table = Table("learner", "progress (required lessons)", "status", "completed on", *required)
    result: dict[str, object] = {}
    try:
        for user in learners:
            e = session.execute(
                "SELECT status, progress, completedon FROM user_enrolments WHERE userid=%s AND "
                "courseid=%s AND batchid=%s", (user, course, batch),
            ).one()  # fmt: skip
            unit_counts = []
            for unit, n_required in required.items():
                agg = session.execute(
                    "SELECT aggregates FROM user_activity_agg WHERE activity_type='Course' AND "
                    "activity_id=%s AND user_id=%s AND context_id=%s", (unit, user, f"cb:{batch}"),
                ).one()  # fmt: skip
                count = int((agg.aggregates or {}).get("completedCount", 0)) if agg else 0
                unit_counts.append(f"{count}/{n_required}")
            status = {0: "enrolled", 1: "in progress", 2: "completed"}.get(e.status, str(e.status))
            done_on = e.completedon.strftime("%Y-%m-%d %H:%M:%S") if e.completedon else "-"
            table.add_row(user, f"{e.progress}/3", status, done_on, *unit_counts)
            result[user] = (e.status, e.progress)
    finally:
        cluster.shutdown()
    return table, result


def report_demo(
    settings: Settings, report: Report, batch: str, learners: list[str]
) -> list[list[str]]:
    """The batch's progress-exhaust CSV (the learners' user-cache entries built first)."""
    from rich.console import Console
    from rich.table import Table

    job = UserCacheRebuild(settings)
    try:
        for user in learners:
            job.one(user, dry_run=False)
    finally:
        job.close()
    report(
        f"redis    user cache rebuilt for {len(learners)} learners (lernflow user-cache rebuild --user)"
    )
    [out] = run_batches(settings, "progress-exhaust", [batch], settings.reports.out_dir)
    if out.error or out.path is None:
        msg = f"progress-exhaust failed for {batch}: {out.error}"
        raise RuntimeError(msg)
    rows = list(csv.reader(io.StringIO(out.path.read_text())))
    report(f"report   progress-exhaust: {out.path} ({out.rows} rows, {len(out.dropped)} left out)")
    keep = [
        "User UUID",
        "Batch Id",
        "Enrolment Date",
        "Completion Date",
        "Certificate Status",
        "Progress",
    ]
    idx = [rows[0].index(c) for c in keep if c in rows[0]]
    table = Table(*[rows[0][i] for i in idx], title="progress-exhaust (selected columns)")
    for r in rows[1:]:
        table.add_row(*[r[i] for i in idx])
    Console().print(table)
    return rows


def _certificate_setup(
    settings: Settings, course: str, batch: str, learners: dict[str, list[str]]
) -> None:
    """What the LMS holds: the batch's certificate template (our sample) and the learners."""

    template = {
        "identifier": "lernflow_sample", "name": "Course Completion Certificate",
        "url": str(bundled_template_path()), "criteria": '{"enrollment":{"status":2}}',
        "issuer": json.dumps({"name": "Lernflow Academy", "url": "https://lernflow.example.org/"}),
        "signatoryList": json.dumps([
            {"name": "Dr. A. Director", "id": "director", "designation": "Director",
             "image": SAMPLE_SIGNATURE},
            {"name": "B. Registrar", "id": "registrar", "designation": "Registrar",
             "image": SAMPLE_SIGNATURE},
        ]),
    }  # fmt: skip
    cluster, session = cassandra_session(settings.cassandra)
    try:
        session.execute(
            f"INSERT INTO {settings.cassandra.courses_keyspace}.course_batch "
            "(courseid, batchid, name, cert_templates) VALUES (%s, %s, %s, %s)",
            (course, batch, "Demo batch", {"lernflow_sample": template}),
        )
        for user in learners:
            first = user.split("-")[0].capitalize()
            session.execute(
                f"INSERT INTO {settings.cassandra.sunbird_keyspace}.user "
                "(id, userid, firstname, lastname, rootorgid) VALUES (%s, %s, %s, %s, %s)",
                (user, user, first, "Learner", "demo_root_org"),
            )
    finally:
        cluster.shutdown()


def certificate_demo(
    settings: Settings, report: Report, course: str, batch: str, learners: list[str]
) -> dict[str, str]:
    """The two certificate flows turn the completion requests into signed PDFs; one is
    verified, and ``cert why`` explains the learner who did not qualify."""

    keys_dir = settings.certificates.keys_dir
    if not signing.load_public_keys(keys_dir):
        key = signing.generate_keys(keys_dir)
        report(f"cert     development signing key {key.kid} created in {keys_dir}")
    t0 = time.monotonic()
    runner.run("certificate-pre-processor", settings, RunOptions(until_caught_up=True))
    runner.run("certificate-generator", settings, RunOptions(until_caught_up=True))
    report(f"flow     certificate-pre-processor + certificate-generator caught up in "
           f"{time.monotonic() - t0:.1f}s")  # fmt: skip
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    issued: dict[str, str] = {}
    try:
        for user in learners:
            row = session.execute(
                "SELECT issued_certificates FROM user_enrolments WHERE userid=%s AND courseid=%s "
                "AND batchid=%s", (user, course, batch),
            ).one()  # fmt: skip
            for cert in (row.issued_certificates or []) if row else []:
                issued[user] = cert["identifier"]
    finally:
        cluster.shutdown()
    store = settings.certificates.storage_dir
    for user, cert_id in issued.items():
        report(f"cert     {user}: {store / batch / (cert_id + '.pdf')}")
    if issued:
        user, cert_id = next(iter(issued.items()))
        pdf = (store / batch / f"{cert_id}.pdf").read_bytes()
        result = binding.verify_pdf(pdf, signing.load_public_keys(keys_dir))
        subject = (result.claims or {}).get("sub")
        report(
            f"cert     verify {cert_id}.pdf: {result.verdict.upper()} ({result.reason}), to {subject}"
        )
        report(
            f"cert     its QR code's page: {certificate_url(settings, cert_id)} "
            "(serve it: lernflow serve, in another terminal)"
        )
    for user in learners:
        if user in issued:
            continue
        why = explain(settings, user, course, batch)
        if why.blocking is not None:
            report(
                f"cert why {user}: blocked by {title(why.blocking.step)} — {why.blocking.detail}"
            )
    return issued


def _read_new(settings: Settings, topic: str, needle: str) -> list[dict[str, Any]]:
    """The messages on ``topic`` (read to its end, by assignment) that mention ``needle``."""
    return [json.loads(v) for v in read_to_end(settings.kafka, topic) if needle.encode() in v]


def _assess_event(course: str, batch: str, user: str, quiz: str, attempt: str, ts: int,
                  answers: list[int]) -> bytes:  # fmt: skip
    events = [
        {
            "eid": "ASSESS", "ets": ts + i, "ver": "3.1", "mid": f"ASSESS.{attempt}.{i}",
            "actor": {"id": user, "type": "User"}, "context": {"channel": "demo"},
            "object": {"id": quiz, "type": "Content"},
            "edata": {
                "item": {"id": f"{quiz}_q{i}", "maxscore": 1, "type": "mcq", "title": f"Question {i}",
                         "params": [], "desc": ""},
                "score": score, "pass": "Yes" if score else "No", "resvalues": [], "duration": 3,
            },
        }
        for i, score in enumerate(answers)
    ]  # fmt: skip
    return json.dumps(
        {
            "assessmentTs": ts,
            "batchId": batch,
            "courseId": course,
            "userId": user,
            "attemptId": attempt,
            "contentId": quiz,
            "events": events,
        }
    ).encode()


def assessment_demo(
    settings: Settings, report: Report, run_id: str, course: str, batch: str, user: str
) -> dict[str, object]:
    """One learner takes the course quiz twice; the flow keeps both attempts and the best score."""

    quiz = f"do_demo_quiz_{run_id}"  # a leaf of the course published in run()
    now = int(time.time() * 1000)
    topic = settings.topics.full(settings.topics.telemetry_assess)
    attempts = [
        _assess_event(
            course, batch, user, quiz, f"attempt-1-{run_id}", now - 60_000, [1, 0, 0, 1, 0]
        ),
        _assess_event(course, batch, user, quiz, f"attempt-2-{run_id}", now, [1, 1, 0, 1, 1]),
    ]
    producer = DeliveryTrackingProducer(settings.kafka, client_id="lernflow-demo")
    producer.produce_all([OutMessage(topic, a, key=user.encode()) for a in attempts])
    report(f"kafka    {topic}: {user} took quiz {quiz} twice (2/5, then 4/5)")
    t0 = time.monotonic()
    runner.run("assessment-aggregator", settings, RunOptions(until_caught_up=True))
    report(f"flow     assessment-aggregator caught up in {time.monotonic() - t0:.1f}s")
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        rows = list(session.execute(
            "SELECT attempt_id, grand_total, total_score FROM assessment_aggregator "
            "WHERE user_id=%s AND course_id=%s AND batch_id=%s", (user, course, batch),
        ))  # fmt: skip
        agg = session.execute(
            "SELECT aggregates FROM user_activity_agg WHERE activity_type='Course' AND "
            "activity_id=%s AND user_id=%s AND context_id=%s", (course, user, f"cb:{batch}"),
        ).one()  # fmt: skip
    finally:
        cluster.shutdown()
    for r in rows:
        report(f"cassandra assessment_aggregator: {r.attempt_id} scored {r.grand_total}")
    aggregates = dict(agg.aggregates) if agg else {}
    report(
        f"cassandra user_activity_agg: best score {aggregates.get(f'score:{quiz}')} of "
        f"{aggregates.get(f'max_score:{quiz}')} over {aggregates.get(f'attempts_count:{quiz}'):.0f} attempts"
    )
    return {"attempts": [r.attempt_id for r in rows], "aggregates": aggregates}


def publish_course(
    settings: Settings,
    report: Report,
    course: str,
    name: str,
    units: dict[str, list[str]],
    optional: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Publish a course hierarchy (what Knowlg writes) and its post-publish event, then run
    relation-cache-updater so the relation cache is built by the flow itself."""

    collection = _COLLECTION
    hierarchy = _hierarchy(course, name, units, optional)
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.hierarchy_keyspace)
    try:
        session.execute(
            "INSERT INTO content_hierarchy (identifier, hierarchy) VALUES (%s, %s)",
            (course, json.dumps(hierarchy)),
        )
    finally:
        cluster.shutdown()
    topic = settings.topics.full(settings.topics.content_postpublish_request)
    event = {
        "eid": "BE_JOB_REQUEST", "ets": int(time.time() * 1000), "mid": f"LP.demo.{course}",
        "actor": {"id": "Post Publish Processor", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.ekstep.platform"}, "channel": "demo"},
        "object": {"ver": "1", "id": course},
        "edata": {"action": "post-publish-process", "iteration": 1, "identifier": course,
                  "mimeType": collection, "contentType": "Course", "status": "Live"},
    }  # fmt: skip
    DeliveryTrackingProducer(settings.kafka, client_id="lernflow-demo").produce_all(
        [OutMessage(topic, json.dumps(event).encode(), key=course.encode())]
    )
    t0 = time.monotonic()
    runner.run("relation-cache-updater", settings, RunOptions(until_caught_up=True))
    expected = relation_rules.plan(course, hierarchy)
    rc = redis_client(settings.redis, settings.redis.relation_cache_db)
    built = sum(1 for key in expected.sets if rc.exists(key))
    rc.close()
    if built != len(expected.sets):
        msg = f"relation cache incomplete for {course}: {built} of {len(expected.sets)} keys"
        raise RuntimeError(msg)
    report(f"flow     relation-cache-updater: {course} published, {built} relation keys built "
           f"in {time.monotonic() - t0:.1f}s")  # fmt: skip


def _hierarchy(
    course: str, name: str, units: dict[str, list[str]], optional: set[str] | frozenset[str]
) -> dict[str, Any]:
    """The published hierarchy Knowlg stores for a course of units of leaf contents."""
    collection = _COLLECTION
    leaves = [c for contents in units.values() for c in contents]
    return {
        "identifier": course, "name": name, "mimeType": collection,
        "visibility": "Default", "status": "Live", "channel": "demo",
        "leafNodes": leaves, "leafNodesCount": len(leaves),
        "children": [
            {"identifier": unit, "mimeType": collection, "visibility": "Parent",
             "children": [
                 {"identifier": c, "mimeType": "application/pdf",
                  "relationalMetadata": {"optional": c in optional}}
                 for c in contents
             ]}
            for unit, contents in units.items()
        ],
    }  # fmt: skip
