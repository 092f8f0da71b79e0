"""progress-exhaust rows: Sunbird's B10.1 cases and the B5 rules (progress, scores, dates)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from lernflow.reports.csvout import to_csv
from lernflow.reports.model import Attempt, BatchFailed, Enrolment, ReportContext
from lernflow.reports.progress import (
    COLUMNS_ORDER,
    progress_rows,
)
from tests.conformance.conftest import SUNBIRD_FIXTURES
from tests.conformance.test_reports_fixture_rows import (
    ATTEMPTS,
    CHANNEL,
    COURSE,
    ENROLMENTS,
    batch,
    expected_csv,
    hierarchies,
    user_cache,
)

CTX = ReportContext()
CASES = json.loads((SUNBIRD_FIXTURES / "reports" / "test_cases_progress_exhaust.json").read_text())


def _case(name: str) -> dict[str, Any]:
    case: dict[str, Any] = next(c for c in CASES["cases"] if c["name"] == name)
    return case


def _batch_001() -> tuple[list[str], list[dict[str, Any]], list[str]]:
    return progress_rows(
        batch("batch-001"),
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
    expected = expected_csv("generate the report with all the correct data", "progress")
    assert _lines(to_csv(header, rows)) == (expected[0], sorted(expected[1:]))
    assert dropped == []


def test_all_correct_data_asserted_rows() -> None:
    """B10.1 case 1, the values Sunbird's test asserts."""
    asserted = _case("generate the report with all the correct data")["asserted_rows"]
    header, rows, _ = _batch_001()
    assert header == list(COLUMNS_ORDER)
    assert len(rows) == asserted["count"]
    for column in ("User UUID", "State", "District"):
        assert Counter(r[column] for r in rows) == Counter(asserted[column])
    for key, value in asserted.items():
        if not key.endswith(" contains"):
            continue
        column = key.removesuffix(" contains")
        values = [r[column] for r in rows]
        if value is None:  # "Completion Date contains null": never set
            assert set(values) == {""}
        else:
            assert value in [str(v) for v in values]


def test_latest_value_from_date_columns() -> None:
    """B10.1 "latest value from date columns": enrolled_date (timestamp) wins over enrolleddate."""
    asserted = _case("generate the report with the latest value from date columns")["asserted"]
    _, rows, _ = _batch_001()
    by_user = {r["User UUID"]: r for r in rows}
    assert len(rows) == asserted["count"]
    for user in ("user-001", "user-002", "user-003"):
        assert by_user[user]["Enrolment Date"] == asserted[f"{user} Enrolment Date"]


def test_missing_hierarchy_fails_the_batch() -> None:
    """B10.1 "duplicate requests": batch-003's course has no content_hierarchy row, so the batch
    (and the request) fails with Sunbird's message."""
    assert "do_1131975645014835201326" not in hierarchies()
    with pytest.raises(BatchFailed) as failure:
        progress_rows(
            batch("batch-003"), ENROLMENTS, user_cache("progress"), None, set(), ATTEMPTS, CTX
        )
    assert str(failure.value) == "next on empty iterator"


def test_batch_004_is_header_only_and_over_the_size_limit() -> None:
    """B10.1 limit cases: batch-004's only learner (user-014) has no cache entry, so its file is
    the header alone; every file exceeds the test's 100-byte channel limit."""
    limit = CASES["_common"]["limits_from_test_application_conf"][
        "exhaust.file.size.limit.per.channel"
    ]
    course = "do_112835334818643968148"
    header, rows, dropped = progress_rows(
        batch("batch-004"),
        ENROLMENTS,
        user_cache("progress"),
        hierarchies()[course],
        set(),
        ATTEMPTS,
        CTX,
    )
    assert rows == []
    assert dropped == ["user-014"]
    assert to_csv(header, rows) == (",".join(COLUMNS_ORDER) + "\n").encode()
    assert len(to_csv(header, rows)) > limit
    assert len(to_csv(*_batch_001()[:2])) > limit


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
    return replace(batch("batch-001"), **(fields | changes))


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


# --- other columns ----------------------------------------------------------------------------


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
    resolved = batch("batch-001")
    assert resolved.requested_org_id == resolved.collection_org_id == CHANNEL
