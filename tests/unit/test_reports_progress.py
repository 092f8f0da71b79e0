"""progress-exhaust rows: the B10.1 cases on our own data and the B5 rules (progress, scores,
dates). Rules: docs/flows/progress-exhaust.md."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from lernflow.reports.csvout import to_csv
from lernflow.reports.model import Attempt, BatchFailed, Enrolment, ReportContext
from lernflow.reports.progress import (
    COLUMNS_ORDER,
    assessment_content_ids,
    completion_percentage,
    declared_board,
    enrolment_date,
    grand_total_score,
    leaf_nodes_count,
    progress_rows,
    total_score,
)
from tests.unit.test_reports_fixture_rows import (
    ATTEMPTS,
    CHANNEL,
    COURSE,
    ENROLMENTS,
    HEADER_ONLY_COURSE,
    NO_HIERARCHY_COURSE,
    batch,
    hierarchies,
    user_cache,
)

CTX = ReportContext()
FILE_SIZE_LIMIT_PER_CHANNEL = 100  # bytes, the limit the upstream limit cases run with

# B10.1 "generate the report with all the correct data", derived from the rules for bt-101:
# the course hierarchy has no leafNodesCount, so Progress is 100 for everyone; it has no
# assessment nodes, so Total Score is ""; missing cache fields are "" (written quoted); the
# Enrolment Date is enrolled_date's IST date when set, else the enrolleddate text's date.
PREFIX = "lf-course-7001,Pond Life Basics,BatchId_bt-101,Dawn Cohort"
EXPECTED_CSV = [
    "Collection Id,Collection Name,Batch Id,Batch Name,User UUID,State,District,Org Name,"
    "School Id,School Name,Block Name,Cluster Name,User Type,User Sub Type,Declared Board,"
    "Enrolment Date,Completion Date,Certificate Status,Progress,Total Score",
    f'{PREFIX},lrn-201,Assam,Jorhat,Far Meadow Trust,5521907,"Lakeside, East Wing",BLK-7,'
    'CL-NORTH,teacher,hm,Heron-Board,04/03/2021,"","",100,""',
    f'{PREFIX},lrn-202,Goa,Panaji,"","","","","","","","",06/03/2021,"","",100,""',
    f'{PREFIX},lrn-203,Assam,Jorhat,"","","","",CL-SOUTH,teacher,hm,"",03/03/2021,"","",100,""',
    f'{PREFIX},lrn-204,Kerala,Kochi,"","","","","","","","",03/03/2021,"","",100,""',
]


def _batch_001() -> tuple[list[str], list[dict[str, Any]], list[str]]:
    return progress_rows(
        batch("bt-101"),
        ENROLMENTS,
        user_cache("progress"),
        hierarchies()[COURSE],
        set(),
        ATTEMPTS,
        CTX,
    )


def _lines(data: bytes) -> tuple[str, list[str]]:
    text = data.decode("utf-8")
    assert text.endswith("\n")
    header, *rows = text[:-1].split("\n")
    return header, sorted(rows)


# --- B10.1 ------------------------------------------------------------------------------------


def test_all_correct_data_derived_csv() -> None:
    """B10.1 "generate the report with all the correct data": the derived CSV, byte for byte
    (rows in any order)."""
    header, rows, dropped = _batch_001()
    assert _lines(to_csv(header, rows)) == (EXPECTED_CSV[0], sorted(EXPECTED_CSV[1:]))
    assert dropped == []


def test_all_correct_data_asserted_rows() -> None:
    """B10.1 case 1, the values the upstream test asserts, for our bt-101."""
    header, rows, _ = _batch_001()
    assert header == list(COLUMNS_ORDER)
    assert len(rows) == 4
    assert Counter(r["User UUID"] for r in rows) == Counter(
        ["lrn-201", "lrn-202", "lrn-203", "lrn-204"]
    )
    assert Counter(r["State"] for r in rows) == Counter(["Assam", "Goa", "Assam", "Kerala"])
    assert Counter(r["District"] for r in rows) == Counter(["Jorhat", "Panaji", "Jorhat", "Kochi"])
    contains = {
        "Collection Name": "Pond Life Basics",
        "Batch Id": "BatchId_bt-101",
        "Batch Name": "Dawn Cohort",
        "Enrolment Date": "03/03/2021",
        "Progress": "100",
        "Cluster Name": "CL-NORTH",
        "User Type": "teacher",
        "User Sub Type": "hm",
    }
    for column, value in contains.items():
        assert value in [str(r[column]) for r in rows], column
    assert {r["Completion Date"] for r in rows} == {""}  # never set


def test_latest_value_from_date_columns() -> None:
    """B10.1 "latest value from date columns": enrolled_date (timestamp) wins over enrolleddate."""
    _, rows, _ = _batch_001()
    by_user = {r["User UUID"]: r for r in rows}
    assert len(rows) == 4
    assert by_user["lrn-201"]["Enrolment Date"] == "04/03/2021"  # not the text's 02/03/2021
    assert by_user["lrn-202"]["Enrolment Date"] == "06/03/2021"  # IST date of 05/03 20:15 UTC
    assert by_user["lrn-203"]["Enrolment Date"] == "03/03/2021"  # text only


def test_missing_hierarchy_fails_the_batch() -> None:
    """B10.1 "duplicate requests": bt-103's course has no content_hierarchy row, so the batch
    (and the request) fails with Sunbird's message."""
    assert NO_HIERARCHY_COURSE not in hierarchies()
    with pytest.raises(BatchFailed) as failure:
        progress_rows(
            batch("bt-103"), ENROLMENTS, user_cache("progress"), None, set(), ATTEMPTS, CTX
        )
    assert str(failure.value) == "next on empty iterator"
    assert len(_batch_001()[1]) == 4  # the same call with a hierarchy gives rows


