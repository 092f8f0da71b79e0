"""response-exhaust (V1) rows: the B10.3 expectations on our own data and the B6 rules
(docs/flows/response-exhaust.md)."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from lernflow.reports.csvout import to_csv
from lernflow.reports.model import Attempt, ReportContext
from lernflow.reports.response import (
    COLUMNS_ORDER,
    question_duration,
    response_rows,
    sanitised_json,
    scala_map_order,
)
from tests.unit.test_reports_fixture_rows import (
    A_OMEGA,
    ATTEMPTS,
    COURSE,
    ENROLMENTS,
    QUESTIONS,
    QUIZ,
    QUIZ_2,
    batch,
    hierarchies,
    search_names,
    user_cache,
)

CTX = ReportContext()
CONTENT = QUIZ
OPTIONS_0 = "[{'1':'{'text':'omega t'}'},{'2':'{'text':'yes'}'},{'answer':'{'correct':['1']}'}]"
RESPONSE_0 = "[{'1':'{'text':'omega t'}'}]"


def _rows(**kw: Any) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    return response_rows(
        kw.pop("batch", batch("bt-101")),
        kw.pop("enrolments", ENROLMENTS),
        kw.pop("users", user_cache("response")),
        kw.pop("attempts", ATTEMPTS),
        kw.pop("hierarchy", hierarchies()[COURSE]),
        kw.pop("ctx", CTX),
        **kw,
    )


def test_v1_user_001_expectations() -> None:
    """B10.3 V1: the expectations for the learner with a full attempt (upstream user-001; the
    upstream assertions are commented out), with one search result per content id. Durations
    round half up (4.5 -> 5); scores are doubles; options/responses lose JSON escapes."""
    header, rows, dropped = _rows(content_names={CONTENT: ["Frog Quiz"]})
    assert header == list(COLUMNS_ORDER)
    assert dropped == []
    mine = [r for r in rows if r["User UUID"] == "lrn-201"]
    assert len(mine) == 4
    assert {r["Attempt Id"] for r in mine} == {"att-x1"}
    assert [r["Question Id"] for r in mine] == ["lf-q-9101", "lf-q-9102", "lf-q-9103", "lf-q-9104"]
    assert [r["Question Type"] for r in mine] == ["mcq", "mcq", "mtf", "mcq"]
    data = to_csv(header, mine).decode().splitlines()[1:]
    by_column = {
        name: [line_values[index] for line_values in _split(data)]
        for index, name in enumerate(header)
    }
    assert by_column["Question Duration"] == ["3", "2", "5", "14"]
    assert by_column["Question Score"] == ["1.0", "1.0", "0.25", "10.0"]
    assert by_column["Question Max Score"] == ["1.0", "1.0", "1.0", "10.0"]
    assert mine[0]["Question Options"] == OPTIONS_0
    assert mine[0]["Question Response"] == RESPONSE_0


def _split(lines: list[str]) -> list[list[str]]:
    return list(csv.reader(lines, escapechar="\\", doublequote=False))


def test_v1_first_row_csv() -> None:
    """[derived] The first row of lrn-201 as written: Attempted On in the session zone (18:45
    UTC is 00:15 the next day in IST), duration rounded, doubles in Java form, options quoted
    because of their commas."""
    header, rows, _ = _rows(content_names={CONTENT: ["Frog Quiz"]})
    line = to_csv(header, rows[:1]).decode().splitlines()[1]
    assert line == (
        "lf-course-7001,Pond Life Basics,BatchId_bt-101,Dawn Cohort,lrn-201,"
        "lf-quiz-8001,Frog Quiz,att-x1,2022-02-09T00:15:00.000+05:30,"
        "lf-q-9101,mcq,Wave phase,Pond quiz,3,1.0,1.0,"
        f'"{OPTIONS_0}",{RESPONSE_0}'
    )


def test_v1_with_the_mocked_search_duplicates_rows() -> None:
    """[derived] The search answer (the same for every search) lists lf-quiz-8001 twice
    ("Frog Quiz", "Pond Life Basics"): the left join doubles lrn-201's and lrn-202's rows
    (B6.2 #7)."""
    names = search_names()
    assert names[CONTENT] == ["Frog Quiz", "Pond Life Basics"]
    _, rows, _ = _rows(content_names=names)
    per_user = {u: [r for r in rows if r["User UUID"] == u] for u in ("lrn-201", "lrn-202")}
    assert len(per_user["lrn-201"]) == 8
    assert [r["QuestionSet Title"] for r in per_user["lrn-201"][:2]] == [
        "Frog Quiz",
        "Pond Life Basics",
    ]
    assert len(per_user["lrn-202"]) == 2
    assert len(rows) == 11  # + lrn-203's single row


def test_attempt_without_questions_gives_one_row() -> None:
    """[derived] explode_outer keeps an attempt with no questions: question columns are empty
    (strings "") or null (numbers, time), and toJSON of the missing value reads ``null``."""
    header, rows, _ = _rows(content_names=search_names())
    row = next(r for r in rows if r["User UUID"] == "lrn-203")
    assert row["QuestionSet Id"] == QUIZ_2
    assert row["QuestionSet Title"] == "Lily Quiz"
    assert row["Attempted On"] is None
    assert [row[c] for c in ("Question Id", "Question Type", "Question Title")] == ["", "", ""]
    assert [row[c] for c in ("Question Duration", "Question Score", "Question Max Score")] == [
        None,
        None,
        None,
    ]
    assert row["Question Options"] == row["Question Response"] == "null"
    line = to_csv(header, [row]).decode().splitlines()[1]
    assert line.endswith(',att-1,,"","","","",,,,null,null')


def test_unknown_content_and_hierarchy_titles() -> None:
    _, rows, _ = _rows(content_names={})
    assert {r["QuestionSet Title"] for r in rows} == {""}
    hierarchy = {"identifier": COURSE, "children": [{"identifier": CONTENT, "name": "Quiz"}]}
    _, rows, _ = _rows(hierarchy=hierarchy)
    assert {r["QuestionSet Title"] for r in rows if r["QuestionSet Id"] == CONTENT} == {"Quiz"}


def test_uncached_learner_loses_all_responses() -> None:
    users = {k: v for k, v in user_cache("response").items() if k != "lrn-201"}
    _, rows, dropped = _rows(users=users, content_names={})
    assert "lrn-201" not in {r["User UUID"] for r in rows}
    assert dropped == ["lrn-201"]


def test_attempts_of_other_batches_of_the_course_appear() -> None:
    """B9.13: V1 joins on user and course only; the row carries this batch's id."""
    stray = replace(ATTEMPTS[2], batch_id="bt-106", attempt_id="from-106")
    other_course = replace(ATTEMPTS[2], course_id="elsewhere", attempt_id="other-course")
    _, rows, _ = _rows(attempts=[stray, other_course], content_names={})
    assert [(r["Attempt Id"], r["Batch Id"]) for r in rows] == [("from-106", "BatchId_bt-101")]


def test_foreign_org_sees_only_its_users() -> None:
    foreign = replace(batch("bt-101"), requested_org_id="lf-org-gull")
    _, rows, dropped = _rows(batch=foreign, content_names={})
    assert {r["User UUID"] for r in rows} == {"lrn-202"}
    assert dropped == []


def test_attempted_on_follows_the_session_zone() -> None:
    _, rows, _ = _rows(ctx=ReportContext(zone="UTC"), content_names={})
    assert rows[0]["Attempted On"] == "2022-02-08T18:45:00.000Z"


# --- values -----------------------------------------------------------------------------------


def test_sanitised_json_of_the_fixture_question() -> None:
    """B6.2's worked example on our questions: JSON escapes and backslashes go, quotes become
    single quotes, a backslash+n pair disappears."""
    assert sanitised_json(QUESTIONS[0]["params"]) == OPTIONS_0
    assert sanitised_json([{"1": A_OMEGA}]) == RESPONSE_0
    assert sanitised_json(QUESTIONS[2]["resvalues"]) == (
        "[{'lhs':'[{'1':'{'text':'sum x_i'}'},{'2':'{'text':'omega t'}'},"
        "{'3':'{'text':'e^{ipi}'}'}]'},{'rhs':'[{'1':'{'text':'Ripple'}'},"
        "{'2':'{'text':'Phase'}'},{'3':'{'text':'Sum rule'}'}]'}]"
    )
    assert sanitised_json([]) == "[]"
    assert sanitised_json(None) == "null"


def test_sanitised_json_escapes_like_jackson() -> None:
    # JSON escapes lose their backslash, backslash+n disappears, u00XX stays as text
    assert sanitised_json([{"k": 'a"b\\c\td\ne\x01f'}]) == "[{'k':'a'bctdeu0001f'}]"
    assert sanitised_json([{"k": "ünï"}]) == "[{'k':'ünï'}]"


def test_map_entries_in_cassandra_then_scala_order() -> None:
    assert sanitised_json([{"b": "2", "a": "1"}]) == "[{'a':'1','b':'2'}]"
    keys = ["a", "b", "c", "d"]
    assert scala_map_order(keys) == keys
    many = ["k1", "k2", "k3", "k4", "k5", "k6"]
    ordered = scala_map_order(many)
    assert sorted(ordered) == many
    assert scala_map_order(list(reversed(many))) == ordered


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.0"), 1),
        (Decimal("12.0"), 12),
        (Decimal("2.5"), 3),
        (Decimal("-2.5"), -3),
        (Decimal("-0.4"), 0),
        (Decimal("1.4999999999999999995"), 2),  # rounded to 18 places first (decimal(38,18))
        (Decimal("1E+20"), None),  # does not fit decimal(38,18)
        (1.5, 2),
        (None, None),
    ],
)
def test_question_duration(value: Any, expected: int | None) -> None:
    assert question_duration(value) == expected


def test_question_scores_are_doubles() -> None:
    question = {"id": "q", "score": 1, "max_score": None, "duration": None}
    attempt = Attempt(
        COURSE,
        "bt-101",
        "lrn-201",
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
