"""response-exhaust (V1) rows: Sunbird's B10.3 expectations and the B6 rules."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from lernflow.reports.csvout import to_csv
from lernflow.reports.model import Attempt, ReportContext
from lernflow.reports.response import (
    COLUMNS_ORDER,
    response_rows,
    sanitised_json,
)
from tests.conformance.conftest import SUNBIRD_FIXTURES
from tests.conformance.test_reports_fixture_rows import (
    A_PI,
    ATTEMPTS,
    COURSE,
    ENROLMENTS,
    QUESTIONS,
    batch,
    hierarchies,
    search_names,
    user_cache,
)

CTX = ReportContext()
V1 = json.loads((SUNBIRD_FIXTURES / "reports" / "test_cases_response_exhaust.json").read_text())[
    "v1"
]
CONTENT = "do_1128870328040161281204"


def _rows(**kw: Any) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    return response_rows(
        kw.pop("batch", batch("batch-001")),
        kw.pop("enrolments", ENROLMENTS),
        kw.pop("users", user_cache("response")),
        kw.pop("attempts", ATTEMPTS),
        kw.pop("hierarchy", hierarchies()[COURSE]),
        kw.pop("ctx", CTX),
        **kw,
    )


def test_v1_user_001_expectations() -> None:
    """B10.3 V1: the (commented-out upstream) expectations for user-001, with one search result
    per content id."""
    expected = V1["commented_out_expectations_user-001"]
    header, rows, dropped = _rows(content_names={CONTENT: ["Test"]})
    assert header == list(COLUMNS_ORDER)
    assert dropped == []
    mine = [r for r in rows if r["User UUID"] == "user-001"]
    assert len(mine) == expected["rows"]
    assert {r["Attempt Id"] for r in mine} == {expected["Attempt Id"]}
    for column in ("Question Id", "Question Type"):
        assert [r[column] for r in mine] == expected[column]
    data = to_csv(header, mine).decode().splitlines()[1:]
    by_column = {
        name: [line_values[index] for line_values in _split(data)]
        for index, name in enumerate(header)
    }
    for column in ("Question Duration", "Question Score", "Question Max Score"):
        assert by_column[column] == expected[column]
    assert mine[0]["Question Options"] == expected["Question Options (first row)"]
    assert mine[0]["Question Response"] == expected["Question Response (first row)"]


def _split(lines: list[str]) -> list[list[str]]:
    return list(csv.reader(lines, escapechar="\\", doublequote=False))


def test_v1_first_row_csv() -> None:
    """[derived] The first row of user-001 as written: Attempted On in the session zone,
    duration rounded, doubles in Java form, options/responses quoted because of their commas."""
    header, rows, _ = _rows(content_names={CONTENT: ["Test"]})
    line = to_csv(header, rows[:1]).decode().splitlines()[1]
    assert line == (
        "do_1130928636168192001667,24 aug course,BatchId_batch-001,Basic Java,user-001,"
        "do_1128870328040161281204,Test,attempat-001,2021-07-15T11:00:00.000+05:30,"
        "do_213019475454476288155,mcq,testQuestiontextandformula,SelfAssess for course,1,1.0,1.0,"
        "\"[{'1':'{'text':'A=pi r^2'}'},{'2':'{'text':'no'}'},{'answer':'{'correct':['1']}'}]\","
        "[{'1':'{'text':'A=pi r^2'}'}]"
    )


def test_v1_with_the_mocked_search_duplicates_rows() -> None:
    """[derived] Upstream's mock returns content_search_response.json for every search, where
    do_1128870328040161281204 appears twice ("Test", "24 aug course"): the left join doubles
    user-001's and user-002's rows (B6.2 #7)."""
    names = search_names()
    assert names[CONTENT] == ["Test", "24 aug course"]
    _, rows, _ = _rows(content_names=names)
    per_user = {u: [r for r in rows if r["User UUID"] == u] for u in ("user-001", "user-002")}
    assert len(per_user["user-001"]) == 8
    assert [r["QuestionSet Title"] for r in per_user["user-001"][:2]] == ["Test", "24 aug course"]
    assert len(per_user["user-002"]) == 2
    assert len(rows) == 11  # + user-003's single row


def test_attempt_without_questions_gives_one_row() -> None:
    """[derived] explode_outer keeps an attempt with no questions: question columns are empty
    (strings "") or null (numbers, time), and toJSON of the missing value reads ``null``."""
    header, rows, _ = _rows(content_names=search_names())
    row = next(r for r in rows if r["User UUID"] == "user-003")
    assert row["QuestionSet Id"] == "do_112876961957437440179"
    assert row["QuestionSet Title"] == "Test"
    assert row["Attempted On"] is None
    assert [row[c] for c in ("Question Id", "Question Type", "Question Title")] == ["", "", ""]
    assert [row[c] for c in ("Question Duration", "Question Score", "Question Max Score")] == [
        None,
        None,
        None,
    ]
    assert row["Question Options"] == row["Question Response"] == "null"
    line = to_csv(header, [row]).decode().splitlines()[1]
    assert line.endswith(',attempt-001,,"","","","",,,,null,null')


def test_unknown_content_and_hierarchy_titles() -> None:
    _, rows, _ = _rows(content_names={})
    assert {r["QuestionSet Title"] for r in rows} == {""}
    hierarchy = {"identifier": COURSE, "children": [{"identifier": CONTENT, "name": "Quiz"}]}
    _, rows, _ = _rows(hierarchy=hierarchy)
    assert {r["QuestionSet Title"] for r in rows if r["QuestionSet Id"] == CONTENT} == {"Quiz"}


def test_uncached_learner_loses_all_responses() -> None:
    users = {k: v for k, v in user_cache("response").items() if k != "user-001"}
    _, rows, dropped = _rows(users=users, content_names={})
    assert "user-001" not in {r["User UUID"] for r in rows}
    assert dropped == ["user-001"]


def test_attempts_of_other_batches_of_the_course_appear() -> None:
    """B9.13: V1 joins on user and course only; the row carries this batch's id."""
    stray = replace(ATTEMPTS[2], batch_id="batch-006", attempt_id="from-006")
    other_course = replace(ATTEMPTS[2], course_id="elsewhere", attempt_id="other-course")
    _, rows, _ = _rows(attempts=[stray, other_course], content_names={})
    assert [(r["Attempt Id"], r["Batch Id"]) for r in rows] == [("from-006", "BatchId_batch-001")]


def test_foreign_org_sees_only_its_users() -> None:
    foreign = replace(batch("batch-001"), requested_org_id="01285019302823526477")
    _, rows, dropped = _rows(batch=foreign, content_names={})
    assert {r["User UUID"] for r in rows} == {"user-002"}
    assert dropped == []


def test_attempted_on_follows_the_session_zone() -> None:
    _, rows, _ = _rows(ctx=ReportContext(zone="UTC"), content_names={})
    assert rows[0]["Attempted On"] == "2021-07-15T05:30:00.000Z"


# --- values -----------------------------------------------------------------------------------


def test_sanitised_json_of_the_fixture_question() -> None:
    """B6.2's worked example, and the other questions of user-001."""
    assert sanitised_json(QUESTIONS[0]["params"]) == (
        "[{'1':'{'text':'A=pi r^2'}'},{'2':'{'text':'no'}'},{'answer':'{'correct':['1']}'}]"
    )
    assert sanitised_json([{"1": A_PI}]) == "[{'1':'{'text':'A=pi r^2'}'}]"
    assert sanitised_json(QUESTIONS[2]["resvalues"]) == (
        "[{'lhs':'[{'1':'{'text':'A=pi r^2'}'},{'2':'{'text':'frac{4}{3}pi r^3'}'},"
        "{'3':'{'text':'a^ntimes a^m=a^{n+m}'}'}]'},{'rhs':'[{'1':'{'text':'Volume of sphere'}'},"
        "{'2':'{'text':'Area of Circle'}'},{'3':'{'text':'Product Rule'}'}]'}]"
    )
    assert sanitised_json([]) == "[]"
    assert sanitised_json(None) == "null"


def test_question_scores_are_doubles() -> None:
    question = {"id": "q", "score": 1, "max_score": None, "duration": None}
    attempt = Attempt(
        COURSE,
        "batch-001",
        "user-001",
        CONTENT,
        "x",
        "1/1",
        1.0,
        1.0,
        datetime(2021, 1, 1, tzinfo=UTC),
        [question],
    )
    header, rows, _ = _rows(attempts=[attempt], content_names={})
    assert rows[0]["Question Score"] == 1.0
    assert rows[0]["Question Options"] == rows[0]["Question Response"] == "[]"
    line = to_csv(header, rows).decode().splitlines()[1]
    assert ',q,"","","",,1.0,,[],[]' in line
