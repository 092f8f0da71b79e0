"""Pure rules of activity-aggregate-updater (``docs/flows/activity-aggregate-updater.md``).

A ``BE_JOB_REQUEST`` (``edata.action = batch-enrolment-update``) reports content statuses of one
enrolment (user, course, batch). Only completed contents (status 2) count. This module decides
everything the job writes and emits; it does no I/O (the clock, ids and every stored value are
arguments).

How the flow uses this module
-----------------------------
1. ``parse_request(value)`` → :class:`EnrolmentRequest` or :class:`Skipped`;
   :class:`~lernflow.kernel.errors.InvalidEvent` goes to the failed topic with its reason.
2. Dedup: ``checksum(course, batch, user, content)`` per completed content; contents whose key
   exists in the dedup DB are dropped (Sunbird's 7-day window).
3. Replay check: a request whose input offset is ``<=`` the enrolment's stored applied offset for
   that ``topic:partition`` was already counted: its contents are passed as *replayed* (they
   still count as completed, but add nothing to the counters).
4. Read the consumption rows, the enrolment row and the relation-cache sets named by
   :func:`course_keys`, :func:`ancestor_key` and :func:`unit_keys`, then call
   :func:`plan_enrolment` once per enrolment with all its requests of the round.
5. Apply the :class:`EnrolmentPlan`: produce the content AUDIT events; write, in one logged
   batch per enrolment, the consumption counters, the ledger row (applied offsets and, on
   completion, the completing record), the enrolment update and the aggregates; produce the
   certificate request and enrol-complete AUDIT; store ``checksums``. A replay of the completing
   record re-sends those two events unless the request's deterministic ``mid`` is on the topic.

Fixes over Sunbird
------------------
* **Counters are replay-safe.** Sunbird adds +1 to ``viewcount``/``completedcount`` each time a
  record is processed, so a crash/restart or a replay after the dedup TTL inflates them. Here a
  record is counted once: the applied-offset ledger (``lernflow_activity_applied``) is written in
  the same logged batch as the counters, and replayed records add nothing.
* **All records of an enrolment in a window count.** Sunbird uses only the first record's
  contents per enrolment and window (its "head-only" quirk); here every record's completions
  are merged, in order.
* **No crash loop on missing leaf nodes.** A live course without leaf nodes sends the request to
  the failed topic with the reason and writes *nothing* (Sunbird has already incremented the
  counters when it throws, then loops). Requeue it once the relation cache is fixed.
* **Collection status from our store.** Sunbird asks its search API whether the course is
  Retired; we read the ``status`` of the published hierarchy (``hierarchy_store``), the source
  of the relation cache.
* **Strict input.** Wrong types (a string status, ``contents`` not a list, ids not strings) are
  rejected with a reason instead of being silently ignored or crashing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lernflow.flows.fields import bounded_id, required_id
from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.ids import random_uuid
from lernflow.kernel.jsondoc import DEFAULT_LIMITS, Limits, decode

ACTION = "batch-enrolment-update"
ACTIVITY_TYPE = "Course"
COMPLETED = 2
IN_PROGRESS = 1
NULL_STATUS = IN_PROGRESS  # a consumption row whose status was never written reads as 1
RETIRED = "Retired"


# -- input -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnrolmentRequest:
    """One valid batch-enrolment-update request: the completed contents, in array order."""

    user_id: str
    course_id: str
    batch_id: str
    completed: tuple[str, ...]

    @functools.cached_property
    def key(self) -> tuple[str, str, str]:
        """``(user, course, batch)``: the enrolment (computed once; read in every step)."""
        return (self.user_id, self.course_id, self.batch_id)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_request(
    value: bytes | str, *, limits: Limits = DEFAULT_LIMITS
) -> EnrolmentRequest | Skipped:
    """Validate one input message.

    See docs/flows/activity-aggregate-updater.md#1-inputs and #3-filter-and-dedup.

    Returns :class:`Skipped` for another action or no completed content; raises
    :class:`InvalidEvent` for anything malformed or over ``limits`` (the event's size and
    nesting, the length of every id that becomes a key).
    """
    doc = decode(value, limits)
    if not isinstance(doc, dict):
        msg = f"the event must be a JSON object, got {type(doc).__name__}"
        raise InvalidEvent(msg)
    edata = doc.get("edata")
    if not isinstance(edata, dict):
        msg = "edata is missing" if edata is None else f"edata must be an object, got {edata!r}"
        raise InvalidEvent(msg)
    action = edata.get("action")
    if not isinstance(action, str) or action.lower() != ACTION:
        return Skipped("other-action", f"edata.action is {action!r}, not {ACTION!r}")
    contents = edata.get("contents", [])
    if contents is None:
        contents = []
    if not isinstance(contents, list):
        msg = f"edata.contents must be a list, got {type(contents).__name__}"
        raise InvalidEvent(msg)
    user, course, batch = (
        required_id(edata, "userId", limits),
        required_id(edata, "courseId", limits),
        required_id(edata, "batchId", limits),
    )
    completed: list[str] = []
    for i, entry in enumerate(contents):
        if not isinstance(entry, dict):
            msg = f"edata.contents[{i}] must be an object, got {entry!r}"
            raise InvalidEvent(msg)
        status, content = entry.get("status"), entry.get("contentId")
        if not _number(status):
            msg = f"edata.contents[{i}].status must be a number, got {status!r}"
            raise InvalidEvent(msg)
        if content is not None and not isinstance(content, str):
            msg = f"edata.contents[{i}].contentId must be a string, got {content!r}"
            raise InvalidEvent(msg)
        if status == COMPLETED and content and content.strip():
            if len(content) > limits.max_id_chars or not content.isascii():  # path built lazily
                bounded_id(content, f"edata.contents[{i}].contentId", limits)
            completed.append(content)
    if not completed:
        return Skipped("no-completed-content", "no content with status 2")
    return EnrolmentRequest(user, course, batch, tuple(completed))


def completion_id(key: tuple[str, str, str], completed_on_ms: int) -> str:
    """Deterministic request id of an enrolment's completion (the certificate ``mid`` suffix).

    Rebuilding the event after a crash gives the same ``mid``, so the flow can tell whether it
    already reached the certificate topic.
    """
    return str(
        uuid.uuid5(
            uuid.NAMESPACE_URL, "lernflow:completion:" + "|".join(key) + f"|{completed_on_ms}"
        )
    )


def certificate_mid(key: tuple[str, str, str], completed_on_ms: int) -> str:
    """The ``mid`` of the certificate request of this completion."""
    return f"LP.{completed_on_ms}.{completion_id(key, completed_on_ms)}"


def checksum(course_id: str, batch_id: str, user_id: str, content_id: str) -> str:
    """Sunbird's dedup key: uppercase hex MD5 of ``course|batch|user|content|2``.

    See docs/flows/activity-aggregate-updater.md#23-redis.
    """
    raw = f"{course_id}|{batch_id}|{user_id}|{content_id}|{COMPLETED}"
    return hashlib.md5(raw.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


# -- relation cache keys ---------------------------------------------------------------------
def leaf_key(course_id: str, collection_id: str) -> str:
    """``<course>:<collection>:leafnodes``."""
    return f"{course_id}:{collection_id}:leafnodes"


def optional_key(course_id: str, collection_id: str) -> str:
    """``<course>:<collection>:optionalnodes``."""
    return f"{course_id}:{collection_id}:optionalnodes"


def ancestor_key(course_id: str, content_id: str) -> str:
    """``<course>:<content>:ancestors``."""
    return f"{course_id}:{content_id}:ancestors"


def course_keys(course_id: str) -> tuple[str, str]:
    """The course's leaf-node and optional-node keys."""
    return leaf_key(course_id, course_id), optional_key(course_id, course_id)


