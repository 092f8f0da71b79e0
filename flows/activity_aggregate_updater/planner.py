"""The pure planner of one round of activity-aggregate-updater (no I/O, no clients).

The processor reads through the store, hands what it read to these functions and applies what
they return; :mod:`rules` decides each enrolment (docs/flows/activity-aggregate-updater.md).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lernflow.flows.activity_aggregate_updater import rules

if TYPE_CHECKING:
    from lernflow.flows.shell import Item

Request = rules.EnrolmentRequest
Key = tuple[str, str, str]


@dataclass(frozen=True)
class Work:
    """A request that counts: its new completions (with record counts) or, replayed, none."""

    item: Item[Request]
    request: Request
    new_counts: dict[str, int]
    replayed: tuple[str, ...]

    @property
    def applied(self) -> rules.AppliedOffset:
        """The record's place in the applied-offset ledger."""
        rec = self.item.record
        return rules.AppliedOffset(f"{rec.topic}:{rec.partition}", rec.offset)


@dataclass(frozen=True)
class Selection:
    """The round's requests to apply, and how many were dropped as duplicates."""

    work: list[Work]
    deduplicated: int


@dataclass(frozen=True)
class Reads:
    """What planning the round needs from the stores."""

    consumption: dict[Key, dict[str, rules.StoredContent]]
    enrolments: dict[Key, rules.EnrolmentRow | None]
    relation: rules.RelationView
    statuses: dict[str, str | None]


@dataclass(frozen=True)
class Planned:
    """A request with its enrolment's plan."""

    work: Work
    plan: rules.EnrolmentPlan


@dataclass(frozen=True)
class Parked:
    """A request for a live course without leaf nodes: parked with ``reason``, nothing written."""

    work: Work
    reason: str


@dataclass(frozen=True)
class RoundPlan:
    """The round's plans, the requests to park, and how many plans are of Retired courses."""

    planned: list[Planned]
    parked: list[Parked]
    retired: int

    @property
    def audit_events(self) -> list[str]:
        """The content ``start``/``complete`` AUDIT events, in order."""
        return [a for p in self.planned for a in p.plan.audit_events]

    @property
    def writes(self) -> list[rules.EnrolmentWrite]:
        """One logged batch per enrolment (its records of the round merged into one)."""
        return rules.merge_writes(
            [rules.enrolment_write(p.plan, p.work.new_counts, p.work.applied)
             for p in self.planned]
        )  # fmt: skip

    @property
    def checksums(self) -> list[str]:
        """The dedup keys to store once everything else is done."""
        return [c for p in self.planned for c in p.plan.checksums]


def checksums(requests: Sequence[tuple[object, Request]]) -> list[str]:
    """The dedup key of every completion of the round."""
    return [rules.checksum(r.course_id, r.batch_id, r.user_id, c)
            for _i, r in requests for c in r.completed]  # fmt: skip


def select(
    requests: Sequence[tuple[Item[Request], Request]],
    ledgers: dict[Key, rules.Ledger],
    seen: set[str],
) -> Selection:
    """Replays of counted records (nothing new), fresh completions; drop what ``seen`` holds."""
    work: list[Work] = []
    deduplicated = 0
    for item, req in requests:
        source = f"{item.record.topic}:{item.record.partition}"
        if item.record.offset <= ledgers[req.key].offsets.get(source, -1):
            work.append(Work(item, req, {}, req.completed))  # already counted: a replay
        elif new := rules.new_counts(req, seen):
            work.append(Work(item, req, new, ()))
        else:
            deduplicated += 1
    return Selection(work, deduplicated)


def ancestor_keys(
    work: Sequence[Work],
    consumption: dict[Key, dict[str, rules.StoredContent]],
    relation: rules.RelationView,
) -> dict[str, set[str]]:
    """Per course, the ancestors key of every content the round's enrolments merge that no
    earlier step of the round asked for."""
    out: dict[str, set[str]] = {}
    for w in work:
        course = w.request.course_id
        keys = out.setdefault(course, set())
        keys |= relation.unasked(course, (*w.new_counts, *w.replayed, *consumption[w.request.key]))
    return out


def relation_keys(ancestors: dict[str, set[str]]) -> set[str]:
    """The course keys of every course and the ancestors keys of :func:`ancestor_keys`."""
    return {k for course, keys in ancestors.items() for k in (*rules.course_keys(course), *keys)}


def courses_without_leaf_nodes(
    work: Sequence[Work], relation: Mapping[str, frozenset[str]]
) -> list[str]:
    """The courses whose collection status decides between Retired and parked."""
    courses = {w.request.course_id for w in work}
    return sorted(c for c in courses if not relation.get(rules.leaf_key(c, c)))