def test_batch_004_is_header_only_and_over_the_size_limit() -> None:
    """B10.1 limit cases: bt-104's only learner (lrn-214) has no cache entry, so its file is
    the header alone; every file exceeds the 100-byte channel limit."""
    header, rows, dropped = progress_rows(
        batch("bt-104"),
        ENROLMENTS,
        user_cache("progress"),
        hierarchies()[HEADER_ONLY_COURSE],
        set(),
        ATTEMPTS,
        CTX,
    )
    assert rows == []
    assert dropped == ["lrn-214"]
    assert to_csv(header, rows) == (",".join(COLUMNS_ORDER) + "\n").encode()
    assert len(to_csv(header, rows)) > FILE_SIZE_LIMIT_PER_CHANNEL
    assert len(to_csv(*_batch_001()[:2])) > FILE_SIZE_LIMIT_PER_CHANNEL


# --- learners (B4.4 steps 1-3) --------------------------------------------------------------


def _learner(user: str, **changes: Any) -> Enrolment:
    base = Enrolment("b1", user, "c1", True, "2020-01-02", None, None, {}, [], [])
    return replace(base, **changes)


def _batch(**changes: Any) -> Any:
    fields = {
        "batch_id": "b1",
        "collection_id": "c1",
        "requested_org_id": "org",
        "collection_org_id": "org",
    }
    return replace(batch("bt-101"), **(fields | changes))


def _rows(enrolments: list[Enrolment], users: dict[str, dict[str, str]], **kw: Any) -> Any:
    hierarchy = kw.pop("hierarchy", {"identifier": "c1"})
    attempts = kw.pop("attempts", [])
    optional = kw.pop("optional", set())
    ctx = kw.pop("ctx", CTX)
    return progress_rows(_batch(**kw), enrolments, users, hierarchy, optional, attempts, ctx)


def test_uncached_learners_are_dropped_and_reported() -> None:
    enrolments = [_learner("u1"), _learner("u2"), _learner("u3"), _learner("u2", courseid="c1")]
    _, rows, dropped = _rows(enrolments, {"u1": {}})
    assert [r["User UUID"] for r in rows] == ["u1"]
    assert dropped == ["u2", "u3"]


