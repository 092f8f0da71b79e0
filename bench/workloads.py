"""Synthetic Sunbird-shaped workloads shared by benchmarks and tests.

``simple``: a course with two units and four lessons (the fourth optional); every fifth learner
stops after two lessons; each lesson's events in one block. ``realistic``
(:func:`realistic_workload`): many courses of 5-200 leaves in 2-3 levels, learners in 1-3
courses, each learner's events in sessions interleaved over the stream, re-sent duplicates and
malformed events. Seeding writes what the LMS and the relation cache would hold before the
events; :attr:`Workload.expected` is the end state the flow must leave.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bench.endstate import ConsumptionKey, Course, EndState, EnrolmentKey, expected
from lernflow.config import Settings
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
    from lernflow.flows.relation_cache_updater import rules as relation_rules
    from lernflow.flows.relation_cache_updater.store import RelationCacheWriter

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


# -- workloads with their expected end state (issue 16 item 4) -----------------------------------

COLLECTION = "application/vnd.ekstep.content-collection"
#: share of valid events re-sent later (a retry: the same bytes) and of malformed events added
DUPLICATE_SHARE = 0.03
MALFORMED_SHARE = 0.005


@dataclass(frozen=True)
class Workload:
    """Events with what must be seeded before them and the end state they must produce."""

    name: str
    courses: dict[str, Course]
    enrolled: tuple[EnrolmentKey, ...]  # seeded enrolments (status 0)
    completions: dict[EnrolmentKey, tuple[str, ...]]  # the LMS's status-2 rows = the events'
    events: list[tuple[bytes, bytes]]
    resent: dict[ConsumptionKey, int]  # re-sends of a completion (duplicates)
    malformed: int

    @property
    def expected(self) -> EndState:
        """The end state the flow must leave (docs/flows/activity-aggregate-updater.md)."""
        return expected(self.courses, self.completions)


def _leaf(identifier: str, optional: bool) -> dict[str, Any]:
    return {"identifier": identifier, "mimeType": "application/pdf",
            "relationalMetadata": {"optional": optional}}  # fmt: skip


def _unit(identifier: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    return {"identifier": identifier, "mimeType": COLLECTION, "visibility": "Parent",
            "children": children}  # fmt: skip


def _split(items: Sequence[str], parts: int) -> list[list[str]]:
    """``items`` in ``parts`` contiguous non-empty runs (fewer when there are fewer items)."""
    parts = max(1, min(parts, len(items)))
    size, rest = divmod(len(items), parts)
    out, start = [], 0
    for p in range(parts):
        end = start + size + (1 if p < rest else 0)
        out.append(list(items[start:end]))
        start = end
    return out


def simple_course() -> Course:
    """The simple workload's course (two units of two lessons, the fourth lesson optional)."""
    children = [_unit(u, [_leaf(c, c == LESSONS[3]) for c in ls]) for u, ls in UNITS.items()]
    tree = {"identifier": COURSE, "mimeType": COLLECTION, "visibility": "Default",
            "status": "Live", "children": children}  # fmt: skip
    return Course(
        COURSE, BATCH, tuple(LESSONS), frozenset({LESSONS[3]}),
        {u: frozenset(ls) for u, ls in UNITS.items()},
        {c: (u,) for u, ls in UNITS.items() for c in ls}, tree,
    )  # fmt: skip


def simple_workload(learners: int) -> Workload:
    """The simple workload of ``learners`` as a :class:`Workload`."""
    keys = tuple((f"learner{i}", COURSE, BATCH) for i in range(learners))
    completions = {
        k: tuple(c for j, c in enumerate(LESSONS) if completes(i, j)) for i, k in enumerate(keys)
    }
    return Workload("simple", {COURSE: simple_course()}, keys, completions,
                    activity_events(learners), {}, 0)  # fmt: skip


