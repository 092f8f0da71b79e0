"""The rows assessment-aggregator reads and writes, as named values (no driver types).

See docs/flows/assessment-aggregator.md#22-cassandra-keyspace-sunbird_courses. Field names are
the column (or UDT field) names; timestamps are epoch milliseconds. The store binds them to CQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

ACTIVITY_TYPE: Final = "Course"
"""``user_activity_agg.activity_type`` of every row this job writes."""


@dataclass(frozen=True)
class QuestionUdt:
    """A value of the ``sunbird_courses.question`` UDT, field names as in the UDT.

    See docs/flows/assessment-aggregator.md#22-cassandra-keyspace-sunbird_courses.

    ``assess_ts`` is in epoch ms. ``duration`` is ``BigDecimal.valueOf(double)``, so ``14``
    becomes ``Decimal('14.0')``.
    """

    id: str
    assess_ts: int
    max_score: float
    score: float
    type: str | None
    title: str | None
    resvalues: tuple[dict[str, str], ...]
    params: tuple[dict[str, str], ...]
    description: str | None
    duration: Decimal


@dataclass(frozen=True)
class StoredAttempt:
    """``last_attempted_on, created_on`` of an existing attempt row (epoch ms; may be null)."""

    last_attempted_on: int | None
    created_on: int | None


@dataclass(frozen=True)
class AssessmentAggregatorRow:
    """The ``INSERT INTO assessment_aggregator`` (an upsert of the whole row).

    See docs/flows/assessment-aggregator.md#22-cassandra-keyspace-sunbird_courses.

    Field names are the column names. Timestamps are epoch milliseconds.
    """

    user_id: str
    course_id: str
    batch_id: str
    content_id: str
    attempt_id: str
    created_on: int
    updated_on: int
    last_attempted_on: int
    total_score: float
    total_max_score: float
    grand_total: str
    question: tuple[QuestionUdt, ...]

    def columns(self) -> dict[str, object]:
        """Column name → value, with ``question`` as a list of :class:`QuestionUdt`."""
        return {
            "user_id": self.user_id,
            "course_id": self.course_id,
            "batch_id": self.batch_id,
            "content_id": self.content_id,
            "attempt_id": self.attempt_id,
            "created_on": self.created_on,
            "updated_on": self.updated_on,
            "last_attempted_on": self.last_attempted_on,
            "total_score": self.total_score,
            "total_max_score": self.total_max_score,
            "grand_total": self.grand_total,
            "question": list(self.question),
        }


@dataclass(frozen=True)
class StoredScore:
    """One row of the score step's read of ``assessment_aggregator``.

    See docs/flows/assessment-aggregator.md#10-best-score-aggregation.

    The timestamp is in epoch ms. Nulls are allowed, as in rows written by other writers: a
    null score reads as 0.0 (the driver's ``getDouble``).
    """

    content_id: str
    attempt_id: str
    last_attempted_on: int | None
    total_max_score: float | None
    total_score: float | None


def stored_score_of(row: AssessmentAggregatorRow) -> StoredScore:
    """The :class:`StoredScore` that reading back ``row`` gives."""
    return StoredScore(
        row.content_id, row.attempt_id, row.last_attempted_on, row.total_max_score, row.total_score
    )


@dataclass(frozen=True)
class CurrentActivityAgg:
    """``aggregates`` and ``agg_details`` as stored, read only to heal a ``REPLAYED`` event."""

    aggregates: Mapping[str, float]
    agg_details: Sequence[str]


@dataclass(frozen=True)
class UserActivityAggUpdate:
    """The ``UPDATE user_activity_agg`` of the score step.

    See docs/flows/assessment-aggregator.md#22-cassandra-keyspace-sunbird_courses.

    ``aggregates`` and ``agg_last_updated`` are merged into the stored maps
    (``col = col + ?``), and ``agg_details`` replaces the stored list. Field names are the
    column names, and ``agg_last_updated`` values are epoch ms.
    """

    activity_type: str
    activity_id: str
    user_id: str
    context_id: str
    aggregates: dict[str, float]
    agg_last_updated: dict[str, int]
    agg_details: tuple[str, ...]
