"""Plain inputs of the course exhaust reports (B3, B4.3; docs/flows/progress-exhaust.md).

Each dataclass mirrors one Cassandra row, Redis hash or resolved batch as Sunbird's Spark job
sees it, so the report functions stay pure (no drivers imported here):

* collections that are null in Cassandra arrive **empty** (the Spark Cassandra connector, and the
  Python driver's collection codecs, do not distinguish them; B3);
* naive ``datetime`` values are UTC instants (what ``cassandra-driver`` returns for ``timestamp``);
  aware ones are used as given.

``BatchFailed`` is what a report raises where Sunbird's ``processBatch`` throws: the batch result
is ``FAILED`` with ``str(exc)`` as its message (B4.4 step 6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lernflow.kernel.errors import LernflowError

UserCache = Mapping[str, str]
"""The Redis hash of ``user:<id>`` (DB 12), fields as stored; the user id is the key suffix."""


class BatchFailed(LernflowError):
    """The batch fails; ``str(exc)`` is the status message Sunbird would record."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Enrolment:
    """A ``user_enrolments`` row (null collections -> empty, as the Spark connector reads them)."""

    batchid: str
    userid: str
    courseid: str
    active: bool | None
    enrolleddate: str | None
    enrolled_date: datetime | None
    completedon: datetime | None
    contentstatus: dict[str, int] = field(default_factory=dict)
    certificates: list[dict[str, str]] = field(default_factory=list)
    issued_certificates: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Batch:
    """A resolved ``CollectionBatch`` (B4.3).

    ``custodian_org_id`` (``system_settings`` ``custodianOrgId``) is only read by userinfo
    (B7.1 step 3); it defaults to ``""``, which never equals a requested org id.
    """

    batch_id: str
    collection_id: str
    batch_name: str
    collection_name: str
    requested_org_id: str
    collection_org_id: str
    user_consent: str = "No"
    custodian_org_id: str = ""


@dataclass(frozen=True)
class Attempt:
    """An ``assessment_aggregator`` row.

    ``question`` holds the ``question`` UDT values as dicts with the UDT field names (``id``,
    ``assess_ts``, ``max_score``, ``score``, ``type``, ``title``, ``resvalues``, ``params``,
    ``description``, ``duration``); ``resvalues``/``params`` are lists of ``{str: str}`` maps in
    Cassandra's (key-sorted) order, ``duration`` a ``Decimal`` (CQL ``decimal``).
    """

    course_id: str
    batch_id: str
    user_id: str
    content_id: str
    attempt_id: str
    grand_total: str | None
    total_score: float | None
    total_max_score: float | None
    last_attempted_on: datetime | None
    question: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Consent:
    """A ``sunbird.user_consent`` row."""

    user_id: str
    consumer_id: str
    object_id: str
    status: str | None
    last_updated_on: datetime | None


@dataclass(frozen=True)
class ReportContext:
    """Job settings the row logic depends on.

    ``zone`` is the Spark session time zone used for Enrolment/Completion/Consent dates and the
    response report's Attempted On (B9.15; our docs do not name the production value, the
    file-name date is always IST). IANA names and ``±HH:MM`` offsets are accepted.
    The three tuples are ``assessment.metrics.supported.contenttype``,
    ``...primaryCategories`` and ``...objecttype`` split on ``,`` (B5.3 step 1);
    ``best_score`` is ``assessment.metrics.bestscore.report``.
    """

    zone: str = "Asia/Kolkata"
    supported_content_types: tuple[str, ...] = ("SelfAssess",)
    supported_primary_categories: tuple[str, ...] = ("Practice Question Set",)
    best_score: bool = True
    supported_object_types: tuple[str, ...] = ("QuestionSet",)
