"""One workload of our own per flow, for the fault suite: what to seed, the good events, how far
the stored state has got (``progress``), the state to compare with a clean run, and the output
topics whose messages are counted.

Seeders and state readers are the ones the integration tests and benchmarks use
(``bench/workloads.py``, ``tests/integration/test_*_flow.py``); the sizes are chosen so a run
takes a few seconds on the 2-core machine, long enough to kill it in the middle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.assessment import COURSE as ASSESS_COURSE
from bench.assessment import _event as assess_event
from bench.certificates import generate_event
from bench.workloads import (
    activity_events,
    audit_events,
    course_hierarchy,
    seed_activity,
    seed_hierarchies,
    seed_users,
    write_all,
)
from lernflow.config import Settings
from lernflow.flows.assessment_aggregator.content import leafnodes_key
from lernflow.kernel.clients import cassandra_session, redis_client
from tests.flowkit import read_topic
from tests.integration.test_activity_flow import state as activity_state
from tests.integration.test_activity_recovery import applied_events
from tests.integration.test_assessment_flow import _summary as assessment_summary
from tests.integration.test_relation_cache_flow import _redis_state
from tests.integration.test_user_cache_flow import _hashes as user_hashes
from tests.paths import DATA

KeyValue = tuple[bytes, bytes]

# fields that differ between two runs of the same input (wall clock, random ids)
VOLATILE = frozenset({"ets", "mid", "did", "sid", "@timestamp", "syncts", "lastIssuedOn"})


def normalised(value: Any) -> Any:
    """``value`` without :data:`VOLATILE` fields, at any depth (for comparing two runs)."""
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def identity(value: bytes | None) -> str:
    """A message's identity across runs: its JSON without volatile fields, keys sorted."""
    if value is None:
        return "<tombstone>"
    try:
        return json.dumps(normalised(json.loads(value)), sort_keys=True)
    except ValueError:
        return value.decode("utf-8", "replace")


@dataclass(frozen=True)
class Workload:
    """A flow's fault-suite workload (see the module docstring)."""

    flow: str
    input: Callable[[Settings], str]  # the input topic's full name
    load: Callable[[Settings], list[KeyValue]]  # seed the stores; return the good events
    progress: Callable[[Settings], int]  # input events whose effect is stored
    state: Callable[[Settings], list[Any]]  # rows to compare with the clean run
    outputs: Callable[[Settings], list[str]]  # output topics (full names), counted
    read_batch: int = 100  # LERNFLOW_KAFKA_CONSUMER_BATCH_SIZE: small, so a run advances in steps
    # output topics (without the env) the flow's docs call at-least-once after a crash: their
    # messages sent again are counted as "resent", not as duplicates
    resends: frozenset[str] = frozenset()
    # files a crash may leave behind that are not part of the state (reported, not compared)
    debris: Callable[[Settings], list[str]] = lambda _s: []


def _flat(*tables: list[Any]) -> list[Any]:
    return [(i, *map(_hashable, row)) for i, rows in enumerate(tables) for row in rows]


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        items = [_hashable(v) for v in value]
        return tuple(sorted(items, key=repr) if isinstance(value, set | frozenset) else items)
    return value


def _redis_count(s: Settings, db: int, pattern: str) -> int:
    client = redis_client(s.redis, db)
    try:
        return sum(1 for _ in client.scan_iter(pattern, count=1000))
    finally:
        client.close()


def _count(s: Settings, cql: str) -> int:
    cluster, session = cassandra_session(s.cassandra)
    try:
        return int(session.execute(cql, timeout=30).one()[0])
    finally:
        cluster.shutdown()


# ---- activity-aggregate-updater: bench's synthetic course, 3.6 events a learner ---------------

ACTIVITY_LEARNERS = 500


def _activity_load(s: Settings) -> list[KeyValue]:
    seed_activity(s, ACTIVITY_LEARNERS)
    return activity_events(ACTIVITY_LEARNERS)


ACTIVITY = Workload(
    flow="activity-aggregate-updater",
    input=lambda s: s.topics.full(s.topics.course_batch_job_request),
    load=_activity_load,
    progress=applied_events,
    state=lambda s: _flat(*activity_state(s)),
    outputs=lambda s: [
        s.topics.full(s.topics.issue_certificate_request),
        s.topics.full(s.topics.telemetry_raw),
    ],
    # content and enrol-complete AUDITs are produced before the enrolment's logged batch
    # (docs/flows/activity-aggregate-updater.md §7.1): a kill between them sends them again.
    # Certificate requests are checked on the topic before a re-send: never duplicated.
    resends=frozenset({"telemetry.raw"}),
)

# ---- assessment-aggregator: bench's quiz, two attempts a learner ------------------------------

ASSESS_LEARNERS = 300