def unit_keys(course_id: str, unit_id: str) -> tuple[str, str]:
    """A unit's leaf-node and optional-node keys."""
    return leaf_key(course_id, unit_id), optional_key(course_id, unit_id)


# -- state and plan --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoredContent:
    """A ``user_content_consumption`` row as read (null status → 1, null counters → 0)."""

    status: int
    view_count: int
    completed_count: int


@dataclass(frozen=True)
class EnrolmentRow:
    """The ``user_enrolments`` columns this job reads."""

    status: int | None
    progress: int | None
    completedon_ms: int | None


@dataclass(frozen=True)
class Ledger:
    """An enrolment's rows of the applied-offset ledger (``lernflow_activity_applied``).

    ``offsets``: the highest input offset already counted, per ``topic:partition``;
    ``pending_since_ms``: the completion time of a certificate-pending marker row an older
    version left (``source = 'certificate-pending'``); ``completion``: the completing record.
    """

    offsets: dict[str, int]
    pending_since_ms: int | None = None
    completion: CompletionMark | None = None


@dataclass(frozen=True)
class CompletionMark:
    """The record that completed the enrolment and the completion time, kept in the ledger row.

    Written with the completion, never cleared: only a replay of that very record can find the
    certificate request unsent (docs/flows/activity-aggregate-updater.md#72-the-ledger-row).
    """

    record: AppliedOffset
    completed_on_ms: int