def test_enrolment_filters() -> None:
    enrolments = [
        _learner("inactive", active=False),
        _learner("null-active", active=None),
        _learner("no-dates", enrolleddate=None),
        _learner("other-batch", batchid="b2"),
        _learner("other-course", courseid="c2"),
        _learner("empty-text-date", enrolleddate=""),
        _learner("only-timestamp", enrolleddate=None, enrolled_date=datetime(2020, 5, 1)),
    ]
    users: dict[str, dict[str, str]] = {e.userid: {} for e in enrolments}
    _, rows, dropped = _rows(enrolments, users)
    assert {r["User UUID"]: r["Enrolment Date"] for r in rows} == {
        "empty-text-date": "",
        "only-timestamp": "01/05/2020",
    }
    assert dropped == []


def test_filter_users_of_another_tenant() -> None:
    """B4.4 step 3: a foreign org only sees its own users (no rootorgid -> dropped, not listed)."""
    users = {"mine": {"rootorgid": "state"}, "theirs": {"rootorgid": "org"}, "none": {}}
    enrolments = [_learner(u) for u in users]
    _, rows, dropped = _rows(enrolments, users, requested_org_id="state")
    assert [r["User UUID"] for r in rows] == ["mine"]
    assert dropped == []
    _, rows, _ = _rows(enrolments, users)
    assert len(rows) == 3


def test_cache_fields_and_null_filling() -> None:
    users = {"u1": {"state": "S", "district": "D", "orgname": "O", "schoolname": "\\[X\\]"}}
    header, rows, _ = _rows([_learner("u1")], users)
    row = rows[0]
    assert row["Batch Id"] == "BatchId_b1"
    assert row["School Name"] == "\\[X\\]"  # bracket escaping of the cache is kept (B9.14)
    assert row["Block Name"] == row["Declared Board"] == row["Total Score"] == ""
    assert row["Progress"] == 100
    assert header == list(COLUMNS_ORDER)


# --- Progress (B5.2) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completed", "leaf", "expected"),
    [
        (1, 8, 13),  # 12.5 rounds half up (Python's round would give 12)
        (5, 8, 63),
        (1, 200, 1),
        (199, 200, 100),
        (1, 3, 33),
        (2, 3, 67),
        (0, 3, 0),
        (3, 3, 100),
        (4, 3, 100),
        (0, 0, 100),
        (0, -1, 100),
    ],
)
def test_completion_percentage(completed: int, leaf: int, expected: int) -> None:
    status = {f"c{i}": 2 for i in range(completed)} | {"started": 1}
    assert completion_percentage(status, leaf, set()) == expected


def test_optional_nodes_do_not_count() -> None:
    status = {"a": 2, "b": 2, "opt": 2, "c": 1}
    assert completion_percentage(status, 4, {"opt"}) == 50
    assert completion_percentage(status, 4, set()) == 75


def test_progress_column() -> None:
    done = datetime(2021, 3, 4, 20, 0, tzinfo=UTC)
    enrolments = [
        _learner("half", contentstatus={"a": 2, "b": 1}),
        _learner("done", contentstatus={}, completedon=done),
        _learner("optional", contentstatus={"a": 2, "opt": 2}),
    ]
    users: dict[str, dict[str, str]] = {e.userid: {} for e in enrolments}
    _, rows, _ = _rows(
        enrolments, users, hierarchy={"identifier": "c1", "leafNodesCount": 2}, optional={"opt"}
    )
    by_user = {r["User UUID"]: r for r in rows}
    assert by_user["half"]["Progress"] == 50
    assert by_user["optional"]["Progress"] == 50
    assert by_user["done"]["Progress"] == 100  # completedon overrides
    assert by_user["done"]["Completion Date"] == "05/03/2021"  # 01:30 IST on the 5th
    assert by_user["half"]["Completion Date"] == ""


