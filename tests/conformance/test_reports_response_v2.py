"""response-exhaust V2 rows (ResponseExhaustJobV2, spec B6.3, B10.3): Cassandra attempts of the
batch plus the archived attempts, de-duplicated, joined on user, course and batch."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

import pytest

from lernflow.reports.csvout import to_csv
from lernflow.reports.model import Attempt, Batch, BatchFailed, ReportContext
from lernflow.reports.response import (
    ARCHIVE_COLUMNS,
    COLUMNS_ORDER,
    archive_glob,
    parse_archived_attempts,
    read_archive,
    response_rows,
    response_rows_v2,
    sanitised_json,
    timestamp_string,
)
from tests.conformance.conftest import SUNBIRD_FIXTURES
from tests.conformance.test_reports_fixture_rows import (
    ATTEMPTED_ON,
    ATTEMPTS,
    CHANNEL,
    COURSE,
    ENROLMENTS,
    QUESTIONS,
    batch,
    user_cache,
)

FX = SUNBIRD_FIXTURES / "reports"
CASES = json.loads((FX / "test_cases_response_exhaust.json").read_text())
V2 = CASES["v2"]
CTX = ReportContext()
CONTENT = "do_1128870328040161281204"
# the upstream test's assessmentFetcherConfig.filePath, re-rooted (the fixture files are flat)
FILE_PATH = "data-archival/"
HEADER = ",".join(ARCHIVE_COLUMNS)


# --- fixture inputs ---------------------------------------------------------------------------


def _fixture_archive_paths() -> dict[str, str]:
    """Blob path -> fixture file name: ``archival__<folder>__<file>.csv`` was
    ``<filePath><folder>/<file>.csv``, ``archival__<file>.csv`` was ``<filePath><file>.csv``."""
    paths: dict[str, str] = {}
    for path in sorted(FX.glob("archival__*.csv")):
        parts = path.name.removeprefix("archival__").split("__")
        paths[FILE_PATH + "/".join(parts)] = path.name
    return paths


def _archive_texts(batch_id: str, collection_id: str) -> list[str]:
    """The fixture files the V2 glob matches, in listing order."""
    pattern = archive_glob(batch_id, collection_id, FILE_PATH)
    return [
        (FX / name).read_text()
        for blob, name in _fixture_archive_paths().items()
        if PurePosixPath(blob).match(pattern)
    ]


def _v2_search() -> list[dict[str, Any]]:
    """The V2 test's search mock (returned for every search call)."""
    document = json.loads((FX / "content_search_response_responseV2_test.json").read_text())
    return [
        item
        for key, items in document["result"].items()
        if key.lower() != "count"
        for item in items
    ]


def _v2_batch() -> Batch:
    """batch-001 as B4.3 resolves it with the V2 search mock ("SelfAssess for course")."""
    collection = next(item for item in _v2_search() if item["identifier"] == COURSE)
    return Batch(
        batch_id="batch-001",
        collection_id=COURSE,
        batch_name="Basic Java",
        collection_name=collection["name"],
        requested_org_id=CHANNEL,
        collection_org_id=collection["channel"],
        user_consent=collection.get("userConsent") or "No",
    )


def _v2_names() -> dict[str, list[str | None]]:
    names: dict[str, list[str | None]] = {}
    for item in _v2_search():
        names.setdefault(item["identifier"], []).append(item.get("name"))
    return names


def _batch001_attempts() -> list[Attempt]:
    """``assessment_aggregator WHERE batch_id = 'batch-001'`` (report_data.cql, which the
    upstream V2 test loads)."""
    return [a for a in ATTEMPTS if a.batch_id == "batch-001"]


def _v2(**kw: Any) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    archived = (
        kw.pop("archived")
        if "archived" in kw
        else read_archive(_archive_texts("batch-001", COURSE))
    )
    return response_rows_v2(
        kw.pop("batch", _v2_batch()),
        kw.pop("enrolments", ENROLMENTS),
        kw.pop("users", user_cache("response")),
        kw.pop("attempts", _batch001_attempts()),
        archived,
        kw.pop("hierarchy", None),
        kw.pop("ctx", CTX),
        content_names=kw.pop("content_names", _v2_names()),
    )