def _assessment_load(s: Settings) -> list[KeyValue]:
    client = redis_client(s.redis, s.redis.relation_cache_db)
    client.sadd(leafnodes_key(ASSESS_COURSE), "do_bench_quiz", "do_other")
    client.close()
    return [
        (f"u{i}".encode(), assess_event(f"u{i}", attempt))
        for attempt in (1, 2)
        for i in range(ASSESS_LEARNERS)
    ]


ASSESSMENT = Workload(
    flow="assessment-aggregator",
    input=lambda s: s.topics.full(s.topics.telemetry_assess),
    load=_assessment_load,
    progress=lambda s: _count(
        s, f"SELECT count(*) FROM {s.cassandra.courses_keyspace}.assessment_aggregator"
    ),
    state=lambda s: _flat(*assessment_summary(s)),
    outputs=lambda s: [s.topics.full(s.topics.issue_certificate_request)],
    # one round takes a whole read batch since the batch rework: with 100 a partition, a quiet
    # machine applied all 600 events before the fault could be injected mid-run
    read_batch=20,
    # docs/flows/assessment-aggregator.md, "Replays heal": worst case one duplicate certificate
    # request after a crash, never a lost one
    resends=frozenset({"issue.certificate.request"}),
)

# ---- relation-cache-updater: bench's published courses, 3 units x 5 lessons -------------------

RELATION_COURSES = 800


def _relation_progress(s: Settings) -> int:
    """Courses whose own leafnodes key is written (``<root>:<root>:leafnodes``)."""
    client = redis_client(s.redis, s.redis.relation_cache_db)
    try:
        keys = client.scan_iter("do_syn_pub_*:leafnodes", count=1000)
        return sum(1 for k in keys if k.split(":")[0] == k.split(":")[1])
    finally:
        client.close()


def _relation_state(s: Settings) -> list[Any]:
    sets, strings = _redis_state(s)
    return _flat(sorted(sets.items()), sorted(strings.items()))


RELATION_CACHE = Workload(
    flow="relation-cache-updater",
    input=lambda s: s.topics.full(s.topics.content_postpublish_request),
    load=lambda s: seed_hierarchies(s, RELATION_COURSES),
    progress=_relation_progress,
    state=_relation_state,
    outputs=lambda _s: [],
    read_batch=20,
)
assert course_hierarchy(0)["identifier"] == "do_syn_pub_000000"  # what _relation_progress reads

# ---- user-cache-updater: bench's synthetic users, one AUDIT update each -----------------------

USERS = 1200


def _user_load(s: Settings) -> list[KeyValue]:
    seed_users(s, USERS, schools=20)
    return audit_events(USERS)


USER_CACHE = Workload(
    flow="user-cache-updater",
    input=lambda s: s.topics.full(s.topics.telemetry_audit),
    load=_user_load,
    progress=lambda s: _redis_count(s, s.redis.user_cache_db, "user:*"),
    state=lambda s: _flat(sorted(user_hashes(s).items())),
    outputs=lambda _s: [],
)

# ---- certificate-pre-processor: one course batch, a status-2 template, learners completed -----

PRE_COURSE, PRE_BATCH, PRE_LEARNERS = "do_faults_course", "faults_batch", 3000
_COMPLETED = datetime(2026, 11, 20, tzinfo=UTC)


def _pre_template() -> dict[str, str]:
    stored = json.loads((DATA / "certificates" / "pre.cert_templates.json").read_text())
    award = dict(stored["lf_tmpl_algebra_award"])
    award.update(criteria='{"enrollment":{"status":2}}', name="Faults Completion Award")
    return award


def _learner(n: int) -> str:
    return f"faults-learner-{n:05d}"


