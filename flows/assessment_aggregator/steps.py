"""Several messages of one learner in one batch: planned step by step in memory. Pure.

See docs/flows/assessment-aggregator.md#one-batch. Step k holds the k-th message of every
(user, course), the rounds the shell used to run one after another with a read and a write
each; here every step plans on the state the earlier steps leave (the attempt rows they wrote,
the aggregates they stored), as if their writes had been made and read back; the batch writes
each step's attempt rows after the earlier steps' certificate requests, and each
``user_activity_agg`` row once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from lernflow.flows.assessment_aggregator.decisions import AssessDecision
from lernflow.flows.assessment_aggregator.events import AttemptKey
from lernflow.flows.assessment_aggregator.rows import (
    AssessmentAggregatorRow,
    CurrentActivityAgg,
    StoredAttempt,
    StoredScore,
    UserActivityAggUpdate,
    stored_score_of,
)

if TYPE_CHECKING:
    from lernflow.flows.shell import Item

T = TypeVar("T")
ScoreKey = tuple[str, str, str]
"""``(user_id, course_id, batch_id)``: one ``user_activity_agg`` course row and its attempts."""


def steps(
    values: Sequence[tuple[Item[T], T]], entity: Callable[[T], str]
) -> list[list[tuple[Item[T], T]]]:
    """Step k holds the k-th message of every entity, input order kept."""
    out: list[list[tuple[Item[T], T]]] = []
    seen: dict[str, int] = {}
    for pair in values:
        key = entity(pair[1])
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(pair)
    return out


def attempt_key(row: AssessmentAggregatorRow) -> AttemptKey:
    """The primary key of an attempt row."""
    return AttemptKey(row.user_id, row.course_id, row.batch_id, row.content_id, row.attempt_id)


def score_key_of(key: AttemptKey) -> ScoreKey:
    """Whose attempts an attempt row belongs to."""
    return (key.user_id, key.course_id, key.batch_id)


def merge_updates(
    earlier: UserActivityAggUpdate | None, later: UserActivityAggUpdate
) -> UserActivityAggUpdate:
    """Two updates of one row as one: the maps merged (later values win, as ``col = col + ?``
    twice), ``agg_details`` the later one's (it replaces the stored list)."""
    if earlier is None:
        return later
    return UserActivityAggUpdate(
        activity_type=later.activity_type,
        activity_id=later.activity_id,
        user_id=later.user_id,
        context_id=later.context_id,
        aggregates={**earlier.aggregates, **later.aggregates},
        agg_last_updated={**earlier.agg_last_updated, **later.agg_last_updated},
        agg_details=later.agg_details,
    )


@dataclass
class BatchState:
    """What the batch read, moved on by each step's writes as if they had been read back.

    ``stored`` is every attempt row's ``last_attempted_on, created_on`` as read before the
    batch; ``written`` the rows the batch writes (the latest per key, in step order);
    ``step_rows`` the rows written by each step; ``by_score_key`` the same rows by whose they
    are, with their step, for the score views.
    """

    stored: dict[AttemptKey, StoredAttempt | None]
    before: Mapping[AttemptKey, StoredAttempt | None]
    written: dict[AttemptKey, AssessmentAggregatorRow] = field(default_factory=dict)
    step_rows: list[list[AssessmentAggregatorRow]] = field(default_factory=list)
    by_score_key: dict[ScoreKey, list[tuple[int, StoredScore]]] = field(default_factory=dict)
    stored_aggs: dict[ScoreKey, CurrentActivityAgg | None] = field(default_factory=dict)
    updates: dict[ScoreKey, UserActivityAggUpdate] = field(default_factory=dict)

    def write_rows(self, decisions: Iterable[AssessDecision]) -> None:
        """A step's attempt rows: later steps read them as stored."""
        rows = [d.row for d in decisions if d.row is not None]
        for row in rows:
            key = attempt_key(row)
            self.stored[key] = StoredAttempt(row.last_attempted_on, row.created_on)
            self.written.pop(key, None)
            self.written[key] = row
            entry = (len(self.step_rows), stored_score_of(row))
            self.by_score_key.setdefault(score_key_of(key), []).append(entry)
        self.step_rows.append(rows)

    def base_scores(self, key: ScoreKey, read_after: Sequence[StoredScore]) -> list[StoredScore]:
        """The rows before the batch, from a read after its first step's writes: the rows the
        batch added left out (a row overwritten in the first step is overlaid from that step on;
        the later steps' rows are not written yet)."""
        return [
            s
            for s in read_after
            if self.before.get(AttemptKey(*key, s.content_id, s.attempt_id)) is not None
            or AttemptKey(*key, s.content_id, s.attempt_id) not in self.written
        ]

    def view(self, key: ScoreKey, base: Sequence[StoredScore], step: int) -> list[StoredScore]:
        """The attempts of ``key`` as read right after ``step`` wrote (a repeated attempt keeps
        its last occurrence in :func:`~.scoring.aggregate_scores`)."""
        written = self.by_score_key.get(key, [])
        return [*base, *(s for n, s in written if n <= step)]

    def current(self, key: ScoreKey) -> CurrentActivityAgg | None:
        """The ``user_activity_agg`` row as stored before the batch, with the batch's updates."""
        stored = self.stored_aggs.get(key)
        update = self.updates.get(key)
        if update is None:
            return stored
        base = dict(stored.aggregates) if stored is not None else {}
        return CurrentActivityAgg({**base, **update.aggregates}, list(update.agg_details))

    def update(self, key: ScoreKey, update: UserActivityAggUpdate) -> None:
        """A step's aggregates: merged into the row's single write."""
        self.updates[key] = merge_updates(self.updates.pop(key, None), update)
