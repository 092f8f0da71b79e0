"""The report jobs' test world (B10), written by us, as report-model values.

Cassandra rows (enrolments, attempts, consents, course batches) are dataclasses here; the user
caches, the content search answer and the content hierarchies are read from
``tests/data/reports/world.json``. Every id, name and value is the project's own; each batch
and learner plays the part of one in the upstream B10 cases (named next to it), so the same
rules give the same kind of outcome. The rules: docs/flows/progress-exhaust.md,
docs/flows/userinfo-exhaust.md and docs/flows/response-exhaust.md.

Timestamps are UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from lernflow.reports.model import Attempt, Batch, Consent, Enrolment, ReportContext
from lernflow.reports.progress import assessment_content_ids, leaf_nodes_count
from tests.paths import DATA

FX = DATA / "reports"
WORLD: dict[str, Any] = json.loads((FX / "world.json").read_text())
COURSE = "lf-course-7001"  # "Pond Life Basics", channel lf-org-heron, userConsent Yes
CHANNEL = "lf-org-heron"  # requested_channel of the B10 requests
CUSTODIAN = "lf-org-root"  # system_settings custodianOrgId
REQUEST_ID = "9F2C61D0A7B34E58B1C4D2E6F8A01B37"
TEXT_DATE = "2021-03-03 07:00:00:000+0000"  # the old text column, parsed as a date
OTHER_COURSE = "lf-course-7012"  # what bt-102's first learners are enrolled in
NO_HIERARCHY_COURSE = "lf-course-7003"  # bt-103: no content_hierarchy row
HEADER_ONLY_COURSE = "lf-course-7004"  # bt-104: its only learner has no cache entry


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


# sunbird_courses.user_enrolments
ENROLMENTS: list[Enrolment] = [
    # both date columns: the timestamp (04/03) wins over the text (02/03)
    _enrolment(
        "lrn-201", COURSE, "bt-101", "2021-03-02 08:10:00:000+0000", _ts("2021-03-04 09:00:00")
    ),
    # only the timestamp: 20:15 UTC is 01:45 the next day in IST -> 06/03/2021
    _enrolment("lrn-202", COURSE, "bt-101", None, _ts("2021-03-05 20:15:00")),
    _enrolment("lrn-203", COURSE, "bt-101"),
    _enrolment("lrn-204", COURSE, "bt-101"),
    _enrolment("lrn-205", OTHER_COURSE, "bt-102"),
    _enrolment("lrn-206", OTHER_COURSE, "bt-102"),
    _enrolment("lrn-207", OTHER_COURSE, "bt-102"),
    _enrolment("lrn-208", NO_HIERARCHY_COURSE, "bt-103"),
    _enrolment("lrn-209", NO_HIERARCHY_COURSE, "bt-103"),
    _enrolment("lrn-210", NO_HIERARCHY_COURSE, "bt-103"),
    _enrolment("lrn-211", "lf-course-7002", "bt-102"),
    _enrolment("lrn-214", HEADER_ONLY_COURSE, "bt-104"),
    *(
        _enrolment(
            user, COURSE, "bt-106", "2021-03-02 08:10:00:000+0000", _ts("2021-03-04 09:00:00")
        )
        for user in ("lrn-215", "lrn-216", "lrn-217")
    ),
]

# Question values as the question UDT holds them: backslashes as written, so raw strings.
A_OMEGA = r'{"text":"\\\\omega t\n"}'
Q1_PARAMS = [{"1": A_OMEGA}, {"2": r'{"text":"yes\n"}'}, {"answer": '{"correct":["1"]}'}]
Q2_TEXT = r'{"text":"1\n\\\\sqrt{2}\\\\sqrt{2}\n"}'
LHS = (
    r'[{"1":"{\"text\":\"\\\\\\\\sum x_i\\n\"}"},'
    r'{"2":"{\"text\":\"\\\\\\\\omega t\\n\"}"},'
    r'{"3":"{\"text\":\"e^{i\\\\\\\\pi}\\n\"}"}]'
)
RHS_RES = (
    r'[{"1":"{\"text\":\"Ripple\\n\"}"},{"2":"{\"text\":\"Phase\\n\"}"},'
    r'{"3":"{\"text\":\"Sum rule\\n\"}"}]'
)
RHS_PARAMS = (
    r'[{"1":"{\"text\":\"Ripple\\n\"}"},{"2":"{\"text\":\"Sum rule\\n\"}"},'
    r'{"3":"{\"text\":\"Phase\\n\"}"}]'
)
ASSESSED_AT = _ts("2022-02-08T17:05:00.250")
QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "lf-q-9101",
        "assess_ts": ASSESSED_AT,
        "max_score": 1.0,
        "score": 1.0,
        "type": "mcq",
        "title": "Wave phase",
        "resvalues": [{"1": A_OMEGA}],
        "params": Q1_PARAMS,
        "description": "Pond quiz",
        "duration": Decimal("3.0"),
    },
    {
        "id": "lf-q-9102",
        "assess_ts": ASSESSED_AT,
        "max_score": 1.0,
        "score": 1.0,
        "type": "mcq",
        "title": "Root of two",
        "resvalues": [{"1": Q2_TEXT}],
        "params": [{"1": Q2_TEXT}, {"2": r'{"text":"3\n"}'}, {"answer": '{"correct":["1"]}'}],
        "description": "Pond quiz",
        "duration": Decimal("2.0"),
    },
    {
        "id": "lf-q-9103",
        "assess_ts": ASSESSED_AT,
        "max_score": 1.0,
        "score": 0.25,
        "type": "mtf",
        "title": "Match the pond",
        "resvalues": [{"lhs": LHS}, {"rhs": RHS_RES}],
        "params": [
            {"lhs": LHS},
            {"rhs": RHS_PARAMS},
            {"answer": '{"lhs":["1","2","3"],"rhs":["2","3","1"]}'},
        ],
        "description": "Matching",
        "duration": Decimal("4.5"),
    },
    {
        "id": "lf-q-9104",
        "assess_ts": ASSESSED_AT,
        "max_score": 10.0,
        "score": 10.0,
        "type": "mcq",
        "title": "Count the frogs",
        "resvalues": [{"1": r'{"text":"6\n"}'}],
        "params": [
            {"1": r'{"text":"6\n"}'},
            {"2": r'{"text":"5\n"}'},
            {"3": r'{"text":"9\n"}'},
            {"4": r'{"text":"12\n"}'},
            {"answer": '{"correct":["1"]}'},
        ],
        "description": "Pond quiz",
        "duration": Decimal("14.0"),
    },
]
# 18:45 UTC is 00:15 the next day in IST
ATTEMPTED_ON = datetime(2022, 2, 8, 18, 45, tzinfo=UTC)
QUIZ = "lf-quiz-8001"  # twice in the content search: "Frog Quiz", "Pond Life Basics"
QUIZ_2 = "lf-quiz-8002"  # "Lily Quiz"


def _attempt(
    course: str, batch_id: str, user: str, content: str, attempt_id: str, total: str
) -> Attempt:
    score = float(total)
    return Attempt(course, batch_id, user, content, attempt_id, total, score, score, None, [])


# sunbird_courses.assessment_aggregator
ATTEMPTS: list[Attempt] = [
    Attempt(COURSE, "bt-101", "lrn-201", QUIZ, "att-x1", "19", 19.0, 19.0, ATTEMPTED_ON, QUESTIONS),
    _attempt(COURSE, "bt-101", "lrn-202", QUIZ, "att-1", "8"),
    _attempt(COURSE, "bt-101", "lrn-203", QUIZ_2, "att-1", "8"),
    _attempt("lf-course-7006", "bt-101", "lrn-208", QUIZ_2, "att-1", "8"),
    _attempt("lf-course-7006", "bt-101", "lrn-210", "lf-quiz-8003", "att-1", "12"),
    _attempt(HEADER_ONLY_COURSE, "bt-104", "lrn-214", "lf-quiz-8003", "att-1", "12"),
]

# 19:10 UTC is 00:40 the next day in IST -> 03/05/2021
CONSENT_DATE = _ts("2021-05-02T19:10:00.000")
# sunbird.user_consent
CONSENTS: list[Consent] = [
    Consent("lrn-201", CHANNEL, COURSE, "active", CONSENT_DATE),
    Consent("lrn-202", CHANNEL, COURSE, "active", None),
    Consent("lrn-203", CHANNEL, COURSE, "active", CONSENT_DATE),
    Consent("lrn-204", CHANNEL, COURSE, "active", None),
    Consent("lrn-205", "lf-consumer-1", "lf-object-1", "active", None),
    Consent("lrn-206", "lf-consumer-1", "lf-object-1", "active", None),
    Consent("lrn-207", "lf-consumer-1", "lf-object-1", "active", None),
    Consent("lrn-208", "lf-org-marsh", NO_HIERARCHY_COURSE, "active", _ts("2021-08-01T10:00:00")),
    Consent("lrn-209", "lf-org-marsh", NO_HIERARCHY_COURSE, "active", None),
    Consent("lrn-214", "lf-consumer-1", "lf-object-1", "active", None),
    Consent("lrn-215", CHANNEL, COURSE, "active", CONSENT_DATE),
    Consent("lrn-216", CHANNEL, COURSE, "active", None),
    Consent("lrn-217", CHANNEL, COURSE, "REVOKED", CONSENT_DATE),
]

# sunbird_courses.course_batch: batch id -> (course id, name)
COURSE_BATCHES = {
    "bt-101": (COURSE, "Dawn Cohort"),
    "bt-102": ("lf-course-7002", "Dusk Cohort"),
    "bt-103": (NO_HIERARCHY_COURSE, "Dusk Cohort"),
    "bt-104": (HEADER_ONLY_COURSE, "Dusk Cohort"),
    "bt-105": ("lf-course-7005", "Dusk Cohort"),  # its course is Retired
    "bt-106": (COURSE, "Dusk Cohort"),
    "bt-114": (HEADER_ONLY_COURSE, "Dusk Cohort"),
}


def search_results() -> list[dict[str, Any]]:
    """The content search answer (the same answer for every search call)."""
    document = WORLD["content_search"]
    return [
        item
        for key, items in document["result"].items()
        if key.lower() != "count"
        for item in items
    ]


def batch(
    batch_id: str, requested_org_id: str = CHANNEL, custodian_org_id: str = CUSTODIAN
) -> Batch:
    """The batch as B4.3 resolves it from course_batch and the content search."""
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
    """identifier -> names in the content search answer, in answer order."""
    names: dict[str, list[str | None]] = {}
    for item in search_results():
        names.setdefault(item["identifier"], []).append(item.get("name"))
    return names


def user_cache(job: str) -> dict[str, dict[str, str]]:
    """The user cache a job's tests start from (``progress``, ``userinfo``, ``response``)."""
    cache: dict[str, dict[str, str]] = WORLD["user_cache"][job]
    return {user: dict(fields) for user, fields in cache.items()}


