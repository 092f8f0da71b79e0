"""userinfo-exhaust rows: the B10.2 cases on our own data and the B7 consent rules
(docs/flows/userinfo-exhaust.md).

The test user cache holds plaintext emails and names; Sunbird's ``DecryptUtil`` returns
input it cannot decrypt unchanged, so the B10.2 cases use the identity as ``decrypt``. The
decryption hook itself is checked with a dict-lookup fake.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from lernflow.reports.csvout import to_csv
from lernflow.reports.model import BatchFailed, Consent, ReportContext
from lernflow.reports.userinfo import COLUMNS_ORDER, NO_CONSENT_MESSAGE, user_name, userinfo_rows
from tests.unit.test_reports_fixture_rows import (
    CHANNEL,
    CONSENTS,
    COURSE,
    CUSTODIAN,
    ENROLMENTS,
    batch,
    user_cache,
)

CTX = ReportContext()

# B10.2 "generate the user info report with all the users for a batch", derived for bt-101:
# all four learners have an active consent for the course from the requesting channel;
# plaintext e-mails pass decryption unchanged; a consent without last_updated_on gives "".
PREFIX = "lf-course-7001,Pond Life Basics,BatchId_bt-101,Dawn Cohort"
EXPECTED_CSV = [
    "Collection Id,Collection Name,Batch Id,Batch Name,User UUID,User Name,User Type,"
    "User Sub Type,State,District,Block,Cluster,School Id,School Name,Org Name,Email ID,"
    "Mobile Number,Consent Provided,Consent Provided Date",
    f"{PREFIX},lrn-201,Odile Brannigan,teacher,hm,Assam,Jorhat,BLK-7,CL-NORTH,5521907,"
    '"Lakeside, East Wing",Far Meadow Trust,"","",true,03/05/2021',
    f'{PREFIX},lrn-202,Tomas,"","",Goa,Panaji,"","","","",Root Custodian Org,'
    'tomas@heron.example,"",true,""',
    f'{PREFIX},lrn-203,Ines,"","",Assam,Jorhat,"","","","",Root Custodian Org,'
    'ines@heron.example,"",true,03/05/2021',
    f'{PREFIX},lrn-204,Bram,"","",Kerala,Kochi,"","","","",Root Custodian Org,'
    'bram@heron.example,"",true,""',
]
FULL_PROFILE = {
    "State": "Assam",
    "District": "Jorhat",
    "Org Name": "Far Meadow Trust",
    "Block": "BLK-7",
    "Cluster": "CL-NORTH",
    "User Type": "teacher",
    "User Sub Type": "hm",
    "School Id": "5521907",
    "School Name": "Lakeside, East Wing",
}


def _identity(value: str) -> str:
    return value


def _rows(batch_id: str = "bt-101", **kw: Any) -> tuple[list[str], list[dict[str, Any]], list[str]]:
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
    lines = to_csv(header, rows).decode().splitlines()
    assert lines[0] == EXPECTED_CSV[0]
    assert sorted(lines[1:]) == sorted(EXPECTED_CSV[1:])
    assert dropped == []


def test_all_users_for_a_batch_asserted_rows() -> None:
    header, rows, _ = _rows()
    assert header == list(COLUMNS_ORDER)
    assert len(rows) == 4
    assert Counter(r["User UUID"] for r in rows) == Counter(
        ["lrn-201", "lrn-202", "lrn-203", "lrn-204"]
    )
    assert Counter(r["State"] for r in rows) == Counter(["Assam", "Goa", "Assam", "Kerala"])
    assert Counter(r["District"] for r in rows) == Counter(["Jorhat", "Panaji", "Jorhat", "Kochi"])
    _assert_user_fields(rows, "lrn-201", FULL_PROFILE)
    assert "Root Custodian Org" in {r["Org Name"] for r in rows}


def test_standalone_mode_gives_the_same_rows() -> None:
    """B10.2 "standalone mode": requestedOrgId "System" resolves to the collection channel."""
    standalone = replace(batch("bt-101"), requested_org_id=batch("bt-101").collection_org_id)
    assert _rows(batch=standalone) == _rows()
    assert len(_rows()[1]) == 4


def test_consent_revoked_is_excluded() -> None:
    """B10.2 "excluding the user who have not provided consent" (bt-106, lrn-217 REVOKED)."""
    _, rows, dropped = _rows("bt-106")
    assert [r["User UUID"] for r in rows] == ["lrn-215", "lrn-216"]
    _assert_user_fields(rows, "lrn-215", FULL_PROFILE)
    assert dropped == []


def test_collection_without_user_consent_fails() -> None:
    """B10.2 "fail as userConsent is not present" (bt-102's course has no userConsent)."""
    expected = (
        "Invalid request. User info exhaust is not applicable for collections which don't "
        "request for user consent to share data"
    )
    assert batch("bt-102", requested_org_id="lf-org-kite").user_consent == "No"
    with pytest.raises(BatchFailed) as failure:
        _rows(batch=batch("bt-102", requested_org_id="lf-org-kite"))
    assert str(failure.value) == expected == NO_CONSENT_MESSAGE


@pytest.mark.parametrize("flag", ["yes", "YES", "Yes"])
def test_user_consent_any_case(flag: str) -> None:
    _, rows, _ = _rows(batch=replace(batch("bt-101"), user_consent=flag))
    assert len(rows) == 4


def test_custodian_org_gets_a_header_only_report() -> None:
    """B10.2 "requested_channel as System" (the custodian org id): every row is flagged false,
    so the report is header-only (B7.1 step 3; Sunbird's Spark job fails instead — fixed)."""
    custodian = batch("bt-101", requested_org_id=CUSTODIAN)
    header, rows, _dropped = _rows(batch=custodian)
    assert header[:5] == ["Collection Id", "Collection Name", "Batch Id", "Batch Name", "User UUID"]
    assert rows == []
    assert len(_rows()[1]) == 4  # the collection's own channel gets the rows


def test_learners_without_consent_or_cache_are_dropped() -> None:
    consents = [c for c in CONSENTS if c.user_id != "lrn-202"]
    users = {k: v for k, v in user_cache("userinfo").items() if k != "lrn-204"}
    _, rows, dropped = _rows(consents=consents, users=users)
    assert [r["User UUID"] for r in rows] == ["lrn-201", "lrn-203"]
    assert dropped == ["lrn-204"]


def test_only_this_collection_and_requesting_org_count() -> None:
    date = datetime(2020, 1, 1, tzinfo=UTC)
    consents = [
        Consent("lrn-201", "someone-else", COURSE, "ACTIVE", date),
        Consent("lrn-202", CHANNEL, "another-course", "ACTIVE", date),
        Consent("lrn-203", CHANNEL, COURSE, "Active", date),
        Consent("lrn-204", CHANNEL, COURSE, None, date),
    ]
    _, rows, _ = _rows(consents=consents)
    assert [(r["User UUID"], r["Consent Provided"]) for r in rows] == [("lrn-203", "true")]
    assert rows[0]["Consent Provided Date"] == "01/01/2020"


def test_consent_date_in_the_session_zone() -> None:
    late = datetime(2019, 9, 19, 20, 0, tzinfo=UTC)  # 01:30 on the 20th in IST
    consents = [replace(c, last_updated_on=late) for c in CONSENTS]
    for zone, expected in (("Asia/Kolkata", "20/09/2019"), ("UTC", "19/09/2019")):
        _, rows, _ = _rows(consents=consents, ctx=ReportContext(zone=zone))
        assert {r["Consent Provided Date"] for r in rows} == {expected}


def test_foreign_org_sees_only_its_users() -> None:
    """filterUsers: a requesting org other than the collection's sees only its own users."""
    foreign = batch("bt-101", requested_org_id="lf-org-far")
    consents = [replace(c, consumer_id="lf-org-far") for c in CONSENTS]
    _, rows, _ = _rows(batch=foreign, consents=consents)
    assert [r["User UUID"] for r in rows] == ["lrn-201", "lrn-204"]


def test_pii_goes_through_decrypt() -> None:
    secrets = {"ENC-MAIL": "a@b.c", "ENC-PHONE": "9999999999", "ENC-FIRST ENC-LAST": "Real Name"}
    seen: list[str] = []

    def decrypt(value: str) -> str:
        seen.append(value)
        return secrets.get(value, value)

    users = {
        "lrn-201": {"firstname": "ENC-FIRST", "lastname": "ENC-LAST", "email": "ENC-MAIL"},
        "lrn-202": {"phone": "ENC-PHONE", "email": ""},
        "lrn-203": {"firstname": "Only"},
    }
    _, rows, dropped = _rows(users=users, decrypt=decrypt)
    by_user = {r["User UUID"]: r for r in rows}
    assert (by_user["lrn-201"]["User Name"], by_user["lrn-201"]["Email ID"]) == (
        "Real Name",
        "a@b.c",
    )
    assert by_user["lrn-201"]["Mobile Number"] == ""
    assert by_user["lrn-202"]["User Name"] == ""
    assert by_user["lrn-202"]["Mobile Number"] == "9999999999"
    assert by_user["lrn-203"]["User Name"] == "Only"
    assert "" not in seen
    assert dropped == ["lrn-204"]


def test_user_name_is_concat_ws() -> None:
    assert user_name({"firstname": "A", "lastname": "B"}) == "A B"
    assert user_name({"lastname": "B"}) == "B"
    assert user_name({"firstname": "A", "lastname": ""}) == "A "
    assert user_name({}) == ""
