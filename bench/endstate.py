"""The Cassandra end state activity-aggregate-updater must leave, computed from a workload, read
back from the tables, and compared (docs/flows/activity-aggregate-updater.md §2.2, §4-§7).

Compared: ``user_content_consumption`` (viewcount, completedcount), ``user_activity_agg``
(``aggregates['completedCount']``), ``user_enrolments`` (status, progress, contentstatus,
whether ``completedon`` is set). Not compared: times (``datetime``, ``agg_last_updated``,
``completedon``'s value), the flow's own ledger, Redis dedup keys, Kafka outputs.

A duplicate that lands in the same round as its original is counted twice, as in Sunbird (the
dedup keys are stored after the round): a re-sent content may read 1 up to 1 + its re-sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lernflow.config import Settings
from lernflow.kernel.clients import cassandra_session

EnrolmentKey = tuple[str, str, str]  # (userid, courseid, batchid)
ConsumptionKey = tuple[str, str, str, str]  # (userid, courseid, batchid, contentid)
AggKey = tuple[str, str, str]  # (activity_id, user_id, context_id)


@dataclass(frozen=True)
class Course:
    """A published course as the relation cache holds it."""

    course_id: str
    batch_id: str
    leaves: tuple[str, ...]  # in course order
    optional: frozenset[str]
    units: Mapping[str, frozenset[str]]  # every unit id (all levels) → the leaves below it
    ancestors: Mapping[str, tuple[str, ...]]  # leaf → its unit ids
    tree: Mapping[str, Any]  # the hierarchy document (seeds the relation cache)

    @property
    def required(self) -> frozenset[str]:
        """The leaves that count towards completion."""
        return frozenset(self.leaves) - self.optional


@dataclass(frozen=True)
class EnrolmentState:
    """What the flow leaves on an enrolment row."""

    status: int
    progress: int
    content_status: Mapping[str, int]
    completed: bool  # completedon is set


@dataclass
class EndState:
    """The compared rows of the three tables."""

    consumption: dict[ConsumptionKey, tuple[int, int]] = field(default_factory=dict)
    aggregates: dict[AggKey, float] = field(default_factory=dict)
    enrolments: dict[EnrolmentKey, EnrolmentState] = field(default_factory=dict)


def expected(
    courses: Mapping[str, Course], completions: Mapping[EnrolmentKey, Iterable[str]]
) -> EndState:
    """The end state after every completion in ``completions`` reached the flow once."""
    out = EndState()
    for key, contents in completions.items():
        done = frozenset(contents)
        if not done:
            continue
        user, course_id, batch = key
        course = courses[course_id]
        for c in done:
            out.consumption[(*key, c)] = (1, 1)
        progress = len(course.required & done)
        context = f"cb:{batch}"
        out.aggregates[(course_id, user, context)] = float(progress)
        for unit in {u for c in done for u in course.ancestors.get(c, ())}:
            out.aggregates[(unit, user, context)] = float(
                len((course.units[unit] - course.optional) & done)
            )
        finished = progress >= len(course.required)
        out.enrolments[key] = EnrolmentState(
            2 if finished else 1, progress, {c: 2 for c in done}, finished
        )
    return out


def read(settings: Settings) -> EndState:
    """The compared rows as they are now (the bench keyspaces are truncated before each row)."""
    ks = settings.cassandra.courses_keyspace
    cluster, session = cassandra_session(settings.cassandra)
    out = EndState()
    try:
        for r in session.execute(
            "SELECT userid, courseid, batchid, contentid, viewcount, completedcount "
            f"FROM {ks}.user_content_consumption"
        ):
            out.consumption[(r.userid, r.courseid, r.batchid, r.contentid)] = (
                int(r.viewcount or 0), int(r.completedcount or 0)
            )  # fmt: skip
        for r in session.execute(
            f"SELECT activity_id, user_id, context_id, aggregates FROM {ks}.user_activity_agg"
        ):
            value = (r.aggregates or {}).get("completedCount")
            if value is not None:
                out.aggregates[(r.activity_id, r.user_id, r.context_id)] = float(value)
        for r in session.execute(
            "SELECT userid, courseid, batchid, status, progress, contentstatus, completedon "
            f"FROM {ks}.user_enrolments"
        ):
            if r.status:  # status 0: seeded, never touched
                out.enrolments[(r.userid, r.courseid, r.batchid)] = EnrolmentState(
                    int(r.status), int(r.progress or 0), dict(r.contentstatus or {}),
                    r.completedon is not None,
                )  # fmt: skip
    finally:
        cluster.shutdown()
    return out


def differences(
    actual: EndState,
    wanted: EndState,
    resent: Mapping[ConsumptionKey, int] | None = None,
    limit: int = 10,
) -> list[str]:
    """What differs (at most ``limit`` lines); ``resent``: re-sends per consumption row."""
    resent = resent or {}
    out: list[str] = []
    tables: list[tuple[str, dict[Any, Any], dict[Any, Any]]] = [
        ("consumption", dict(actual.consumption), dict(wanted.consumption)),
        ("aggregate", dict(actual.aggregates), dict(wanted.aggregates)),
        ("enrolment", dict(actual.enrolments), dict(wanted.enrolments)),
    ]
    for name, a, w in tables:
        for k in sorted(set(a) | set(w), key=repr):
            got, want = a.get(k), w.get(k)
            if got == want:
                continue
            if name == "consumption" and got is not None and want is not None:
                extra = resent.get(k, 0)
                if got[0] == got[1] and want[0] <= got[0] <= want[0] + extra:
                    continue
            out.append(f"{name} {k}: got {got}, want {want}")
            if len(out) >= limit:
                return out
    return out
