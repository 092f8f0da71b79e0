"""userinfo-exhaust rows: Sunbird's B10.2 cases and the B7 consent rules.

The fixtures' user cache holds plaintext emails and names; Sunbird's ``DecryptUtil`` returns
input it cannot decrypt unchanged, so the B10.2 cases use the identity as ``decrypt``. The
decryption hook itself is checked with a dict-lookup fake.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from lernflow.reports.csvout import to_csv
from lernflow.reports.model import BatchFailed, Consent, ReportContext
from lernflow.reports.userinfo import COLUMNS_ORDER, NO_CONSENT_MESSAGE, userinfo_rows
from tests.conformance.conftest import SUNBIRD_FIXTURES
from tests.conformance.test_reports_fixture_rows import (
    CHANNEL,
    CONSENTS,
    COURSE,
    CUSTODIAN,
    ENROLMENTS,
    batch,
    expected_csv,
    user_cache,
)

CTX = ReportContext()
CASES = json.loads((SUNBIRD_FIXTURES / "reports" / "test_cases_userinfo_exhaust.json").read_text())
ALL_USERS = "generate the user info report with all the users for a batch"


def _case(prefix: str) -> dict[str, Any]:
    case: dict[str, Any] = next(c for c in CASES["cases"] if c["name"].startswith(prefix))
    return case


def _identity(value: str) -> str:
    return value


def _rows(
    batch_id: str = "batch-001", **kw: Any
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    return userinfo_rows(
        kw.pop("batch", None) or batch(batch_id),
        kw.pop("enrolments", ENROLMENTS),
        kw.pop("users", user_cache("userinfo")),
        kw.pop("consents", CONSENTS),
        kw.pop("decrypt", _identity),
        kw.pop("ctx", CTX),
    )


def _assert_user_fields(rows: list[dict[str, Any]], user: str, fields: dict[str, str]) -> None:
    row = next(r for r in rows if r["User UUID"] == user)
    assert {k: row[k] for k in fields} == fields


def test_all_users_for_a_batch_derived_csv() -> None:
    """B10.2 "all users for a batch": the derived CSV byte for byte (rows in any order)."""
    header, rows, dropped = _rows()
    expected = expected_csv(ALL_USERS, "userinfo")
    lines = to_csv(header, rows).decode().splitlines()
    assert lines[0] == expected[0]
    assert sorted(lines[1:]) == sorted(expected[1:])
    assert dropped == []


def test_all_users_for_a_batch_asserted_rows() -> None:
    asserted = _case(ALL_USERS)["asserted_rows"]
    header, rows, _ = _rows()
    assert header == list(COLUMNS_ORDER)
    assert len(rows) == asserted["count"]
    for column in ("User UUID", "State", "District"):
        assert Counter(r[column] for r in rows) == Counter(asserted[column])
    _assert_user_fields(rows, "user-001", asserted["user-001"])
    assert "Pre-prod Custodian Organization" in {r["Org Name"] for r in rows}


def test_standalone_mode_gives_the_same_rows() -> None:
    """B10.2 "standalone mode": requestedOrgId "System" resolves to the collection channel."""
    standalone = replace(batch("batch-001"), requested_org_id=batch("batch-001").collection_org_id)
    assert _rows(batch=standalone) == _rows()


def test_consent_revoked_is_excluded() -> None:
    """B10.2 "excluding the user who have not provided consent" (batch-006, user-017 REVOKED)."""
    asserted = _case("not generate the user info report excluding")["asserted_rows"]
    _, rows, dropped = _rows("batch-006")
    assert [r["User UUID"] for r in rows] == asserted["User UUID"]
    _assert_user_fields(rows, "user-015", asserted["user-015"])
    assert dropped == []


def test_collection_without_user_consent_fails() -> None:
    """B10.2 "fail as userConsent is not present" (batch-002's course has no userConsent)."""
    expected = _case("fail as userConsent is not present")["expected_job_request"]["err_message"]
    assert batch("batch-002", requested_org_id="channel-01").user_consent == "No"
    with pytest.raises(BatchFailed) as failure:
        _rows(batch=batch("batch-002", requested_org_id="channel-01"))
    assert str(failure.value) == expected == NO_CONSENT_MESSAGE


@pytest.mark.parametrize("flag", ["yes", "YES", "Yes"])
def test_user_consent_any_case(flag: str) -> None:
    _, rows, _ = _rows(batch=replace(batch("batch-001"), user_consent=flag))
    assert len(rows) == 4


def test_custodian_org_gets_a_header_only_report() -> None:
    """B10.2 "requested_channel as System" (the custodian org id): every row is flagged false,
    so the report is header-only (spec B7.1 step 3; Sunbird's Spark job fails instead — fixed)."""
    custodian = batch("batch-001", requested_org_id=CUSTODIAN)
    header, rows, _dropped = _rows(batch=custodian)
    assert header[:5] == ["Collection Id", "Collection Name", "Batch Id", "Batch Name", "User UUID"]
    assert rows == []


def test_learners_without_consent_or_cache_are_dropped() -> None:
    consents = [c for c in CONSENTS if c.user_id != "user-002"]
    users = {k: v for k, v in user_cache("userinfo").items() if k != "user-004"}
    _, rows, dropped = _rows(consents=consents, users=users)
    assert [r["User UUID"] for r in rows] == ["user-001", "user-003"]
    assert dropped == ["user-004"]


def test_only_this_collection_and_requesting_org_count() -> None:
    date = datetime(2020, 1, 1, tzinfo=UTC)
    consents = [
        Consent("user-001", "someone-else", COURSE, "ACTIVE", date),
        Consent("user-002", CHANNEL, "another-course", "ACTIVE", date),
        Consent("user-003", CHANNEL, COURSE, "Active", date),
        Consent("user-004", CHANNEL, COURSE, None, date),
    ]
    _, rows, _ = _rows(consents=consents)
    assert [(r["User UUID"], r["Consent Provided"]) for r in rows] == [("user-003", "true")]
    assert rows[0]["Consent Provided Date"] == "01/01/2020"


def test_consent_date_in_the_session_zone() -> None:
    late = datetime(2019, 9, 19, 20, 0, tzinfo=UTC)  # 01:30 on the 20th in IST
    consents = [replace(c, last_updated_on=late) for c in CONSENTS]
    for zone, expected in (("Asia/Kolkata", "20/09/2019"), ("UTC", "19/09/2019")):
        _, rows, _ = _rows(consents=consents, ctx=ReportContext(zone=zone))
        assert {r["Consent Provided Date"] for r in rows} == {expected}


def test_foreign_org_sees_only_its_users() -> None:
    """filterUsers: a requesting org other than the collection's sees only its own users."""
    foreign = batch("batch-001", requested_org_id="01250894314817126443")
    consents = [replace(c, consumer_id="01250894314817126443") for c in CONSENTS]
    _, rows, _ = _rows(batch=foreign, consents=consents)
    assert [r["User UUID"] for r in rows] == ["user-001", "user-004"]


def test_pii_goes_through_decrypt() -> None:
    secrets = {"ENC-MAIL": "a@b.c", "ENC-PHONE": "9999999999", "ENC-FIRST ENC-LAST": "Real Name"}
    seen: list[str] = []

    def decrypt(value: str) -> str:
        seen.append(value)
        return secrets.get(value, value)

    users = {
        "user-001": {"firstname": "ENC-FIRST", "lastname": "ENC-LAST", "email": "ENC-MAIL"},
        "user-002": {"phone": "ENC-PHONE", "email": ""},
        "user-003": {"firstname": "Only"},
    }
    _, rows, dropped = _rows(users=users, decrypt=decrypt)
    by_user = {r["User UUID"]: r for r in rows}
    assert (by_user["user-001"]["User Name"], by_user["user-001"]["Email ID"]) == (
        "Real Name",
        "a@b.c",
    )
    assert by_user["user-001"]["Mobile Number"] == ""
    assert by_user["user-002"]["User Name"] == ""
    assert by_user["user-002"]["Mobile Number"] == "9999999999"
    assert by_user["user-003"]["User Name"] == "Only"
    assert "" not in seen
    assert dropped == ["user-004"]