@dataclass(frozen=True)
class MergedContent:
    """One input content after merging it with its stored row (the other stored rows are not
    copied: a plan reads their statuses from the stored state).

    See docs/flows/activity-aggregate-updater.md#4-merge-with-the-stored-consumption.
    """

    content_id: str
    status: int
    completed_count: int
    view_count: int
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class AggregateUpdate:
    """``user_activity_agg`` map-merge of ``completedCount`` for the course or one unit."""

    activity_id: str
    user_id: str
    context_id: str
    completed_count: float
    updated_ms: int


@dataclass(frozen=True)
class EnrolmentUpdate:
    """``user_enrolments`` update; ``completed_on_ms`` only when the status becomes 2."""

    status: int
    progress: int
    content_status: dict[str, int]
    completed_on_ms: int | None
    datetime_ms: int


@dataclass(frozen=True)
class EnrolmentPlan:
    """Everything to do for one enrolment in one round.

    ``failure`` set → send the round's requests of this enrolment to the failed topic and do
    nothing else.
    """

    key: tuple[str, str, str]
    merged: tuple[MergedContent, ...] = ()
    aggregates: tuple[AggregateUpdate, ...] = ()
    enrolment: EnrolmentUpdate | None = None
    audit_events: tuple[str, ...] = ()
    certificate_event: str | None = None
    enrol_complete_event: str | None = None
    checksums: tuple[str, ...] = ()
    retired: bool = False
    failure: str | None = None

    @property
    def completion(self) -> Completion | None:
        """The certificate request and enrol-complete AUDIT of a first completion, if any."""
        if self.certificate_event is None or self.enrol_complete_event is None:
            return None
        return Completion(self.key, self.certificate_event, self.enrol_complete_event)


def merge_contents(
    new_completions: Mapping[str, int],
    replayed: Sequence[str],
    stored: Mapping[str, StoredContent],
) -> dict[str, MergedContent]:
    """Merge the input completions with their stored rows (only the input contents).

    See docs/flows/activity-aggregate-updater.md#4-merge-with-the-stored-consumption.

    ``new_completions`` maps each content to the number of not-yet-counted completion records;
    ``replayed`` lists completed contents whose records were already counted. Status never
    goes backwards; counters grow by the new records only; a content gets a ``start`` event
    when it had never been viewed and ``complete`` when it had never been completed.
    """
    merged: dict[str, MergedContent] = {}
    for content_id in [*new_completions, *[c for c in replayed if c not in new_completions]]:
        db = stored.get(content_id, StoredContent(0, 0, 0))
        n = new_completions.get(content_id, 0)
        events: list[str] = []
        if n > 0:
            if db.view_count == 0:
                events.append("start")
            if db.completed_count == 0:
                events.append("complete")
        merged[content_id] = MergedContent(
            content_id,
            max(COMPLETED, db.status),
            db.completed_count + n,
            db.view_count + n,
            tuple(events),
        )
    return merged


_NONE: frozenset[str] = frozenset()


def _members(relation: Mapping[str, frozenset[str]], key: str) -> frozenset[str]:
    return relation.get(key, _NONE)