def plan_round(
    work: Sequence[Work], reads: Reads, now_ms: int, *, module_aggs: bool, filter_processed: bool
) -> RoundPlan:
    """Plan each enrolment with :func:`rules.plan_enrolment`."""
    planned: list[Planned] = []
    parked: list[Parked] = []
    for w in work:
        key, row = w.request.key, reads.enrolments.get(w.request.key)
        plan = rules.plan_enrolment(
            key,
            new_completions=w.new_counts,
            replayed=w.replayed,
            stored=reads.consumption[key],
            relation=reads.relation,
            enrolment_status=row.status if row else None,
            enrolment_exists=row is not None or not filter_processed,
            collection_status=reads.statuses.get(w.request.course_id),
            now_ms=now_ms,
            module_aggs=module_aggs,
            filter_processed=filter_processed,
        )
        if plan.failure is not None:
            parked.append(Parked(w, plan.failure))
        else:
            planned.append(Planned(w, plan))
    return RoundPlan(planned, parked, sum(1 for p in planned if p.plan.retired))


def leftover_markers(
    plan: RoundPlan, work: Sequence[Work], ledgers: dict[Key, rules.Ledger]
) -> dict[Key, int]:
    """Completions whose certificate request an interrupted run may not have sent: the replay
    of the very record the ledger row names as completing (and an older version's marker rows).
    """
    new = {p.work.request.key for p in plan.planned if p.plan.completion is not None}
    out: dict[Key, int] = {}
    for w in work:
        ledger = ledgers[w.request.key]
        mark = ledger.completion
        if w.request.key in new:
            continue
        if ledger.pending_since_ms is not None:
            out[w.request.key] = ledger.pending_since_ms
        elif mark is not None and mark.record == w.applied:
            out[w.request.key] = mark.completed_on_ms
    return out


def completions(
    plan: RoundPlan, leftover: dict[Key, int], on_topic: set[str]
) -> tuple[list[rules.Completion], list[Key]]:
    """The completions to send, and the leftover markers whose request was already sent.

    A marker's request is rebuilt with the same deterministic ``mid``; it is re-sent only if
    that ``mid`` is not on the certificate topic yet (the crash may have come after the send).
    """
    out = [c for p in plan.planned if (c := p.plan.completion) is not None]
    already_sent: list[Key] = []
    for key, ets in leftover.items():
        if rules.certificate_mid(key, ets) in on_topic:
            already_sent.append(key)
        else:
            out.append(rules.rebuilt_completion(key, ets))
    return out, already_sent


# -- several records of one enrolment in one batch (docs/flows/activity-aggregate-updater.md#71)
def steps(
    requests: Sequence[tuple[Item[Request], Request]],
) -> list[list[tuple[Item[Request], Request]]]:
    """Step k holds the k-th request of every enrolment, input order kept."""
    out: list[list[tuple[Item[Request], Request]]] = []
    seen: dict[Key, int] = {}
    for pair in requests:
        n = seen.get(pair[1].key, 0)
        seen[pair[1].key] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(pair)
    return out


@dataclass
class RoundState:
    """The round's enrolments as read once from the stores, then moved on by each step's plans
    as if the step's writes had been made and read back."""

    ledgers: dict[Key, rules.Ledger]
    seen: set[str]
    consumption: dict[Key, dict[str, rules.StoredContent]] = field(default_factory=dict)
    enrolments: dict[Key, rules.EnrolmentRow | None] = field(default_factory=dict)
    view: rules.RelationView = field(default_factory=lambda: rules.RelationView({}))
    statuses: dict[str, str | None] = field(default_factory=dict)

    def reads(self) -> Reads:
        """The state as the planner's reads."""
        return Reads(self.consumption, self.enrolments, self.view, self.statuses)

    def advance(self, plan: RoundPlan) -> None:
        """Apply a step's plan: counters, enrolment rows, applied offsets, dedup keys."""
        for p in plan.planned:
            key, counts = p.work.request.key, p.work.new_counts
            stored = self.consumption[key] = dict(self.consumption[key])
            for m in p.plan.merged:
                if m.content_id in counts:  # the counters are written, the status is not
                    old = stored.get(m.content_id)
                    status = old.status if old is not None else rules.NULL_STATUS
                    stored[m.content_id] = rules.StoredContent(
                        status, m.view_count, m.completed_count
                    )
            e = p.plan.enrolment
            if e is not None and key in self.enrolments:  # read: the flow filters on it
                row = self.enrolments[key]
                done = e.completed_on_ms if e.completed_on_ms is not None else (
                    row.completedon_ms if row is not None else None
                )  # fmt: skip
                self.enrolments[key] = rules.EnrolmentRow(e.status, e.progress, done)
            if counts:
                a, ledger = p.work.applied, self.ledgers[key]
                offsets = {**ledger.offsets, a.source: a.offset}
                self.ledgers[key] = dataclasses.replace(ledger, offsets=offsets)
            self.seen.update(p.plan.checksums)