def random_course(rng: random.Random, n: int, leaves: tuple[int, int]) -> Course:
    """Course ``n``: ``leaves`` leaves (a range), in units (2 levels) or units of sub-units (3);
    about one leaf in ten optional (never the first)."""
    cid = f"do_rl_course_{n:03d}"
    count = rng.randint(*leaves)
    ids = [f"{cid}_c{j:03d}" for j in range(count)]
    optional = frozenset(c for c in ids[1:] if rng.random() < 0.1)
    three = rng.random() < 0.5
    units: dict[str, frozenset[str]] = {}
    ancestors: dict[str, tuple[str, ...]] = {}
    children = []
    for u, run in enumerate(_split(ids, max(1, round(count**0.5 / (2 if three else 1))))):
        uid = f"{cid}_u{u:02d}"
        units[uid] = frozenset(run)
        if not three:
            children.append(_unit(uid, [_leaf(c, c in optional) for c in run]))
            ancestors.update({c: (uid,) for c in run})
            continue
        subs = []
        for v, sub in enumerate(_split(run, rng.randint(1, 3))):
            sid = f"{uid}_s{v}"
            units[sid] = frozenset(sub)
            subs.append(_unit(sid, [_leaf(c, c in optional) for c in sub]))
            ancestors.update({c: (uid, sid) for c in sub})
        children.append(_unit(uid, subs))
    tree = {"identifier": cid, "mimeType": COLLECTION, "visibility": "Default",
            "status": "Live", "children": children}  # fmt: skip
    return Course(cid, f"rl_batch_{n:03d}", tuple(ids), optional, units, ancestors, tree)


def _event(mid: str, key: EnrolmentKey, contents: Sequence[str]) -> bytes:
    user, course, batch = key
    return json.dumps({
        "eid": "BE_JOB_REQUEST", "ets": 1700000000000, "mid": mid,
        "actor": {"id": "Course Batch Updater", "type": "System"},
        "edata": {"action": "batch-enrolment-update", "iteration": 1, "batchId": batch,
                  "userId": user, "courseId": course,
                  "contents": [{"contentId": c, "status": 2} for c in contents]},
    }, separators=(",", ":")).encode()  # fmt: skip