@pytest.mark.parametrize("bad", ["5", 5.0, True, 2**31, [5]])
def test_leaf_nodes_count_must_be_an_int(bad: Any) -> None:
    with pytest.raises(BatchFailed):
        leaf_nodes_count({"leafNodesCount": bad})
    assert leaf_nodes_count({"leafNodesCount": None}) == 0
    assert leaf_nodes_count({}) == 0


# --- scores (B5.3) ----------------------------------------------------------------------------


def _attempt(
    user: str, content: str, score: float | None, maximum: float | None, **kw: Any
) -> Attempt:
    grand_total = kw.pop("grand_total", None)
    if grand_total is None and score is not None and maximum is not None:
        grand_total = f"{score:g}/{maximum:g}"
    return Attempt(
        course_id=kw.pop("course_id", "c1"),
        batch_id=kw.pop("batch_id", "b1"),
        user_id=user,
        content_id=content,
        attempt_id=kw.pop("attempt_id", "a1"),
        grand_total=grand_total,
        total_score=score,
        total_max_score=maximum,
        last_attempted_on=kw.pop("last_attempted_on", None),
        question=[],
    )


ASSESSED = {
    "identifier": "c1",
    "children": [
        {"identifier": "unit", "children": [{"identifier": "q2", "contentType": "SelfAssess"}]},
        {
            "identifier": "q1",
            "objectType": "QuestionSet",
            "primaryCategory": "Practice Question Set",
        },
        {"identifier": "exam", "objectType": "QuestionSet", "primaryCategory": "Exam"},
        {"identifier": "res", "contentType": "Resource"},
    ],
}


def test_assessment_content_ids() -> None:
    assert assessment_content_ids(ASSESSED, CTX) == {"q1", "q2"}
    wider = ReportContext(supported_primary_categories=("Practice Question Set", "Exam"))
    assert assessment_content_ids(ASSESSED, wider) == {"q1", "q2", "exam"}
    root = {"identifier": "c1", "contentType": "SelfAssess", "children": None}
    assert assessment_content_ids(root, CTX) == {"c1"}
    with pytest.raises(BatchFailed, match=r"None\.get"):
        assessment_content_ids({"contentType": "SelfAssess"}, CTX)
    with pytest.raises(BatchFailed):
        assessment_content_ids({"identifier": "c1", "contentType": ["SelfAssess"]}, CTX)


def test_score_columns() -> None:
    """Best attempt per content, Total Score over the assessments, one sorted column each."""
    attempts = [
        _attempt("u1", "q2", 3.0, 10.0),
        _attempt("u1", "q2", 7.0, 10.0, attempt_id="a2"),  # best
        _attempt("u1", "q1", 4.0, 10.0),
        _attempt("u1", "res", 10.0, 10.0),  # not an assessment of the course
        _attempt("u1", "q1", 10.0, 10.0, batch_id="b2"),  # another batch
        _attempt("u1", "q1", 10.0, 10.0, course_id="c2"),  # another course
        _attempt("u2", "q1", 11.0, 20.0),
    ]
    enrolments = [_learner("u1"), _learner("u2"), _learner("u3")]
    users: dict[str, dict[str, str]] = {e.userid: {} for e in enrolments}
    header, rows, _ = _rows(enrolments, users, hierarchy=ASSESSED, attempts=attempts)
    assert header == [*COLUMNS_ORDER, "q1 - Score", "q2 - Score"]
    scores = {r["User UUID"]: (r["Total Score"], r["q1 - Score"], r["q2 - Score"]) for r in rows}
    assert scores == {
        "u1": ("55%", "40%", "70%"),
        "u2": ("55%", "55%", ""),
        "u3": ("", "", ""),
    }