def _csv_cells(header: list[str], rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The rows as written and read back as text (Spark's CSV dialect)."""
    lines = to_csv(header, rows).decode().splitlines()
    reader = csv.reader(lines, escapechar="\\", doublequote=False)
    records = list(reader)
    return [dict(zip(records[0], record, strict=True)) for record in records[1:]]


def _archived(user: str, attempt: str, questions: str, **fields: str) -> str:
    values = {
        "content_id": CONTENT,
        "attempt_id": attempt,
        "user_id": user,
        "course_id": COURSE,
        "batch_id": "batch-001",
        "created_on": "null",
        "last_attempted_on": "null",
        "total_max_score": "1",
        "total_score": "1",
        "updated_on": "null",
        "grand_total": "1",
        "question": questions,
        **fields,
    }
    return ",".join(values[name] for name in ARCHIVE_COLUMNS)


def _question_json(qid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": qid,
        "assess_ts": "2021-02-16T18:51:54.104Z",
        "max_score": 1.0,
        "score": 1.0,
        "type": "mcq",
        "title": f"title {qid}",
        "resvalues": [{"1": "one"}],
        "params": [{"1": "one"}, {"answer": "x"}],
        "description": "",
        "duration": 3.0,
        **extra,
    }


def _csv_cell(text: str) -> str:
    """A text as the archiver writes it into a CSV cell (quoted, ``\\`` escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _csv_quoted(document: Any) -> str:
    """A JSON document in a CSV cell."""
    return _csv_cell(json.dumps(document, separators=(",", ":")))


# --- the blob path ----------------------------------------------------------------------------


def test_archive_glob() -> None:
    assert archive_glob("batch-001", COURSE) == f"archival-data/batch-001_{COURSE}/*-*-*.csv"
    assert (
        archive_glob("b", "c", "src/test/resources/exhaust/data-archival/", "csv.gz")
        == "src/test/resources/exhaust/data-archival/b_c/*-*-*.csv.gz"
    )


def test_the_glob_picks_the_batch_folder_only() -> None:
    """The flat ``batch-001-*.csv``/``batch-004-*.csv`` files are not in the V2 layout."""
    pattern = archive_glob("batch-001", COURSE, FILE_PATH)
    matched = [
        name
        for blob, name in _fixture_archive_paths().items()
        if PurePosixPath(blob).match(pattern)
    ]
    assert matched == [
        f"archival__batch-001_{COURSE}__2021-22-1626351011290.csv",
        f"archival__batch-001_{COURSE}__2021-28-1626351011290.csv",
    ]
    assert _archive_texts("batch-004", "do_112835334818643968148") == []


# --- parsing an archived file -----------------------------------------------------------------


def test_parse_the_fixture_archive() -> None:
    first, second = _archive_texts("batch-001", COURSE)
    rows = parse_archived_attempts(first)
    assert [(a.user_id, a.attempt_id, a.content_id, len(a.question)) for a in rows] == [
        ("user-001", "attempat-001", CONTENT, 4),
        ("user-002", "attempt-001", CONTENT, 10),
        ("user-003", "attempt-001", "do_112876961957437440179", 0),
    ]
    user1 = rows[0]
    assert (user1.course_id, user1.batch_id, user1.grand_total) == (COURSE, "batch-001", "20")
    assert (user1.total_score, user1.total_max_score) == (20.0, 20.0)
    assert user1.last_attempted_on is None  # the archiver's "null"
    assert [q["id"] for q in user1.question] == [q["id"] for q in QUESTIONS]
    assert [q["duration"] for q in user1.question] == [1.0, 1.0, 2.0, 12.0]
    assert all(isinstance(q["duration"], float) for q in user1.question)
    assert [q["score"] for q in user1.question] == [1.0, 1.0, 0.33, 10.0]
    # CSV escapes undone, then JSON: the map value is the text the archiver serialised
    assert user1.question[0]["params"][1] == {"2": '{"text":"no\n"}'}
    user2 = rows[1].question[0]
    assert user2["id"] == "do_31300323721809100819622"
    assert user2["params"][0] == {"1": r'{"text":"A. Oliguria\n"}'}
    assert user2["duration"] == 17.0  # 17.000000000000000000
    assert user2["assess_ts"] == "2021-02-16T18:51:54.104Z"
    assert list(user2) == [
        "id",
        "assess_ts",
        "max_score",
        "score",
        "type",
        "title",
        "resvalues",
        "params",
        "description",
        "duration",
    ]

    later = parse_archived_attempts(second)
    assert [(a.user_id, a.course_id) for a in later] == [
        ("user-008", "do_11306040245271756813015"),
        ("user-010", "do_11306040245271756813015"),
    ]
    assert {a.last_attempted_on for a in later} == {ATTEMPTED_ON}  # 1626327000000 ms


def test_archive_csv_dialect() -> None:
    """Spark's reader: ``\\"`` and ``\\\\`` unescaped inside quotes, other backslashes kept,
    empty (quoted or not) is null, short records padded, extra values dropped, blank lines
    skipped, columns by header name (any order, any case)."""
    columns = list(reversed(ARCHIVE_COLUMNS))  # question, grand_total, ..., content_id
    header = ",".join(name.upper() for name in columns)
    values = {
        "user_id": "user-001",
        "course_id": COURSE,
        "batch_id": "batch-001",
        "attempt_id": '"a\\"b\\\\c\\d"',
        "content_id": '""',
        "grand_total": '"x"y',
        "question": "[]",
    }
    full = ",".join(values.get(name, "") for name in columns)
    short = ",".join(["[]", *[""] * 6, "batch-001", COURSE, "user-002"])  # no attempt/content
    no_user = ",".join(["[]", *[""] * 6, "batch-001", COURSE])
    long = full + ",surplus,values"
    text = f"{header}\r\n\r\n{full}\r{short}\n{no_user}\n\n{long}"
    first, second, third = parse_archived_attempts(text)
    assert first.attempt_id == 'a"b\\c\\d'
    assert first.content_id == ""  # null
    assert first.grand_total == "xy"  # text after the closing quote stays
    assert first.total_score is None
    assert first.question == []
    assert (second.user_id, second.attempt_id, second.content_id) == ("user-002", "", "")
    assert third == first  # the row without user_id (it cannot join anyone) is left out


def test_read_archive() -> None:
    assert read_archive([]) is None  # no file matches the glob: Path does not exist
    assert read_archive([HEADER]) == []  # files without rows still union
    texts = _archive_texts("batch-001", COURSE)
    archive = read_archive(texts)
    assert archive is not None
    assert [a.user_id for a in archive] == [
        "user-001",
        "user-002",
        "user-003",
        "user-008",
        "user-010",
    ]


def test_last_attempted_on_is_from_unixtime_of_ms() -> None:
    def attempted(ms: str) -> datetime | None:
        (row,) = parse_archived_attempts(
            HEADER + "\n" + _archived("u", "a", "[]", last_attempted_on=ms)
        )
        return row.last_attempted_on

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert attempted("1626327000999") == datetime(2021, 7, 15, 5, 30, tzinfo=UTC)  # truncated
    assert attempted("-1500") == epoch - timedelta(seconds=1)  # toward zero
    assert attempted(" 1.5e3 ") == epoch + timedelta(seconds=1)  # Spark's string -> double
    assert attempted("NaN") == epoch  # (long) NaN = 0
    assert attempted("null") is None
    assert attempted("") is None
    assert attempted("1e30") is None  # beyond Python's datetime


def test_archived_question_shapes() -> None:
    """Jackson into ``Question``: missing doubles 0.0, missing lists null, numbers in text
    fields keep their text, null elements are null questions, unknown fields ignored."""
    document = '[{"id":7,"type":true,"params":[null,{"k":1.50}],"extra":{"x":1}},null] trailing'
    (row,) = parse_archived_attempts(HEADER + "\n" + _archived("u", "a", _csv_cell(document)))
    first, second = row.question
    assert first == {
        "id": "7",
        "assess_ts": None,
        "max_score": 0.0,
        "score": 0.0,
        "type": "true",
        "title": None,
        "resvalues": None,
        "params": [None, {"k": "1.50"}],
        "description": None,
        "duration": 0.0,
    }
    assert second == {}
    (null_document,) = parse_archived_attempts(HEADER + "\n" + _archived("u", "a", "null"))
    assert null_document.question == []
    (numeric_text,) = parse_archived_attempts(
        HEADER + "\n" + _archived("u", "a", _csv_quoted([{"duration": " 2.5 ", "score": ""}]))
    )
    assert (numeric_text.question[0]["duration"], numeric_text.question[0]["score"]) == (2.5, 0.0)


@pytest.mark.parametrize(
    "cell",
    [
        "",  # null: readValue(null)
        '"   "',
        "[",
        '"{\\"id\\":\\"q\\"}"',  # an object, not a list
        "[1]",
        '"[{\\"id\\":[\\"q\\"]}]"',
        '"[{\\"duration\\":\\"soon\\"}]"',
        '"[{\\"score\\":true}]"',
        '"[{\\"params\\":{\\"1\\":\\"a\\"}}]"',
        '"[{\\"params\\":[{\\"1\\":{\\"a\\":1}}]}]"',
        "[NaN]",
    ],
)
def test_undeserialisable_question_fails_the_batch(cell: str) -> None:
    with pytest.raises(BatchFailed, match="convertStringToList"):
        parse_archived_attempts(HEADER + "\n" + _archived("u", "a", cell))


# --- B10.3 V2: "generate final output as csv and zip files" ----------------------------------


def test_v2_upstream_case_sixteen_rows() -> None:
    """16 rows for batch-001: user-001's 4 questions (Cassandra ``attempat-001``, the archived
    copy de-duplicated), user-002's Cassandra attempt without questions plus the 10 archived
    questions, user-003's attempt without questions (in both, one row). user-004 has no
    attempt; the archived user-008/user-010 rows are of another course."""
    asserted = V2["asserted"]
    header, rows, dropped = _v2()
    assert header == list(COLUMNS_ORDER)
    assert dropped == []
    assert len(rows) == asserted["rows"] == 16
    per_user = {
        u: sum(r["User UUID"] == u for r in rows) for u in ("user-001", "user-002", "user-003")
    }
    assert per_user == {"user-001": 4, "user-002": 11, "user-003": 1}
    assert {r["Collection Id"] for r in rows} == {COURSE}
    assert {r["Collection Name"] for r in rows} == {"SelfAssess for course"}
    assert {r["Batch Id"] for r in rows} == {"BatchId_batch-001"}
    assert {r["Batch Name"] for r in rows} == {"Basic Java"}
    # the mock search only knows the course: no question set has a title
    assert {r["QuestionSet Title"] for r in rows} == {""}

    expected = asserted["user-001"]
    cells = [c for c in _csv_cells(header, rows) if c["User UUID"] == "user-001"]
    assert {c["Collection Id"] for c in cells} == {expected["Collection Id"]}
    assert {c["Batch Id"] for c in cells} == {expected["Batch Id"]}
    assert {c["Attempt Id"] for c in cells} == {expected["Attempt Id"]}
    assert {c["QuestionSet Id"] for c in cells} <= set(expected["QuestionSet Id contains one of"])
    for column in (
        "Question Id",
        "Question Type",
        "Question Duration",
        "Question Score",
        "Question Max Score",
    ):
        assert [c[column] for c in cells] == expected[column], column
    assert cells[0]["Question Options"] == expected["Question Options (first row)"]
    assert cells[0]["Question Response"] == expected["Question Response (first row)"]
    # upstream also checks these "contain at least one of"
    assert "testQuestiontextandformula" in {c["Question Description"] for c in cells}
    assert {c["Question Title"] for c in cells} & {
        "testQuestiontextandformula",
        "test with formula",
    }


def test_v2_upstream_case_rows_in_detail() -> None:
    """[derived] Attempted On is the string cast (IST session zone here); user-002's rows are
    its Cassandra attempt (no question) then the archived questions in archive order."""
    header, rows, _ = _v2()
    user1 = [r for r in rows if r["User UUID"] == "user-001"]
    assert {r["Attempted On"] for r in user1} == {"2021-07-15 11:00:00"}
    user2 = [r for r in rows if r["User UUID"] == "user-002"]
    archived = parse_archived_attempts(_archive_texts("batch-001", COURSE)[0])[1]
    assert [r["Question Id"] for r in user2] == ["", *(q["id"] for q in archived.question)]
    assert user2[0]["Question Options"] == user2[0]["Question Response"] == "null"
    assert user2[0]["Question Duration"] is None
    assert [r["Question Duration"] for r in user2[1:]] == [
        17.0,
        11.0,
        12.0,
        10.0,
        17.0,
        16.0,
        48.0,
        5.0,
        13.0,
        6.0,
    ]
    assert user2[1]["Question Options"] == (
        "[{'1':'{'text':'A. Oliguria'}'},{'2':'{'text':'B.\u00a0Mild pneumonia'}'},"
        "{'3':'{'text':'C. Severe Pneumonia'}'},{'4':'{'text':'D. Panic Attack'}'},"
        "{'answer':'{'correct':['1']}'}]"
    )
    assert {r["Attempted On"] for r in user2} == {None}
    lines = to_csv(header, rows).decode().splitlines()
    assert lines[1] == (
        "do_1130928636168192001667,SelfAssess for course,BatchId_batch-001,Basic Java,user-001,"
        'do_1128870328040161281204,"",attempat-001,2021-07-15 11:00:00,'
        "do_213019475454476288155,mcq,testQuestiontextandformula,SelfAssess for course,1.0,1.0,"
        "1.0,\"[{'1':'{'text':'A=pi r^2'}'},{'2':'{'text':'no'}'},{'answer':'{'correct':['1']}'}]\","
        "[{'1':'{'text':'A=pi r^2'}'}]"
    )
    assert lines[-1] == (
        "do_1130928636168192001667,SelfAssess for course,BatchId_batch-001,Basic Java,user-003,"
        'do_112876961957437440179,"",attempt-001,,"","","","",,,,null,null'
    )


def test_the_archival_cql_would_give_twenty_rows() -> None:
    """archival__archival_report_data.cql stores user-001's attempt as ``attempt-001``: with it
    in Cassandra the archived ``attempat-001`` questions would not be duplicates (20 rows).
    The upstream V2 test loads report_data.cql (``attempat-001``), which gives its 16."""
    cql = (FX / "archival__archival_report_data.cql").read_text()
    keys = re.findall(
        r"INSERT INTO sunbird_courses\.assessment_aggregator .*? VALUES \('([^']*)', '([^']*)', "
        r"'([^']*)', '([^']*)', '([^']*)'",
        cql,
    )
    assert keys[0] == (COURSE, "batch-001", "user-001", CONTENT, "attempt-001")
    report_data = (FX / "report_data.cql").read_text()
    assert f"'{COURSE}', 'batch-001', 'user-001', '{CONTENT}', 'attempat-001'" in report_data
    # the archival CQL's batch-001 rows: the same as report_data.cql's but for user-001's
    # attempt id (and no last_attempted_on)
    archival_rows = [
        replace(ATTEMPTS[0], attempt_id="attempt-001", last_attempted_on=None),
        *_batch001_attempts()[1:3],
    ]
    assert [
        (a.course_id, a.batch_id, a.user_id, a.content_id, a.attempt_id) for a in archival_rows
    ] == [k for k in keys if k[1] == "batch-001"]
    _, rows, _ = _v2(attempts=archival_rows)
    assert len(rows) == 20
    assert {r["Attempt Id"] for r in rows if r["User UUID"] == "user-001"} == {
        "attempt-001",
        "attempat-001",
    }


# --- union and de-duplication -----------------------------------------------------------------


def test_cassandra_rows_win_duplicates_in_the_fixture() -> None:
    """user-001's Cassandra and archived questions share their keys: the Cassandra values
    (descriptions, Attempted On) are the ones reported."""
    _, rows, _ = _v2()
    user1 = [r for r in rows if r["User UUID"] == "user-001"]
    assert [r["Question Description"] for r in user1] == [q["description"] for q in QUESTIONS]
    archived = parse_archived_attempts(_archive_texts("batch-001", COURSE)[0])[0]
    assert [q["description"] for q in archived.question] != [q["description"] for q in QUESTIONS]


def test_drop_duplicates_key() -> None:
    """``dropDuplicates(course_id, batch_id, user_id, attempt_id, questionid)``: no content id in
    the key, null question ids equal each other, the first row (Cassandra's) wins; it also
    applies among the Cassandra rows and among the archived ones."""
    base = _batch001_attempts()[0]  # user-001, attempat-001, 4 questions
    q1, q2 = QUESTIONS[0], QUESTIONS[1]
    cassandra = [
        replace(base, question=[q1]),
        replace(base, content_id="other-content", question=[q1, q2]),  # q1 again: dropped
        replace(base, attempt_id="second", question=[]),
        replace(base, attempt_id="second", content_id="other-content", question=[]),  # dropped
    ]
    archive_text = "\n".join(
        [
            HEADER,
            _archived(
                "user-001",
                "attempat-001",
                _csv_quoted([_question_json(q1["id"], title="archived"), _question_json("q-new")]),
            ),
            _archived("user-001", "second", "[]"),  # same key as the Cassandra null question
            _archived("user-001", "third", _csv_quoted([_question_json("q3")])),
            _archived("user-001", "third", _csv_quoted([_question_json("q3", title="later")])),
        ]
    )
    _, rows, _ = _v2(attempts=cassandra, archived=parse_archived_attempts(archive_text))
    assert [
        (r["QuestionSet Id"], r["Attempt Id"], r["Question Id"], r["Question Title"]) for r in rows
    ] == [
        (CONTENT, "attempat-001", q1["id"], q1["title"]),
        ("other-content", "attempat-001", q2["id"], q2["title"]),
        (CONTENT, "second", "", ""),
        (CONTENT, "attempat-001", "q-new", "title q-new"),
        (CONTENT, "third", "q3", "title q3"),
    ]


def test_v2_joins_on_batch_too() -> None:
    """V1 reports attempts of another batch of the course (B9.13); V2 does not: the Cassandra
    read is ``WHERE batch_id`` and the join matches the batch."""
    stray = replace(_batch001_attempts()[2], batch_id="batch-006", attempt_id="from-006")
    archived_stray = parse_archived_attempts(
        HEADER + "\n" + _archived("user-003", "archived-006", "[]", batch_id="batch-006")
    )
    _, rows, _ = _v2(attempts=[stray], archived=archived_stray, content_names={})
    assert rows == []
    _, v1_rows, _ = response_rows(
        batch("batch-001"), ENROLMENTS, user_cache("response"), [stray], None, CTX, content_names={}
    )
    assert [r["Attempt Id"] for r in v1_rows] == ["from-006"]


def test_archived_rows_of_unknown_or_uncached_learners() -> None:
    users = {k: v for k, v in user_cache("response").items() if k != "user-002"}
    _, rows, dropped = _v2(users=users)
    assert dropped == ["user-002"]
    assert "user-002" not in {r["User UUID"] for r in rows}
    assert len(rows) == 5


# --- archive read failure ---------------------------------------------------------------------


def test_archive_read_failure_reports_cassandra_rows_only() -> None:
    """Sunbird catches the failed read (e.g. no file for the batch: the upstream "blob does not
    has any data" case) and keeps the Cassandra rows as they are: no de-duplication, and the
    duration stays a rounded decimal (``1``, not ``1.0``)."""
    duplicated = [*_batch001_attempts(), _batch001_attempts()[2]]
    header, rows, _ = _v2(attempts=duplicated, archived=None)
    assert [r["User UUID"] for r in rows] == ["user-001"] * 4 + ["user-002", "user-003", "user-003"]
    cells = _csv_cells(header, rows)
    assert [c["Question Duration"] for c in cells[:4]] == ["1", "1", "2", "12"]
    assert {c["Attempted On"] for c in cells[:4]} == {"2021-07-15 11:00:00"}
    assert read_archive(_archive_texts("batch-004", "do_112835334818643968148")) is None


def test_archive_without_rows_still_unions() -> None:
    """A readable archive with no rows: the union happens (durations are doubles) and so does
    the de-duplication."""
    duplicated = [*_batch001_attempts(), _batch001_attempts()[2]]
    header, rows, _ = _v2(attempts=duplicated, archived=read_archive([HEADER]))
    assert [r["User UUID"] for r in rows] == ["user-001"] * 4 + ["user-002", "user-003"]
    assert [c["Question Duration"] for c in _csv_cells(header, rows)[:4]] == [
        "1.0",
        "1.0",
        "2.0",
        "12.0",
    ]


# --- values -----------------------------------------------------------------------------------


def test_archived_question_values() -> None:
    """Archived maps keep their own entry order; a missing list reads ``null``; a null element
    is a row without a question; durations are rounded doubles."""
    document = [
        _question_json("q1", params=[{"b": "2", "a": "1"}], duration=2.5),
        {"id": "q2", "score": 0.5},
        None,
    ]
    archived = parse_archived_attempts(
        HEADER + "\n" + _archived("user-004", "a", _csv_quoted(document))
    )
    _, rows, _ = _v2(attempts=[], archived=archived, content_names={CONTENT: ["Quiz"]})
    assert [r["Question Id"] for r in rows] == ["q1", "q2", ""]
    assert rows[0]["Question Options"] == "[{'b':'2','a':'1'}]"
    assert sanitised_json([{"b": "2", "a": "1"}]) == "[{'a':'1','b':'2'}]"  # Cassandra order
    assert rows[0]["Question Duration"] == 3.0
    assert rows[0]["QuestionSet Title"] == "Quiz"
    second = rows[1]
    assert (
        second["Question Duration"],
        second["Question Score"],
        second["Question Max Score"],
    ) == (
        0.0,
        0.5,
        0.0,
    )
    assert second["Question Options"] == second["Question Response"] == "null"
    assert second["Question Type"] == ""
    third = rows[2]
    assert (third["Question Duration"], third["Question Score"]) == (None, None)


def test_attempted_on_is_the_string_cast() -> None:
    moment = datetime(2021, 7, 15, 5, 30, 0, 500000, tzinfo=UTC)
    assert timestamp_string(moment, "Asia/Kolkata") == "2021-07-15 11:00:00.5"
    assert timestamp_string(moment.replace(microsecond=123000), "UTC") == "2021-07-15 05:30:00.123"
    assert timestamp_string(moment.replace(microsecond=0, tzinfo=None), "UTC") == (
        "2021-07-15 05:30:00"
    )
    attempts = [replace(_batch001_attempts()[0], last_attempted_on=moment)]
    _, rows, _ = _v2(attempts=attempts, archived=[], ctx=ReportContext(zone="UTC"))
    assert {r["Attempted On"] for r in rows} == {"2021-07-15 05:30:00.5"}


# --- V1 is unaffected -------------------------------------------------------------------------


def test_v1_unaffected() -> None:
    """``response_rows`` keeps V1's behaviour: any batch's attempts of the course, Spark CSV
    timestamps, decimal durations, Cassandra map order."""
    header, rows, _ = response_rows(
        batch("batch-001"),
        ENROLMENTS,
        user_cache("response"),
        ATTEMPTS,
        None,
        CTX,
        content_names={CONTENT: ["Test"]},
    )
    assert len(rows) == 6
    first = rows[0]
    assert first["Attempted On"] == "2021-07-15T11:00:00.000+05:30"
    assert [r["Question Duration"] for r in rows[:4]] == [1, 1, 2, 12]
    assert all(type(r["Question Duration"]) is int for r in rows[:4])
    v1 = CASES["v1"]["commented_out_expectations_user-001"]
    assert [c["Question Duration"] for c in _csv_cells(header, rows[:4])] == v1["Question Duration"]
    assert sanitised_json([{"b": "2", "a": "1"}]) == "[{'a':'1','b':'2'}]"