def hierarchies() -> dict[str, dict[str, Any]]:
    """content_hierarchy rows: collection id -> hierarchy document."""
    found: dict[str, dict[str, Any]] = WORLD["content_hierarchy"]
    return found


# --- the world is consistent ------------------------------------------------------------------


def test_every_enrolment_batch_is_a_course_batch() -> None:
    assert {e.batchid for e in ENROLMENTS} <= set(COURSE_BATCHES)
    assert len({(e.userid, e.courseid, e.batchid) for e in ENROLMENTS}) == len(ENROLMENTS)


def test_every_batch_course_is_in_the_search_answer() -> None:
    names = search_names()
    assert {course for course, _ in COURSE_BATCHES.values()} <= set(names)
    assert names[QUIZ] == ["Frog Quiz", "Pond Life Basics"]


def test_attempt_time_in_milliseconds() -> None:
    assert int(ATTEMPTED_ON.timestamp() * 1000) == 1644345900000


def test_b10_hierarchy_has_no_leaf_count_and_no_assessments() -> None:
    """Why every B10 progress row reads Progress 100 and Total Score "" (B10.1 notes)."""
    found = hierarchies()
    assert set(found) == {COURSE, QUIZ, HEADER_ONLY_COURSE}
    for document in found.values():
        assert leaf_nodes_count(document) == 0
        assert assessment_content_ids(document, ReportContext()) == set()
    assert NO_HIERARCHY_COURSE not in found