def with_unit_aggregates(
    plans: Sequence[RoundPlan], state: RoundState, now_ms: int
) -> list[RoundPlan]:
    """The steps' plans (made without unit aggregates), each enrolment's last plan of the
    round given its unit aggregates, computed once on the state the steps leave.

    A step's aggregate values are overwritten by a later step's in the merged write, and a
    later step's units include an earlier one's (an enrolment's rows are only added), so the
    write is the one planning them at every step gives
    (docs/flows/activity-aggregate-updater.md#71-one-write-per-enrolment-and-batch).
    """
    last = {p.work.request.key: (i, j) for i, plan in enumerate(plans)
            for j, p in enumerate(plan.planned)}  # fmt: skip
    out = [dataclasses.replace(plan, planned=list(plan.planned)) for plan in plans]
    for key, (i, j) in last.items():
        p = out[i].planned[j]
        plan = rules.with_unit_aggregates(p.plan, state.consumption[key], state.view, now_ms)
        out[i].planned[j] = Planned(p.work, plan)
    return out


def combine(plans: Sequence[RoundPlan]) -> RoundPlan:
    """The steps' plans as one (their writes merge per enrolment)."""
    return RoundPlan(
        [p for plan in plans for p in plan.planned],
        [p for plan in plans for p in plan.parked],
        sum(plan.retired for plan in plans),
    )