class RelationView(Mapping[str, frozenset[str]]):
    """The relation-cache sets as read (a missing key reads as empty), with what plans derive
    from them kept per course: each content's ancestor units and each collection's required
    leaves. A set, once read, is not read again while the view lives (a round, or the
    relation memory's seconds), so what is derived from sets that were read is kept; what a
    key not read yet gave is derived again at the next call."""

    def __init__(self, sets: Mapping[str, frozenset[str]]) -> None:
        self._sets = dict(sets)
        self._units: dict[str, dict[str, frozenset[str]]] = {}
        self._required: dict[str, dict[str, frozenset[str]]] = {}
        self._asked: dict[str, set[str]] = {}

    @classmethod
    def of(cls, relation: Mapping[str, frozenset[str]]) -> RelationView:
        """``relation`` itself if it is a view, else a view of it."""
        return relation if isinstance(relation, RelationView) else cls(relation)

    def __getitem__(self, key: str) -> frozenset[str]:
        return self._sets[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sets)

    def __len__(self) -> int:
        return len(self._sets)

    def add(self, sets: Mapping[str, frozenset[str]]) -> None:
        """Sets just read (a missing key as an empty set)."""
        self._sets.update(sets)

    def forget_missing_courses(self) -> None:
        """Forget the course keys read empty, so the next round reads them again (a course
        without leaf nodes is parked or Retired until its relation cache is rebuilt)."""
        for course in self._asked.keys() | self._required.keys():
            leaf = leaf_key(course, course)
            if not self._sets.get(leaf):
                self._sets.pop(leaf, None)
                self._sets.pop(optional_key(course, course), None)
                self._required.get(course, {}).pop(course, None)

    def unasked(self, course: str, contents: Iterable[str]) -> set[str]:
        """The ancestors keys of those ``contents`` of ``course`` not asked for by an earlier
        call (the caller reads them into the sets)."""
        asked = self._asked.setdefault(course, set())
        new = [c for c in contents if c not in asked]
        asked.update(new)
        return {ancestor_key(course, c) for c in new}

    def units(self, course: str, contents: Iterable[str]) -> set[str]:
        """The units (ancestors other than the course) of ``contents`` in ``course``."""
        kept = self._units.setdefault(course, {})
        contents = list(contents)
        try:
            return set().union(*map(kept.__getitem__, contents))  # all derived: one C loop
        except KeyError:
            pass
        out: set[str] = set()
        for content in contents:
            units = kept.get(content)
            if units is None:
                key = ancestor_key(course, content)
                units = _members(self._sets, key) - {course}
                if key in self._sets:
                    kept[content] = units
            out |= units
        return out

    def required(self, course: str, collection: str) -> frozenset[str]:
        """The leaf nodes of ``collection`` (the course or a unit) less its optional nodes."""
        kept = self._required.setdefault(course, {})
        required = kept.get(collection)
        if required is None:
            leaf, optional = leaf_key(course, collection), optional_key(course, collection)
            required = _members(self._sets, leaf) - _members(self._sets, optional)
            if leaf in self._sets and optional in self._sets:
                kept[collection] = required
        return required


def plan_enrolment(
    key: tuple[str, str, str],
    *,
    new_completions: Mapping[str, int],
    replayed: Sequence[str],
    stored: Mapping[str, StoredContent],
    relation: Mapping[str, frozenset[str]],
    enrolment_status: int | None,
    enrolment_exists: bool,
    collection_status: str | None,
    now_ms: int,
    module_aggs: bool = True,
    filter_processed: bool = True,
    new_id: Any = None,
) -> EnrolmentPlan:
    """Compute the writes and events for one enrolment.

    See docs/flows/activity-aggregate-updater.md#5-course-progress-and-completion,
    #6-unit-aggregates, #7-enrolment-update-and-first-completion and
    #8-missing-leaf-nodes-and-retired-courses.

    ``relation`` must hold the course keys, the ancestors of every merged content and the unit
    keys of every ancestor unit (missing keys read as empty sets). ``collection_status`` is
    consulted only when the course has no leaf nodes.
    """
    user, course, batch = key
    make_id = new_id or random_uuid
    view = RelationView.of(relation)
    merged = merge_contents(new_completions, replayed, stored)
    statuses = {c: db.status for c, db in stored.items()}
    statuses.update((c, m.status) for c, m in merged.items())
    done = frozenset(c for c, status in statuses.items() if status == COMPLETED)
    leaf = _members(relation, leaf_key(course, course))
    if not leaf and collection_status != RETIRED:
        return EnrolmentPlan(key, failure=_missing_leaf_nodes(course, collection_status))
    retired = not leaf
    progress = _CourseProgress()
    if not retired:
        keep = enrolment_exists and enrolment_status != COMPLETED if filter_processed else True
        required = view.required(course, course)
        progress = _course_progress(key, required, statuses, done, keep, now_ms, make_id)
    units = _unit_aggregates(key, statuses, done, view, now_ms) if module_aggs else []
    content_audits = [
        content_audit(user, course, batch, m.content_id, action, now_ms, make_id)
        for m in merged.values()
        for action in m.events
    ]
    checksums = () if retired else tuple(checksum(course, batch, user, c) for c in merged)
    return EnrolmentPlan(
        key,
        merged=tuple(merged.values()),
        aggregates=(*progress.aggregates, *units),
        enrolment=progress.enrolment,
        audit_events=tuple(content_audits),
        certificate_event=progress.certificate_event,
        enrol_complete_event=progress.enrol_complete_event,
        checksums=checksums,
        retired=retired,
    )


