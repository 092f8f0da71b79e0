"""userinfo-exhaust rows (B7 in docs/flows/userinfo-exhaust.md; UserInfoExhaustJob of RPT-5.4).

``userinfo_rows`` gives one row per consenting learner of a batch:

* learners: B4.4 steps 1-3 (``organize.select_learners``; uncached learners are dropped and
  returned);
* the collection must ask for consent (``userConsent`` ``yes``, any case), else the batch fails
  with Sunbird's message (B7.1 step 2);
* consent: ``user_consent`` rows of this collection (``object_id``) and the requesting org
  (``consumer_id``), one per user; the **inner** join drops learners without one, and only
  ``status`` ``active`` (any case) is kept — REVOKED learners are dropped (B7.1 step 4);
  Consent Provided is ``true``, Consent Provided Date ``last_updated_on`` as ``dd/MM/yyyy`` in
  the session zone or ``""``;
* ``email``, ``phone`` and ``username`` (``firstname`` + ``" "`` + ``lastname``, nulls skipped)
  go through ``decrypt`` (Sunbird's ``DecryptUtil.decryptData``, which returns plaintext
  unchanged; B7.3) — nulls are not passed, they become ``""``.

When the requesting org is the custodian org (B7.1 step 3) every row is flagged
``consentflag = false``, so the report is **header-only**: custodian-org admins never get PII.

Fix over Sunbird: RPT-5.4 marks the rows but joins no consent rows, so its ``select`` of the
configured ``consentprovideddate`` column cannot be resolved and the batch fails with Spark's
``AnalysisException``. We write the header-only report the rule intends (B7.1, B10.2).
Everything else is Sunbird's behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lernflow.reports.model import Batch, BatchFailed, Consent, Enrolment, ReportContext, UserCache
from lernflow.reports.organize import organize, select_learners, timestamp_ddmmyyyy

COLUMN_MAPPING: dict[str, str] = {
    "courseid": "Collection Id",
    "collectionName": "Collection Name",
    "batchid": "Batch Id",
    "batchName": "Batch Name",
    "userid": "User UUID",
    "username": "User Name",
    "usertype": "User Type",
    "usersubtype": "User Sub Type",
    "state": "State",
    "district": "District",
    "block": "Block",
    "cluster": "Cluster",
    "orgname": "Org Name",
    "email": "Email ID",
    "phone": "Mobile Number",
    "consentflag": "Consent Provided",
    "consentprovideddate": "Consent Provided Date",
    "schooludisecode": "School Id",
    "schoolname": "School Name",
}
COLUMNS_ORDER: tuple[str, ...] = (
    "Collection Id",
    "Collection Name",
    "Batch Id",
    "Batch Name",
    "User UUID",
    "User Name",
    "User Type",
    "User Sub Type",
    "State",
    "District",
    "Block",
    "Cluster",
    "School Id",
    "School Name",
    "Org Name",
    "Email ID",
    "Mobile Number",
    "Consent Provided",
    "Consent Provided Date",
)
# The production csvColumns (B2): the DataFrame's columns after the select.
CSV_COLUMNS: tuple[str, ...] = (
    "courseid",
    "collectionName",
    "batchid",
    "batchName",
    "userid",
    "username",
    "state",
    "district",
    "orgname",
    "email",
    "phone",
    "consentflag",
    "consentprovideddate",
    "block",
    "cluster",
    "usertype",
    "usersubtype",
    "schooludisecode",
    "schoolname",
)
_CACHE_FIELDS = (
    "state",
    "district",
    "orgname",
    "block",
    "cluster",
    "usertype",
    "usersubtype",
    "schooludisecode",
    "schoolname",
)
# Columns of the custodian-org DataFrame: the base enrolment columns, the userinfo cache
# columns (minus the duplicate userid), the two batch literals and the consent flag.
_CUSTODIAN_COLUMNS = (
    "userid",
    "batchid",
    "courseid",
    "issued_certificates",
    "username",
    "state",
    "district",
    "rootorgid",
    "orgname",
    "email",
    "phone",
    "block",
    "cluster",
    "usertype",
    "usersubtype",
    "schooludisecode",
    "schoolname",
    "collectionName",
    "batchName",
    "consentflag",
)
NO_CONSENT_MESSAGE = (
    "Invalid request. User info exhaust is not applicable for collections which don't request "
    "for user consent to share data"
)


def user_name(user: UserCache) -> str:
    """``concat_ws(" ", firstname, lastname)``: missing fields are skipped, none gives ``""``."""
    return " ".join(
        part for part in (user.get("firstname"), user.get("lastname")) if part is not None
    )


def consent_by_user(batch: Batch, consents: Iterable[Consent]) -> dict[str, Consent]:
    """This collection's consent rows given to the requesting org, one per user (the first)."""
    chosen: dict[str, Consent] = {}
    for consent in consents:
        if (
            consent.object_id == batch.collection_id
            and consent.consumer_id == batch.requested_org_id
        ):
            chosen.setdefault(consent.user_id, consent)
    return chosen


def _decrypted(value: str | None, decrypt: Callable[[str], str]) -> str | None:
    if value is None or value == "":
        return value
    return decrypt(value)


def userinfo_rows(
    batch: Batch,
    enrolments: Sequence[Enrolment],
    users: Mapping[str, UserCache],
    consents: Sequence[Consent],
    decrypt: Callable[[str], str],
    ctx: ReportContext,
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """(header, rows keyed by header, ids of enrolled learners dropped as uncached).

    ``consents`` may be the whole ``user_consent`` table. Raises ``BatchFailed`` when the
    collection does not request consent, and when the requesting org is the custodian org
    (``batch.custodian_org_id``; see the module docstring). Every value is a ``str``.
    """
    learners, dropped = select_learners(batch, enrolments, users)
    if batch.user_consent.lower() != "yes":
        raise BatchFailed(NO_CONSENT_MESSAGE)
    # custodian-org admins never get PII: every row is flagged false -> a header-only report
    custodian = batch.requested_org_id == batch.custodian_org_id
    given = {} if custodian else consent_by_user(batch, consents)
    internal: list[dict[str, Any]] = []
    for learner in learners:
        enrolment, user = learner
        consent = given.get(enrolment.userid)
        if consent is None or consent.status is None or consent.status.lower() != "active":
            continue
        row: dict[str, Any] = {
            "courseid": enrolment.courseid,
            "collectionName": batch.collection_name,
            "batchid": enrolment.batchid,
            "batchName": batch.batch_name,
            "userid": enrolment.userid,
            "username": _decrypted(user_name(user), decrypt),
            "email": _decrypted(user.get("email"), decrypt),
            "phone": _decrypted(user.get("phone"), decrypt),
            "consentflag": "true",
            "consentprovideddate": (
                timestamp_ddmmyyyy(consent.last_updated_on, ctx.zone)
                if consent.last_updated_on is not None
                else None
            ),
        }
        for name in _CACHE_FIELDS:
            row[name] = user.get(name)
        internal.append(row)
    header, rows = organize(internal, CSV_COLUMNS, COLUMN_MAPPING, COLUMNS_ORDER, CSV_COLUMNS)
    return header, rows, dropped