class RelationMemory:
    """The relation-cache sets a worker's rounds share for up to ``seconds`` (0: each round
    reads its own, as Sunbird reads them for every event), so a replay does not read every
    ancestors key of every course again each round
    (docs/flows/activity-aggregate-updater.md#75-relation-memory-in-a-replay)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._view = rules.RelationView({})
        self._since: float | None = None

    def view(self, now: float) -> rules.RelationView:
        """The sets for a round starting at ``now`` (monotonic seconds)."""
        if self._since is None or now - self._since >= self._seconds:
            self._view, self._since = rules.RelationView({}), now
        else:
            self._view.forget_missing_courses()
        return self._view


class AggregateMemory:
    """The ``completedCount`` this worker last wrote for each aggregate of its most recently
    written enrolments (least recently written forgotten beyond ``capacity``).

    An aggregate whose value equals the remembered one is left out of the next write: the row
    holds it already (docs/flows/activity-aggregate-updater.md#73-unchanged-aggregates). Only
    what a write that succeeded carried is remembered; a restart starts empty and rewrites.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._last: OrderedDict[Key, dict[str, float]] = OrderedDict()

    def changed(self, writes: Sequence[rules.EnrolmentWrite]) -> list[rules.EnrolmentWrite]:
        """``writes`` without the aggregates this worker knows to be stored already."""
        if not self._capacity:
            return list(writes)
        out = []
        for w in writes:
            last = self._last.get(w.key)
            if last is None:
                out.append(w)
                continue
            keep = tuple(a for a in w.aggregates if last.get(a.activity_id) != a.completed_count)
            out.append(
                w if len(keep) == len(w.aggregates) else dataclasses.replace(w, aggregates=keep)
            )
        return out

    def remember(self, writes: Sequence[rules.EnrolmentWrite]) -> None:
        """Record the aggregates of ``writes`` as stored (call after the write succeeded)."""
        if not self._capacity:
            return
        for w in writes:
            last = self._last.pop(w.key, None) or {}
            last.update((a.activity_id, a.completed_count) for a in w.aggregates)
            self._last[w.key] = last
        while len(self._last) > self._capacity:
            self._last.popitem(last=False)


_Packed = int | rules.StoredContent
_Kept = tuple[dict[str, int], dict[str, _Packed], "int | rules.EnrolmentRow | None"]
"""Ledger offsets, consumption rows, enrolment row (None: not kept, read it)."""


class ConsumptionMemory:
    """Each enrolment's consumption rows as this worker's last write left them, kept between
    rounds so a round reads them only for enrolments it has not seen
    (docs/flows/activity-aggregate-updater.md#74-consumption-memory-in-a-replay).

    A kept state is used only while the enrolment's ledger offsets are what this worker wrote:
    any other lernflow process that counted for the enrolment since has changed them, and the
    rows are read again. A completed content keeps status 2 (the LMS writes the status before
    it sends the event). The enrolment row is kept with them, as the write left it (only this
    flow writes its status and progress once the learner is enrolled). At most ``capacity``
    rows are kept, least recently written forgotten; a row is one packed int under an interned
    content id (no object for the collector to scan).
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._rows = 0
        self._kept: OrderedDict[Key, _Kept] = OrderedDict()

    def recall(
        self, keys: Sequence[Key], ledgers: dict[Key, rules.Ledger]
    ) -> dict[Key, dict[str, rules.StoredContent]]:
        """The kept rows of those ``keys`` whose ledger offsets are as this worker left them."""
        out: dict[Key, dict[str, rules.StoredContent]] = {}
        for key in keys:
            kept = self._kept.get(key)
            if kept is None:
                continue
            if kept[0] == ledgers[key].offsets:
                out[key] = {c: _unpack(v) for c, v in kept[1].items()}
            else:
                self._forget(key)
        return out

    def enrolments(self, keys: Sequence[Key]) -> dict[Key, rules.EnrolmentRow]:
        """The kept enrolment rows of those ``keys`` :meth:`recall` just gave rows of (an
        enrolment row is kept only when it exists: a missing one is read every round)."""
        out: dict[Key, rules.EnrolmentRow] = {}
        for key in keys:
            kept = self._kept.get(key)
            if kept is not None and kept[2] is not None:
                out[key] = _unpack_enrolment(kept[2])
        return out

    def remember(self, state: RoundState, work: Sequence[Work]) -> None:
        """Keep the round's end state of the enrolments of ``work`` (after their writes)."""
        if not self._capacity:
            return
        for key, completed in _completed_by_key(work).items():
            stored = state.consumption.get(key)
            if stored is None:
                continue
            kept = self._kept.pop(key, None)
            if kept is None:  # read this round: keep every row
                rows = {sys.intern(c): _pack(row) for c, row in stored.items()}
                changed = completed & rows.keys()
            else:  # recalled this round (a stale one was forgotten): only the changed rows
                rows = kept[1]
                self._rows -= len(rows)
                changed = completed & stored.keys()
            for content_id in changed:
                rows[sys.intern(content_id)] = _pack(stored[content_id], rules.COMPLETED)
            row = state.enrolments.get(key)
            enrolment = None if row is None else _pack_enrolment(row)
            self._kept[key] = (dict(state.ledgers[key].offsets), rows, enrolment)
            self._rows += len(rows)
        while self._rows > self._capacity and self._kept:
            self._forget(next(iter(self._kept)))

    def _forget(self, key: Key) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            self._rows -= len(kept[1])


_STATUS, _COUNT = 1 << 8, 1 << 31  # packed: status + _STATUS * (view + _COUNT * completed)


def _pack(row: rules.StoredContent, at_least: int | None = None) -> _Packed:
    """One row as one int (a row out of the packed ranges stays as it is)."""
    status = row.status if at_least is None else max(row.status, at_least)
    if 0 <= status < _STATUS and 0 <= row.view_count < _COUNT and row.completed_count >= 0:
        return status + _STATUS * (row.view_count + _COUNT * row.completed_count)
    return dataclasses.replace(row, status=status)


@functools.lru_cache(maxsize=4096)  # rows repeat (mostly status 2, small counts)
def _unpack(value: int | rules.StoredContent) -> rules.StoredContent:
    if isinstance(value, rules.StoredContent):
        return value
    counts, status = divmod(value, _STATUS)
    completed, view = divmod(counts, _COUNT)
    return rules.StoredContent(status, view, completed)


def _pack_enrolment(row: rules.EnrolmentRow) -> int | rules.EnrolmentRow:
    """An enrolment row as one int (each column + 1 in its bits, 0 for null) if it fits."""
    columns = (row.status, row.progress, row.completedon_ms)
    limits = ((1 << 24) - 1, (1 << 24) - 1, 1 << 62)
    if not all(v is None or 0 <= v < top for v, top in zip(columns, limits, strict=True)):
        return row
    packed = 0
    for value, shift in zip(columns, (0, 24, 48), strict=True):
        packed |= (0 if value is None else value + 1) << shift
    return packed


def _unpack_enrolment(value: int | rules.EnrolmentRow) -> rules.EnrolmentRow:
    if isinstance(value, rules.EnrolmentRow):
        return value
    status, progress, done = (((value >> s) & m) - 1 for s, m in _ENROLMENT_FIELDS)
    return rules.EnrolmentRow(
        None if status < 0 else status,
        None if progress < 0 else progress,
        None if done < 0 else done,
    )


_ENROLMENT_FIELDS = ((0, (1 << 24) - 1), (24, (1 << 24) - 1), (48, -1))


def _completed_by_key(work: Sequence[Work]) -> dict[Key, set[str]]:
    """The contents each enrolment's requests of the round completed (all they counted)."""
    out: dict[Key, set[str]] = {}
    for w in work:
        out.setdefault(w.request.key, set()).update(w.request.completed)
    return out