def with_unit_aggregates(
    plan: EnrolmentPlan,
    stored: Mapping[str, StoredContent],
    relation: Mapping[str, frozenset[str]],
    now_ms: int,
) -> EnrolmentPlan:
    """``plan``, made with ``module_aggs=False`` from ``stored``, with the unit aggregates
    ``module_aggs=True`` would have given it. ``stored`` may hold the plan's counter writes:
    they change no status (docs/flows/activity-aggregate-updater.md#6-unit-aggregates)."""
    view = RelationView.of(relation)
    statuses = {c: db.status for c, db in stored.items()}
    statuses.update((m.content_id, m.status) for m in plan.merged)
    done = frozenset(c for c, status in statuses.items() if status == COMPLETED)
    units = _unit_aggregates(plan.key, statuses, done, view, now_ms)
    return dataclasses.replace(plan, aggregates=(*plan.aggregates, *units))


def _missing_leaf_nodes(course: str, collection_status: str | None) -> str:
    """The failure reason of a live (not Retired) course without leaf nodes."""
    state = "not published" if collection_status is None else collection_status
    return (
        f"leaf nodes are not available for a published collection: {course} "
        f"(relation cache key {leaf_key(course, course)} is empty; collection "
        f"status {state}); rebuild the relation cache, then requeue"
    )


@dataclass(frozen=True)
class _CourseProgress:
    """The course part of a plan (none for a Retired course)."""

    aggregates: tuple[AggregateUpdate, ...] = ()
    enrolment: EnrolmentUpdate | None = None
    certificate_event: str | None = None
    enrol_complete_event: str | None = None


def _course_progress(
    key: tuple[str, str, str],
    required: frozenset[str],
    statuses: Mapping[str, int],
    done: frozenset[str],
    keep: bool,
    now_ms: int,
    make_id: Any,
) -> _CourseProgress:
    """Course aggregate, enrolment update (when ``keep``) and, on completion, its two events."""
    user, course, batch = key
    progress = len(required & done)
    completed = progress >= len(required)
    aggregate = AggregateUpdate(course, user, f"cb:{batch}", float(progress), now_ms)
    if not keep:
        return _CourseProgress((aggregate,))
    enrolment = EnrolmentUpdate(
        COMPLETED if completed else IN_PROGRESS,
        progress,
        dict(statuses),
        now_ms if completed else None,
        now_ms,
    )
    if not completed:
        return _CourseProgress((aggregate,), enrolment)
    return _CourseProgress(
        (aggregate,),
        enrolment,
        certificate_event(user, course, batch, now_ms, completion_id(key, now_ms)),
        enrol_complete_audit(user, course, batch, now_ms, make_id),
    )


def _unit_aggregates(
    key: tuple[str, str, str],
    merged: Mapping[str, int],
    done: frozenset[str],
    relation: RelationView,
    now_ms: int,
) -> list[AggregateUpdate]:
    """``completedCount`` of every unit that is an ancestor of a merged content."""
    user, course, batch = key
    context = f"cb:{batch}"
    return [
        AggregateUpdate(
            unit, user, context, float(len(relation.required(course, unit) & done)), now_ms
        )
        for unit in sorted(relation.units(course, merged))
    ]


# -- one round: what counts, what is read, what is written -----------------------------------
def new_counts(request: EnrolmentRequest, seen: Collection[str]) -> dict[str, int]:
    """The request's completions whose dedup key is not in ``seen``, with their record counts."""
    r = request
    return dict(
        Counter(
            c for c in r.completed if checksum(r.course_id, r.batch_id, r.user_id, c) not in seen
        )
    )


def unit_relation_keys(
    ancestors: Mapping[str, Iterable[str]], relation: Mapping[str, frozenset[str]]
) -> set[str]:
    """The leaf and optional keys of every unit named by the ``ancestors`` keys (course id →
    its ``<course>:<content>:ancestors`` keys) in ``relation``."""
    keys: set[str] = set()
    for course, ancestor_keys in ancestors.items():
        units: set[str] = set()
        for key in ancestor_keys:
            units |= _members(relation, key)
        units.discard(course)
        for unit in units:
            keys.update(unit_keys(course, unit))
    return keys