def issue_event(n: int) -> bytes:
    """An issue-certificate request for learner ``n`` (fixed times: the same bytes every run)."""
    ets = 1764000000000 + n
    return json.dumps({
        "eid": "BE_JOB_REQUEST", "ets": ets, "mid": f"LP.{ets}.faults",
        "actor": {"id": "Course Certificate Generator", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "object": {"id": f"{PRE_BATCH}_{PRE_COURSE}", "type": "CourseCertificateGeneration"},
        "edata": {"userIds": [_learner(n)], "action": "issue-certificate", "iteration": 1,
                  "trigger": "auto-issue", "batchId": PRE_BATCH, "reIssue": False,
                  "courseId": PRE_COURSE},
    }).encode()  # fmt: skip


def _pre_load(s: Settings) -> list[KeyValue]:
    template = _pre_template()
    cluster, session = cassandra_session(s.cassandra)
    try:
        courses, sunbird = s.cassandra.courses_keyspace, s.cassandra.sunbird_keyspace
        session.execute(
            f"INSERT INTO {courses}.course_batch (courseid, batchid, cert_templates) "
            "VALUES (%s, %s, %s)",
            (PRE_COURSE, PRE_BATCH, {template["identifier"]: template}),
        )
        enrol = session.prepare(
            f"INSERT INTO {courses}.user_enrolments (userid, courseid, batchid, active, status, "
            "completedon, issued_certificates) VALUES (?, ?, ?, true, 2, ?, [])"
        )
        user = session.prepare(
            f"INSERT INTO {sunbird}.user (id, userid, firstname, lastname, rootorgid) "
            "VALUES (?, ?, ?, ?, 'faults_org')"
        )
        ids = [_learner(n) for n in range(PRE_LEARNERS)]
        write_all(session, enrol, [(u, PRE_COURSE, PRE_BATCH, _COMPLETED) for u in ids])
        write_all(session, user, [(u, u, f"Learner{n}", "Faults") for n, u in enumerate(ids)])
    finally:
        cluster.shutdown()
    cache = redis_client(s.redis, s.redis.collection_cache_db)
    cache.set(PRE_COURSE, json.dumps({"identifier": PRE_COURSE, "name": "Faults 101"}))
    cache.close()
    return [(_learner(n).encode(), issue_event(n)) for n in range(PRE_LEARNERS)]


def _pre_outputs(s: Settings) -> list[str]:
    return [s.topics.full(s.topics.generate_certificate_request)]


def _pre_progress(s: Settings) -> int:
    return len({identity(v) for v in read_topic(s, _pre_outputs(s)[0])})


PRE_PROCESSOR = Workload(
    flow="certificate-pre-processor",
    input=lambda s: s.topics.full(s.topics.issue_certificate_request),
    load=_pre_load,
    progress=_pre_progress,
    state=lambda _s: [],  # its only output is the generate topic, counted as an output
    outputs=_pre_outputs,
    # docs/flows/certificate-pre-processor.md, "Deterministic mid": a replay emits the same
    # generate events again (the generator makes each certificate once)
    resends=frozenset({"generate.certificate.request"}),
)

# ---- certificate-generator: bench's generate requests, the bundled template -------------------

GEN_CERTS = 400


def _gen_load(s: Settings) -> list[KeyValue]:
    from bench.certificates import BATCH, COURSE

    cluster, session = cassandra_session(s.cassandra)
    try:
        ins = session.prepare(
            f"INSERT INTO {s.cassandra.courses_keyspace}.user_enrolments "
            "(userid, courseid, batchid, active, status, completedon) VALUES (?, ?, ?, true, 2, ?)"
        )
        write_all(session, ins, [(f"bench-learner-{n:06d}", COURSE, BATCH, _COMPLETED)
                                 for n in range(GEN_CERTS)])  # fmt: skip
    finally:
        cluster.shutdown()
    return [(f"{n}".encode(), json.dumps(generate_event(n)).encode()) for n in range(GEN_CERTS)]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _gen_debris(s: Settings) -> list[str]:
    """Temporary files of writes a kill interrupted (``<batch>/.<id>.pdf.<random>.tmp``)."""
    return [f for f in _files(s.certificates.storage_dir) if f.endswith(".tmp")]


def _gen_state(s: Settings) -> list[Any]:
    cluster, session = cassandra_session(s.cassandra)
    try:
        registry = session.execute(
            f"SELECT id, recipient, related, pdfurl, jsonurl, isrevoked "
            f"FROM {s.cassandra.sunbird_keyspace}.cert_registry"
        )
        issued = session.execute(
            f"SELECT userid, courseid, batchid, issued_certificates "
            f"FROM {s.cassandra.courses_keyspace}.user_enrolments"
        )
        rows = sorted(tuple(r) for r in registry)
        enrol = sorted((r.userid, r.courseid, r.batchid,
                        [_hashable(normalised(dict(c))) for c in r.issued_certificates or []])
                       for r in issued)  # fmt: skip
    finally:
        cluster.shutdown()
    store = s.certificates.storage_dir
    files = sorted(set(_files(store)) - set(_gen_debris(s)))
    # the store's path is the case's own: compare what is under it
    rows = [tuple(str(v).replace(str(store), "<store>") for v in r) for r in rows]
    return _flat(rows, enrol, [(f,) for f in files])


GENERATOR = Workload(
    flow="certificate-generator",
    input=lambda s: s.topics.full(s.topics.generate_certificate_request),
    load=_gen_load,
    progress=lambda s: _count(
        s, f"SELECT count(*) FROM {s.cassandra.sunbird_keyspace}.cert_registry"
    ),
    state=_gen_state,
    outputs=lambda s: [
        s.topics.full(s.topics.telemetry_raw),
        s.topics.full(s.topics.certificate_notification),
    ],
    read_batch=10,  # a round's certificates are recorded together: small rounds
    # docs/flows/certificate-generator.md, "The notification is never lost": AUDIT and
    # notification are acknowledged before the enrolment update; a replay may send them again
    resends=frozenset({"telemetry.raw", "certificate.notification.request"}),
    debris=_gen_debris,
)

WORKLOADS: dict[str, Workload] = {
    w.flow: w for w in (ACTIVITY, ASSESSMENT, RELATION_CACHE, USER_CACHE, PRE_PROCESSOR, GENERATOR)
}