def test_latest_attempt_when_best_score_is_off() -> None:
    early = datetime(2021, 1, 1, tzinfo=UTC)
    late = datetime(2021, 1, 2, tzinfo=UTC)
    attempts = [
        _attempt("u1", "q1", 9.0, 10.0, last_attempted_on=early),
        _attempt("u1", "q1", 2.0, 10.0, attempt_id="a2", last_attempted_on=late),
        _attempt("u1", "q1", 10.0, 10.0, attempt_id="a3", last_attempted_on=None),
    ]
    users: dict[str, dict[str, str]] = {"u1": {}}
    for ctx, expected in ((CTX, "100%"), (ReportContext(best_score=False), "20%")):
        _, rows, _ = _rows([_learner("u1")], users, hierarchy=ASSESSED, attempts=attempts, ctx=ctx)
        assert rows[0]["Total Score"] == expected


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([(11.0, 20.0)], "55%"),  # V1 order: ceil((a*100)/b); V2's ceil((a/b)*100) gives 56%
        ([(7.0, 25.0)], "28%"),
        ([(2.1, 5.0)], "42%"),
        ([(1.0, 3.0), (1.0, 3.0)], "34%"),
        ([(0.0, 0.0)], None),
        ([(None, 10.0)], None),
        ([(5.0, None)], None),
        ([(None, 10.0), (5.0, 10.0)], "25%"),
    ],
)
def test_total_score(pairs: list[tuple[float | None, float | None]], expected: str | None) -> None:
    attempts = [_attempt("u", f"q{i}", s, m) for i, (s, m) in enumerate(pairs)]
    assert total_score(attempts) == expected


@pytest.mark.parametrize(
    ("grand_total", "expected"),
    [
        ("11/20", "55%"),
        ("2.1/5", "42%"),
        (" 7 / 25 ", "28%"),
        ("1/3", "34%"),
        ("20", None),  # no "/" (the B10 rows store "20")
        ("1/0", None),  # Spark's division by zero is null
        ("a/5", None),
        ("5/", None),
        ("1/2/3", "50%"),
        ("NaN/5", "0%"),
        ("1e400/5", f"{2**63 - 1}%"),
        (None, None),
    ],
)
def test_grand_total_score(grand_total: str | None, expected: str | None) -> None:
    assert grand_total_score(grand_total) == expected


# --- other columns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("board", "expected"),
    [
        ('["IGOT-Health"]', "IGOT-Health"),
        ("IGOT-Health", "IGOT-Health"),
        ("[]", "[]"),
        ('["a","b"]', "a"),
        ("[null]", None),
        ("[1]", "[1]"),
        ('"CBSE"', '"CBSE"'),
        ('  ["x"] trailing', "x"),
        ("[NaN]", "[NaN]"),
        ("", ""),
        (None, None),
    ],
)
def test_declared_board(board: str | None, expected: str | None) -> None:
    assert declared_board(board) == expected


@pytest.mark.parametrize(
    ("text", "stamp", "zone", "expected"),
    [
        ("2021-03-03 07:00:00:000+0000", None, "Asia/Kolkata", "03/03/2021"),
        ("2019-1-5", None, "UTC", "05/01/2019"),
        ("2019-11", None, "UTC", "01/11/2019"),
        ("13/11/2019", None, "UTC", None),
        ("old", datetime(2019, 11, 15, 20, 0), "Asia/Kolkata", "16/11/2019"),
        ("old", datetime(2019, 11, 15, 20, 0), "UTC", "15/11/2019"),
    ],
)
def test_enrolment_date(text: str, stamp: datetime | None, zone: str, expected: str | None) -> None:
    assert enrolment_date(_learner("u", enrolleddate=text, enrolled_date=stamp), zone) == expected


def test_certificate_status() -> None:
    enrolments = [
        _learner("none"),
        _learner("old", certificates=[{"id": "x"}]),
        _learner("new", issued_certificates=[{"identifier": "y"}]),
    ]
    _, rows, _ = _rows(enrolments, {e.userid: {} for e in enrolments})
    assert {r["User UUID"]: r["Certificate Status"] for r in rows} == {
        "none": "",
        "old": "Issued",
        "new": "Issued",
    }


def test_requested_channel_is_the_collection_channel_in_b10() -> None:
    resolved = batch("bt-101")
    assert resolved.requested_org_id == resolved.collection_org_id == CHANNEL