@dataclass(frozen=True)
class Completion:
    """A first completion's events: the certificate request, then the enrol-complete AUDIT."""

    key: tuple[str, str, str]
    certificate_event: str
    audit_event: str


def rebuilt_completion(
    key: tuple[str, str, str], completed_on_ms: int, new_id: Any = None
) -> Completion:
    """The events of a completion whose pending marker an interrupted run left behind.

    The certificate request gets the same deterministic ``mid`` as the first time.
    """
    user, course, batch = key
    make_id = new_id or random_uuid
    return Completion(
        key,
        certificate_event(
            user, course, batch, completed_on_ms, completion_id(key, completed_on_ms)
        ),
        enrol_complete_audit(user, course, batch, completed_on_ms, make_id),
    )


@dataclass(frozen=True)
class AppliedOffset:
    """The input record that counted an enrolment's completions (``topic:partition``, offset)."""

    source: str
    offset: int


@dataclass(frozen=True)
class EnrolmentWrite:
    """One enrolment's state, written as one logged batch (all or nothing).

    ``counters`` are the consumption rows these records count, ``applied`` the highest offset
    that counted them per source (so a replay counts nothing twice), ``enrolment`` the enrolment update (on a
    first completion with a certificate-pending marker) and ``aggregates`` the course and unit
    ``completedCount``.
    """

    key: tuple[str, str, str]
    counters: tuple[MergedContent, ...] = ()
    applied: tuple[AppliedOffset, ...] = ()
    enrolment: EnrolmentUpdate | None = None
    aggregates: tuple[AggregateUpdate, ...] = ()
    completed_by: AppliedOffset | None = None

    @property
    def pending_since_ms(self) -> int | None:
        """The completion time the certificate-pending marker records (None: no marker)."""
        return None if self.enrolment is None else self.enrolment.completed_on_ms


def enrolment_write(
    plan: EnrolmentPlan, new_completions: Mapping[str, int], applied: AppliedOffset
) -> EnrolmentWrite:
    """What one planned enrolment writes.

    Only the rows this record counts are written. Rewriting the other stored rows (or a
    replayed record's rows) with the values read a moment ago could overwrite a newer count:
    after a kill -9 the dead process's last batch can still be landing in Cassandra while the
    restarted one reads (found by the 100k kill loop test). The applied offset is written only
    when the record counts something.
    """
    return EnrolmentWrite(
        plan.key,
        counters=tuple(m for m in plan.merged if m.content_id in new_completions),
        applied=(applied,) if new_completions else (),
        enrolment=plan.enrolment,
        aggregates=plan.aggregates,
        completed_by=applied
        if plan.enrolment is not None and plan.enrolment.completed_on_ms is not None
        else None,
    )


# -- output payloads: docs/flows/activity-aggregate-updater.md#9-output-payloads --------------
def merge_writes(writes: Sequence[EnrolmentWrite]) -> list[EnrolmentWrite]:
    """One write per enrolment for a run of its records planned one after another.

    Each column ends as the last write left it: the last counters of each content, the
    highest applied offset of each source, the last enrolment update (keeping the completion
    time and its certificate-pending marker if an earlier record completed the course) and the
    last value of each aggregate. Writing that once equals writing each in turn
    (docs/flows/activity-aggregate-updater.md#71-one-write-per-enrolment-and-batch).
    """
    merged: dict[tuple[str, str, str], EnrolmentWrite] = {}
    for w in writes:
        before = merged.get(w.key)
        merged[w.key] = w if before is None else _merge_write(before, w)
    return list(merged.values())


def _merge_write(a: EnrolmentWrite, b: EnrolmentWrite) -> EnrolmentWrite:
    counters = {m.content_id: m for m in (*a.counters, *b.counters)}
    applied: dict[str, int] = {}
    for x in (*a.applied, *b.applied):
        applied[x.source] = max(applied.get(x.source, x.offset), x.offset)
    enrolment = b.enrolment or a.enrolment
    if (
        enrolment is not None
        and enrolment.completed_on_ms is None
        and a.enrolment is not None
        and a.enrolment.completed_on_ms is not None
    ):
        enrolment = dataclasses.replace(enrolment, completed_on_ms=a.enrolment.completed_on_ms)
    aggregates = {
        (g.activity_id, g.user_id, g.context_id): g for g in (*a.aggregates, *b.aggregates)
    }
    return EnrolmentWrite(
        a.key,
        counters=tuple(counters.values()),
        applied=tuple(AppliedOffset(src, off) for src, off in applied.items()),
        enrolment=enrolment,
        aggregates=tuple(aggregates.values()),
        completed_by=a.completed_by or b.completed_by,
    )


