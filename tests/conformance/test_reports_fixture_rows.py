"""Inputs of Sunbird's report tests (spec B10) as report-model values, checked against the fixtures.

The Cassandra rows are written out here as dataclasses, each naming the ``report_data.cql``
INSERT it mirrors; the tests below re-read the CQL file and make sure the transcription holds
(ids, dates, scores, question literals). Hierarchy documents, the Redis seeds and the mocked
content search are read from the fixture files directly.

CQL timestamps without a zone (``'2019-11-16 05:41:50'``) are taken as UTC, the embedded
Cassandra's zone in the upstream harness.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from lernflow.reports.model import Attempt, Batch, Consent, Enrolment, ReportContext
from lernflow.reports.progress import assessment_content_ids, leaf_nodes_count
from tests.conformance.conftest import SUNBIRD_FIXTURES

FX = SUNBIRD_FIXTURES / "reports"
COURSE = "do_1130928636168192001667"  # "24 aug course", channel b00bc..., userConsent Yes
CHANNEL = "b00bc992ef25f1a9a8d63291e20efc8d"  # requested_channel of the B10 requests
CUSTODIAN = "0130107621805015045"  # system_settings custodianOrgId
REQUEST_ID = "37564CF8F134EE7532F125651B51D17F"
TEXT_DATE = "2019-11-15 05:41:50:382+0000"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _enrolment(
    userid: str,
    courseid: str,
    batchid: str,
    enrolleddate: str | None = TEXT_DATE,
    enrolled_date: datetime | None = None,
) -> Enrolment:
    return Enrolment(
        batchid=batchid,
        userid=userid,
        courseid=courseid,
        active=True,
        enrolleddate=enrolleddate,
        enrolled_date=enrolled_date,
        completedon=None,
        contentstatus={},
        certificates=[],
        issued_certificates=[],
    )


# sunbird_courses.user_enrolments (report_data.cql lines 21-37; user-011 is inserted twice with
# the same primary key, so it is one row)
ENROLMENTS: list[Enrolment] = [
    _enrolment(
        "user-001",
        COURSE,
        "batch-001",
        "2019-11-13 05:41:50:382+0000",
        _ts("2019-11-16 05:41:50"),
    ),
    _enrolment("user-002", COURSE, "batch-001", None, _ts("2019-11-15 05:41:50")),
    _enrolment("user-003", COURSE, "batch-001"),
    _enrolment("user-004", COURSE, "batch-001"),
    _enrolment("user-005", "do_1130292569979781121111", "batch-002"),
    _enrolment("user-006", "do_1130292569979781121111", "batch-002"),
    _enrolment("user-007", "do_1130292569979781121111", "batch-002"),
    _enrolment("user-008", "do_1131975645014835201326", "batch-003"),
    _enrolment("user-009", "do_1131975645014835201326", "batch-003"),
    _enrolment("user-010", "do_1131975645014835201326", "batch-003"),
    _enrolment("user-011", "do_1130293726460805121168", "batch-002"),
    _enrolment("user-014", "do_112835334818643968148", "batch-004"),
    *(
        _enrolment(
            user, COURSE, "batch-006", "2019-11-13 05:41:50:382+0000", _ts("2019-11-16 05:41:50")
        )
        for user in ("user-015", "user-016", "user-017")
    ),
]

# The question UDT values of user-001's attempt (report_data.cql line 40): CQL string literals
# keep backslashes as written, so these are raw strings.
A_PI = r'{"text":"A=\\\\pi r^2\n"}'
Q1_PARAMS = [{"1": A_PI}, {"2": r'{"text":"no\n"}'}, {"answer": '{"correct":["1"]}'}]
Q2_TEXT = r'{"text":"1\nA=\\\\pi r^2A=\\\\pi r^2\n"}'
LHS = (
    r'[{"1":"{\"text\":\"A=\\\\\\\\pi r^2\\n\"}"},'
    r'{"2":"{\"text\":\"\\\\\\\\frac{4}{3}\\\\\\\\pi r^3\\n\"}"},'
    r'{"3":"{\"text\":\"a^n\\\\\\\\times a^m=a^{n+m}\\n\"}"}]'
)
RHS_RES = (
    r'[{"1":"{\"text\":\"Volume of sphere\\n\"}"},{"2":"{\"text\":\"Area of Circle\\n\"}"},'
    r'{"3":"{\"text\":\"Product Rule\\n\"}"}]'
)
RHS_PARAMS = (
    r'[{"1":"{\"text\":\"Volume of sphere\\n\"}"},{"2":"{\"text\":\"Product Rule\\n\"}"},'
    r'{"3":"{\"text\":\"Area of Circle\\n\"}"}]'
)
QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "do_213019475454476288155",
        "assess_ts": _ts("2020-06-18T18:15:56.490"),
        "max_score": 1.0,
        "score": 1.0,
        "type": "mcq",
        "title": "testQuestiontextandformula",
        "resvalues": [{"1": A_PI}],
        "params": Q1_PARAMS,
        "description": "SelfAssess for course",
        "duration": Decimal("1.0"),
    },
    {
        "id": "do_213019970118279168165",
        "assess_ts": _ts("2020-06-18T18:15:56.490"),
        "max_score": 1.0,
        "score": 1.0,
        "type": "mcq",
        "title": "test with formula",
        "resvalues": [{"1": Q2_TEXT}],
        "params": [{"1": Q2_TEXT}, {"2": r'{"text":"2\n"}'}, {"answer": '{"correct":["1"]}'}],
        "description": "SelfAssess for course",
        "duration": Decimal("1.0"),
    },
    {
        "id": "do_213019972814823424168",
        "assess_ts": _ts("2020-06-18T18:15:56.490"),
        "max_score": 1.0,
        "score": 0.33,
        "type": "mtf",
        "title": "test with formula",
        "resvalues": [{"lhs": LHS}, {"rhs": RHS_RES}],
        "params": [
            {"lhs": LHS},
            {"rhs": RHS_PARAMS},
            {"answer": '{"lhs":["1","2","3"],"rhs":["3","1","2"]}'},
        ],
        "description": "testQuestiontextandformula",
        "duration": Decimal("2.0"),
    },
    {
        "id": "do_2130256513760624641171",
        "assess_ts": _ts("2020-06-18T18:15:56.490"),
        "max_score": 10.0,
        "score": 10.0,
        "type": "mcq",
        "title": "test with formula",
        "resvalues": [{"1": r'{"text":"4\n"}'}],
        "params": [
            {"1": r'{"text":"4\n"}'},
            {"2": r'{"text":"3\n"}'},
            {"3": r'{"text":"8\n"}'},
            {"4": r'{"text":"10\n"}'},
            {"answer": '{"correct":["1"]}'},
        ],
        "description": "SelfAssess for course",
        "duration": Decimal("12.0"),
    },
]
# 1626327000000 ms
ATTEMPTED_ON = datetime(2021, 7, 15, 5, 30, tzinfo=UTC)

# sunbird_courses.assessment_aggregator (report_data.cql lines 40-46; user-003's row is inserted
# twice with the same primary key, so it is one row)
ATTEMPTS: list[Attempt] = [
    Attempt(
        COURSE,
        "batch-001",
        "user-001",
        "do_1128870328040161281204",
        "attempat-001",
        "20",
        20.0,
        20.0,
        ATTEMPTED_ON,
        QUESTIONS,
    ),
    Attempt(
        COURSE,
        "batch-001",
        "user-002",
        "do_1128870328040161281204",
        "attempt-001",
        "10",
        10.0,
        10.0,
        None,
        [],
    ),
    Attempt(
        COURSE,
        "batch-001",
        "user-003",
        "do_112876961957437440179",
        "attempt-001",
        "10",
        10.0,
        10.0,
        None,
        [],
    ),
    Attempt(
        "do_11306040245271756813015",
        "batch-001",
        "user-008",
        "do_112876961957437440179",
        "attempt-001",
        "10",
        10.0,
        10.0,
        None,
        [],
    ),
    Attempt(
        "do_11306040245271756813015",
        "batch-001",
        "user-010",
        "do_11307593493010022418",
        "attempt-001",
        "15",
        15.0,
        15.0,
        None,
        [],
    ),
    Attempt(
        "do_112835334818643968148",
        "batch-004",
        "user-014",
        "do_11307593493010022418",
        "attempt-001",
        "15",
        15.0,
        15.0,
        None,
        [],
    ),
]

CONSENT_DATE = _ts("2019-09-19T18:15:56.490")
# sunbird.user_consent (report_data.cql lines 52-64; the program consents after line 68 concern
# other objects and consumers and are left out)
CONSENTS: list[Consent] = [
    Consent("user-001", CHANNEL, COURSE, "active", CONSENT_DATE),
    Consent("user-002", CHANNEL, COURSE, "active", None),
    Consent("user-003", CHANNEL, COURSE, "active", CONSENT_DATE),
    Consent("user-004", CHANNEL, COURSE, "active", None),
    Consent("user-005", "consumer_001", "object_01", "active", None),
    Consent("user-006", "consumer_001", "object_01", "active", None),
    Consent("user-007", "consumer_001", "object_01", "active", None),
    Consent(
        "user-008",
        "01309282781705830427",
        "do_1131975645014835201326",
        "active",
        _ts("2021-06-14T18:15:56.490"),
    ),
    Consent("user-009", "01309282781705830427", "do_1131975645014835201326", "active", None),
    Consent("user-014", "consumer_001", "object_01", "active", None),
    Consent("user-015", CHANNEL, COURSE, "active", CONSENT_DATE),
    Consent("user-016", CHANNEL, COURSE, "active", None),
    Consent("user-017", CHANNEL, COURSE, "REVOKED", CONSENT_DATE),
]

# sunbird_courses.course_batch (report_data.cql lines 1-7): batch id -> (course id, name)
COURSE_BATCHES = {
    "batch-001": (COURSE, "Basic Java"),
    "batch-002": ("do_1130293726460805121168", "Basic C++"),
    "batch-003": ("do_1131975645014835201326", "Basic C++"),
    "batch-004": ("do_112835334818643968148", "Basic C++"),
    "batch-005": ("do_11234577983855001618", "Basic C++"),
    "batch-006": (COURSE, "Basic C++"),
    "batch-014": ("do_112835334818643968148", "Basic C++"),
}


def search_results() -> list[dict[str, Any]]:
    """The mocked content search (returned for every search call upstream)."""
    document = json.loads((FX / "content_search_response.json").read_text())
    return [
        item
        for key, items in document["result"].items()
        if key.lower() != "count"
        for item in items
    ]


def batch(
    batch_id: str, requested_org_id: str = CHANNEL, custodian_org_id: str = CUSTODIAN
) -> Batch:
    """The CollectionBatch Sunbird resolves (B4.3) from course_batch and the mocked search."""
    course_id, name = COURSE_BATCHES[batch_id]
    collection = next(item for item in search_results() if item["identifier"] == course_id)
    return Batch(
        batch_id=batch_id,
        collection_id=course_id,
        batch_name=name,
        collection_name=collection["name"],
        requested_org_id=requested_org_id,
        collection_org_id=collection["channel"],
        user_consent=collection.get("userConsent") or "No",
        custodian_org_id=custodian_org_id,
    )


def search_names() -> dict[str, list[str | None]]:
    """identifier -> names of the mocked search response, in response order."""
    names: dict[str, list[str | None]] = {}
    for item in search_results():
        names.setdefault(item["identifier"], []).append(item.get("name"))
    return names


def user_cache(seed: str) -> dict[str, dict[str, str]]:
    """A ``redis_user_cache_seed_<seed>_test_db0.json`` seed: user id (key suffix) -> hash."""
    document = json.loads((FX / f"redis_user_cache_seed_{seed}_test_db0.json").read_text())
    return {key.removeprefix("user:"): fields for key, fields in document.items()}


def hierarchies() -> dict[str, dict[str, Any]]:
    """dev_hierarchy_store.content_hierarchy rows (report_data.cql lines 48-50), parsed."""
    out: dict[str, dict[str, Any]] = {}
    for line in (FX / "report_data.cql").read_text().splitlines():
        if "content_hierarchy" in line:
            match = re.search(r"VALUES \('([^']*)', '(.*)'\);\s*$", line)
            assert match
            out[match.group(1)] = json.loads(match.group(2).replace("''", "'"))
    return out


def expected_csv(case: str, seed: str) -> list[str]:
    """The derived CSV lines of a test_cases_<seed>_exhaust.json case (header first)."""
    document = json.loads((FX / f"test_cases_{seed}_exhaust.json").read_text())
    lines = next(c for c in document["cases"] if c["name"] == case)["derived_csv_rows_any_order"]
    assert isinstance(lines, list)
    return lines


# --- the transcription above matches the fixture files ---------------------------------------

_CQL = (FX / "report_data.cql").read_text()


def _cql_values(table: str) -> list[list[str]]:
    rows = []
    for line in _CQL.splitlines():
        if f"INSERT INTO {table} " in line:
            rows.append([s.replace("''", "'") for s in re.findall(r"'((?:[^']|'')*)'", line)])
    return rows


def test_enrolments_mirror_the_cql() -> None:
    cql = {(r[0], r[1], r[2]): r[3:] for r in _cql_values("sunbird_courses.user_enrolments")}
    mine = {(e.userid, e.courseid, e.batchid): e for e in ENROLMENTS}
    assert set(cql) == set(mine)
    for key, dates in cql.items():
        enrolment = mine[key]
        texts = [d for d in dates if ":382+" in d]
        stamps = [d for d in dates if ":382+" not in d]
        assert enrolment.enrolleddate == (texts[0] if texts else None)
        assert enrolment.enrolled_date == (_ts(stamps[0]) if stamps else None)


def test_attempts_mirror_the_cql() -> None:
    cql = {
        (r[0], r[1], r[2], r[3], r[4]): r[5]
        for r in _cql_values("sunbird_courses.assessment_aggregator")
    }
    mine = {(a.course_id, a.batch_id, a.user_id, a.content_id, a.attempt_id): a for a in ATTEMPTS}
    assert set(cql) == set(mine)
    for key, grand_total in cql.items():
        attempt = mine[key]
        assert attempt.grand_total == grand_total
        assert attempt.total_score == attempt.total_max_score == float(grand_total)
    literals = _cql_values("sunbird_courses.assessment_aggregator")[0]
    for question in QUESTIONS:
        assert question["id"] in literals
        for entry in [*question["params"], *question["resvalues"]]:
            for key, value in entry.items():
                assert key in literals
                assert value in literals
    assert "1626327000000" in _CQL
    assert int(ATTEMPTED_ON.timestamp() * 1000) == 1626327000000


def test_consents_mirror_the_cql() -> None:
    # columns: id, user_id, consumer_id, consumer_type, status, object_id[, last_updated_on]
    rows = [r for r in _cql_values("sunbird.user_consent") if r[1].startswith("user-")]
    assert [c.user_id for c in CONSENTS] == [r[1] for r in rows]
    for consent, row in zip(CONSENTS, rows, strict=True):
        assert (consent.consumer_id, consent.status, consent.object_id) == (row[2], row[4], row[5])
        assert consent.last_updated_on == (_ts(row[6][:23]) if len(row) > 6 else None)


def test_course_batches_mirror_the_cql() -> None:
    cql = {r[1]: (r[0], r[7]) for r in _cql_values("sunbird_courses.course_batch")}
    assert cql == COURSE_BATCHES


def test_b10_hierarchy_has_no_leaf_count_and_no_assessments() -> None:
    """Why every B10 progress row reads Progress 100 and Total Score "" (B10.1 notes)."""
    found = hierarchies()
    assert set(found) == {COURSE, "do_1128870328040161281204", "do_112835334818643968148"}
    for document in found.values():
        assert leaf_nodes_count(document) == 0
        assert assessment_content_ids(document, ReportContext()) == set()