def _malformed(kind: int, body: bytes) -> bytes:
    """A broken copy of ``body``: cut short, without its user, contents not a list, not UTF-8."""
    if kind == 0:
        return body[: len(body) // 2]
    doc = json.loads(body)
    if kind == 1:
        del doc["edata"]["userId"]
        return json.dumps(doc).encode()
    if kind == 2:
        doc["edata"]["contents"] = "do_rl_unknown"
        return json.dumps(doc).encode()
    return b"\xff\xfe" + body


@dataclass(frozen=True)
class _Timed:
    at: float
    seq: int
    key: bytes
    value: bytes


def _sessions(rng: random.Random, key: EnrolmentKey, done: Sequence[str], seq: int) -> list[_Timed]:
    """One enrolment's completions as events in sessions of 1-12 contents at random times."""
    out: list[_Timed] = []
    chunks, i = [], 0
    while i < len(done):
        n = rng.randint(1, 12)
        chunks.append(done[i : i + n])
        i += n
    for start, chunk in zip(sorted(rng.random() for _ in chunks), chunks, strict=True):
        t, j = start, 0
        while j < len(chunk):
            take = 2 if rng.random() < 0.1 else 1  # now and then two contents in one request
            seq += 1
            out.append(
                _Timed(t, seq, key[0].encode(), _event(f"LMS.rl.{seq}", key, chunk[j : j + take]))
            )
            j += take
            t += rng.uniform(0.0002, 0.002)
    return out


def realistic_workload(
    events: int, seed: int = 16, courses: int = 50, leaves: tuple[int, int] = (5, 200)
) -> Workload:
    """About ``events`` events over ``courses`` courses, deterministic for ``seed``.

    Learners enrol in 1-3 courses; three in ten finish the whole course, the others stop after
    a random number of leaves (0 included), in course order. Each enrolment's events come in
    sessions at random points of the stream, interleaved with everyone else's. 3 % of the
    valid events (chosen at random) are sent again 1-10 % of the stream later (a retry), and
    0.5 % (at least one) malformed copies are added (parked by the flow, no state).
    """
    rng = random.Random(seed)
    catalogue = [random_course(rng, n, leaves) for n in range(courses)]
    timed: list[_Timed] = []
    enrolled: list[EnrolmentKey] = []
    completions: dict[EnrolmentKey, tuple[str, ...]] = {}
    wanted = events / (1 + DUPLICATE_SHARE + MALFORMED_SHARE)
    learner = 0
    while len(timed) < wanted:
        user = f"rl-learner-{learner:07d}"
        learner += 1
        for course in rng.sample(catalogue, rng.randint(1, 3)):
            key = (user, course.course_id, course.batch_id)
            enrolled.append(key)
            n = len(course.leaves)
            done = course.leaves[: n if rng.random() < 0.3 else rng.randint(0, n - 1)]
            completions[key] = done
            timed += _sessions(rng, key, done, len(timed) * 4)
    return _with_noise(rng, catalogue, enrolled, completions, timed)


def _with_noise(
    rng: random.Random,
    catalogue: list[Course],
    enrolled: list[EnrolmentKey],
    completions: dict[EnrolmentKey, tuple[str, ...]],
    timed: list[_Timed],
) -> Workload:
    """Add the re-sent duplicates and the malformed events; order everything by time."""
    resent: dict[ConsumptionKey, int] = {}
    extra: list[_Timed] = []
    for i in sorted(rng.sample(range(len(timed)), round(len(timed) * DUPLICATE_SHARE))):
        e = timed[i]
        extra.append(_Timed(e.at + rng.uniform(0.01, 0.1), e.seq, e.key, e.value))
        edata = json.loads(e.value)["edata"]
        key = (edata["userId"], edata["courseId"], edata["batchId"])
        for c in edata["contents"]:
            ck = (*key, c["contentId"])
            resent[ck] = resent.get(ck, 0) + 1
    malformed = max(1, round(len(timed) * MALFORMED_SHARE))
    for n, i in enumerate(sorted(rng.sample(range(len(timed)), malformed))):
        e = timed[i]
        extra.append(_Timed(rng.random(), e.seq, e.key, _malformed(n % 4, e.value)))
    ordered = sorted(timed + extra, key=lambda t: (t.at, t.seq))
    return Workload(
        "realistic", {c.course_id: c for c in catalogue}, tuple(enrolled), completions,
        [(t.key, t.value) for t in ordered], resent, malformed,
    )  # fmt: skip


def seed_workload(settings: Settings, workload: Workload) -> None:
    """The relation cache of every course, the enrolments (status 0) and the LMS's status rows
    of every completion (the LMS writes them before it sends the event)."""
    from lernflow.flows.relation_cache_updater import rules as relation_rules
    from lernflow.flows.relation_cache_updater.store import RelationCacheWriter

    writer = RelationCacheWriter(settings)
    for course in workload.courses.values():
        writer.write(relation_rules.plan(course.course_id, course.tree))
    writer.close()
    cluster, session = cassandra_session(settings.cassandra, settings.cassandra.courses_keyspace)
    try:
        enrol = session.prepare(
            "INSERT INTO user_enrolments (userid, courseid, batchid, status, active) "
            "VALUES (?, ?, ?, 0, true)"
        )
        lms = session.prepare(
            "UPDATE user_content_consumption SET status=2, progress=100 "
            "WHERE userid=? AND courseid=? AND batchid=? AND contentid=?"
        )
        write_all(session, enrol, list(workload.enrolled))
        write_all(session, lms, [(*k, c) for k, done in workload.completions.items() for c in done])
    finally:
        cluster.shutdown()