# One AUDIT event is built per content event, so it is assembled from pre-encoded parts (the
# same bytes as ``json.dumps(doc, separators=(",", ":"), ensure_ascii=False)`` of the document
# in docs/flows/activity-aggregate-updater.md#91-content-audit-event; a unit test holds them
# equal): a third of the cost of building and encoding the dict.
_q = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept
_PROPS_START = '["viewcount"]'
_PROPS_COMPLETE = '["viewcount","completedcount"]'
_PROPS_ENROL = '["status","completedon"]'
_PDATA = (
    '"pdata":{"ver":"3.0","id":"org.sunbird.learning.platform","pid":"course-progress-updater"}'
)


def _audit(
    actor: str,
    props: str,
    kind: str,
    cdata: str,
    obj: str,
    now_ms: int,
    make_id: Callable[[], str],
) -> str:
    """An AUDIT event; ``props``, ``cdata`` and ``obj`` are already JSON."""
    sid, did, mid = make_id(), make_id(), make_id()
    return (
        f'{{"actor":{{"id":{_q(actor)},"type":"User"}},"eid":"AUDIT",'
        f'"edata":{{"props":{props},"type":{_q(kind)}}},"ver":"3.0",'
        f'"syncts":{int(now_ms)},"ets":{int(now_ms)},'
        f'"context":{{"channel":"in.sunbird","env":"Course","sid":{_q(sid)},"did":{_q(did)},'
        f'{_PDATA},"cdata":{cdata}}},'
        f'"mid":{_q("LP.AUDIT." + mid)},"object":{obj},"tags":[]}}'
    )


def content_audit(
    user: str,
    course: str,
    batch: str,
    content: str,
    action: str,
    now_ms: int,
    make_id: Callable[[], str],
) -> str:
    """The content ``start``/``complete`` AUDIT event.

    See docs/flows/activity-aggregate-updater.md#91-content-audit-event.
    """
    props = _PROPS_START if action == "start" else _PROPS_COMPLETE
    obj = f'{{"id":{_q(content)},"type":"Content","rollup":{{"l1":{_q(course)}}}}}'
    cdata = f'[{{"type":"CourseBatch","id":{_q(batch)}}}]'
    return _audit(user, props, action, cdata, obj, now_ms, make_id)


def enrol_complete_audit(
    user: str, course: str, batch: str, now_ms: int, make_id: Callable[[], str]
) -> str:
    """The ``enrol-complete`` AUDIT event.

    See docs/flows/activity-aggregate-updater.md#92-enrol-complete-audit.
    """
    obj = f'{{"id":{_q(user)},"type":"User","rollup":{{"l1":{_q(course)}}}}}'
    cdata = f'[{{"type":"CourseBatch","id":{_q(batch)}}},{{"type":"Course","id":{_q(course)}}}]'
    return _audit(user, _PROPS_ENROL, "enrol-complete", cdata, obj, now_ms, make_id)


def certificate_event(user: str, course: str, batch: str, now_ms: int, request_id: str) -> str:
    """The certificate-issue ``BE_JOB_REQUEST``, byte for byte as Sunbird builds it.

    See docs/flows/activity-aggregate-updater.md#93-certificate-issue-request.

    Ids are JSON-escaped (identical bytes for ordinary ids).
    """

    def q(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    return (
        f'{{"eid": "BE_JOB_REQUEST","ets": {now_ms},"mid": {q(f"LP.{now_ms}.{request_id}")},'
        '"actor": {"id": "Course Certificate Generator","type": "System"},'
        '"context": {"pdata": {"ver": "1.0","id": "org.sunbird.platform"}},'
        f'"object": {{"id": {q(f"{batch}_{course}")},"type": "CourseCertificateGeneration"}},'
        f'"edata": {{"userIds": [{q(user)}],"action": "issue-certificate","iteration": 1, '
        f'"trigger": "auto-issue","batchId": {q(batch)},"reIssue": false,"courseId": {q(course)}}}}}'
    )
