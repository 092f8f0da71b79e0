"""response-exhaust V2 rows (ResponseExhaustJobV2, B6.3, B10.3; docs/flows/response-exhaust.md):
Cassandra attempts of the batch plus the archived attempts, de-duplicated, joined on user,
course and batch."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import pytest

from lernflow.reports.csvout import to_csv
from lernflow.reports.model import Attempt, Batch, BatchFailed, ReportContext
from lernflow.reports.response import (
    ARCHIVE_COLUMNS,
    COLUMNS_ORDER,
    ArchiveReadError,
    archive_glob,
    parse_archived_attempts,
    read_archive,
    response_rows,
    response_rows_v2,
    round_double,
    sanitised_json,
    timestamp_string,
)
from tests.unit.test_reports_fixture_rows import (
    ATTEMPTED_ON,
    ATTEMPTS,
    CHANNEL,
    COURSE,
    ENROLMENTS,
    FX,
    QUESTIONS,
    QUIZ,
    QUIZ_2,
    batch,
    user_cache,
)

CTX = ReportContext()
CONTENT = QUIZ
FILE_PATH = "archival/"  # the archive store's root, relative to tests/data/reports
HEADER = ",".join(ARCHIVE_COLUMNS)
OPTIONS_0 = "[{'1':'{'text':'omega t'}'},{'2':'{'text':'yes'}'},{'answer':'{'correct':['1']}'}]"
RESPONSE_0 = "[{'1':'{'text':'omega t'}'}]"


# --- test inputs ------------------------------------------------------------------------------


def _fixture_archive_paths() -> dict[str, str]:
    """Blob path (relative to tests/data/reports) -> file, for every archived file we hold."""
    return {
        path.relative_to(FX).as_posix(): path.relative_to(FX).as_posix()
        for path in sorted((FX / "archival").rglob("*.csv"))
    }


def _archive_texts(batch_id: str, collection_id: str) -> list[str]:
    """The archived files the V2 glob matches, in listing order."""
    pattern = archive_glob(batch_id, collection_id, FILE_PATH)
    return [
        (FX / name).read_text()
        for blob, name in _fixture_archive_paths().items()
        if PurePosixPath(blob).match(pattern)
    ]


def _v2_search() -> list[dict[str, Any]]:
    """The V2 tests' content search answer (the same for every search call)."""
    document = json.loads((FX / "content_search_v2.json").read_text())
    return [
        item
        for key, items in document["result"].items()
        if key.lower() != "count"
        for item in items
    ]


def _v2_batch() -> Batch:
    """bt-101 as B4.3 resolves it with the V2 search answer ("Pond Quiz Course")."""
    collection = next(item for item in _v2_search() if item["identifier"] == COURSE)
    return Batch(
        batch_id="bt-101",
        collection_id=COURSE,
        batch_name="Dawn Cohort",
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
    """``assessment_aggregator WHERE batch_id = 'bt-101'``."""
    return [a for a in ATTEMPTS if a.batch_id == "bt-101"]


def _v2(**kw: Any) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    archived = (
        kw.pop("archived") if "archived" in kw else read_archive(_archive_texts("bt-101", COURSE))
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
        "batch_id": "bt-101",
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
    assert archive_glob("bt-101", COURSE) == f"archival-data/bt-101_{COURSE}/*-*-*.csv"
    assert (
        archive_glob("b", "c", "src/test/resources/exhaust/data-archival/", "csv.gz")
        == "src/test/resources/exhaust/data-archival/b_c/*-*-*.csv.gz"
    )


def test_the_glob_picks_the_batch_folder_only() -> None:
    """The flat ``bt-101-*.csv``/``bt-104-*.csv`` files are not in the V2 layout."""
    pattern = archive_glob("bt-101", COURSE, FILE_PATH)
    matched = [
        name
        for blob, name in _fixture_archive_paths().items()
        if PurePosixPath(blob).match(pattern)
    ]
    assert matched == [
        f"archival/bt-101_{COURSE}/2022-06-1644400000000.csv",
        f"archival/bt-101_{COURSE}/2022-07-1645000000000.csv",
    ]
    assert len(_fixture_archive_paths()) == 4
    assert _archive_texts("bt-104", "lf-course-7004") == []


# --- parsing an archived file -----------------------------------------------------------------


def test_parse_the_fixture_archive() -> None:
    first, second = _archive_texts("bt-101", COURSE)
    rows = parse_archived_attempts(first)
    assert [(a.user_id, a.attempt_id, a.content_id, len(a.question)) for a in rows] == [
        ("lrn-201", "att-x1", CONTENT, 4),
        ("lrn-202", "att-1", CONTENT, 3),
        ("lrn-203", "att-1", QUIZ_2, 0),
    ]
    user1 = rows[0]
    assert (user1.course_id, user1.batch_id, user1.grand_total) == (COURSE, "bt-101", "19")
    assert (user1.total_score, user1.total_max_score) == (19.0, 19.0)
    assert user1.last_attempted_on is None  # the archiver's "null"
    assert [q["id"] for q in user1.question] == [q["id"] for q in QUESTIONS]
    assert [q["duration"] for q in user1.question] == [3.0, 2.0, 4.5, 14.0]
    assert all(isinstance(q["duration"], float) for q in user1.question)
    assert [q["score"] for q in user1.question] == [1.0, 1.0, 0.25, 10.0]
    # CSV escapes undone, then JSON: the map value is the text the archiver serialised (here
    # with a real line break)
    assert user1.question[0]["params"][1] == {"2": '{"text":"yes\n"}'}
    user2 = rows[1].question[0]
    assert user2["id"] == "lf-q-9201"
    assert user2["params"][0] == {"1": r'{"text":"A. Tadpole\n"}'}
    assert user2["duration"] == 9.0  # 9.000000000000000000
    assert user2["assess_ts"] == "2022-02-07T10:20:30.400Z"
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
        ("lrn-208", "lf-course-7006"),
        ("lrn-210", "lf-course-7006"),
    ]
    assert {a.last_attempted_on for a in later} == {ATTEMPTED_ON}  # 1644345900000 ms


def test_archive_csv_dialect() -> None:
    """Spark's reader: ``\\"`` and ``\\\\`` unescaped inside quotes, other backslashes kept,
    empty (quoted or not) is null, short records padded, extra values dropped, blank lines
    skipped, columns by header name (any order, any case)."""
    columns = list(reversed(ARCHIVE_COLUMNS))  # question, grand_total, ..., content_id
    header = ",".join(name.upper() for name in columns)
    values = {
        "user_id": "lrn-201",
        "course_id": COURSE,
        "batch_id": "bt-101",
        "attempt_id": '"a\\"b\\\\c\\d"',
        "content_id": '""',
        "grand_total": '"x"y',
        "question": "[]",
    }
    full = ",".join(values.get(name, "") for name in columns)
    short = ",".join(["[]", *[""] * 6, "bt-101", COURSE, "lrn-202"])  # no attempt/content
    no_user = ",".join(["[]", *[""] * 6, "bt-101", COURSE])
    long = full + ",surplus,values"
    text = f"{header}\r\n\r\n{full}\r{short}\n{no_user}\n\n{long}"
    first, second, third = parse_archived_attempts(text)
    assert first.attempt_id == 'a"b\\c\\d'
    assert first.content_id == ""  # null
    assert first.grand_total == "xy"  # text after the closing quote stays
    assert first.total_score is None
    assert first.question == []
    assert (second.user_id, second.attempt_id, second.content_id) == ("lrn-202", "", "")
    assert third == first  # the row without user_id (it cannot join anyone) is left out


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        ",".join(ARCHIVE_COLUMNS[:-1]),
        HEADER + ",extra",
        HEADER.replace("question", "questions"),
        HEADER.replace("content_id", ""),
    ],
)
def test_archive_with_other_columns_cannot_be_read(text: str) -> None:
    with pytest.raises(ArchiveReadError):
        parse_archived_attempts(text)
    assert read_archive([text]) is None
    assert read_archive([HEADER, text]) is None


def test_read_archive() -> None:
    assert read_archive([]) is None  # no file matches the glob: Path does not exist
    assert read_archive([HEADER]) == []  # files without rows still union
    texts = _archive_texts("bt-101", COURSE)
    archive = read_archive(texts)
    assert archive is not None
    assert [a.user_id for a in archive] == ["lrn-201", "lrn-202", "lrn-203", "lrn-208", "lrn-210"]


def test_last_attempted_on_is_from_unixtime_of_ms() -> None:
    def attempted(ms: str) -> datetime | None:
        (row,) = parse_archived_attempts(
            HEADER + "\n" + _archived("u", "a", "[]", last_attempted_on=ms)
        )
        return row.last_attempted_on

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert attempted("1644345900999") == datetime(2022, 2, 8, 18, 45, tzinfo=UTC)  # truncated
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
    """B10.3 V2 "generate final output as csv and zip files" (16 rows upstream), for bt-101:
    lrn-201's 4 questions (Cassandra ``att-x1``, the archived copy de-duplicated), lrn-202's
    Cassandra attempt without questions plus the 3 archived questions, lrn-203's attempt
    without questions (in both, one row): 9 rows. lrn-204 has no attempt; the archived
    lrn-208/lrn-210 rows are of another course."""
    header, rows, dropped = _v2()
    assert header == list(COLUMNS_ORDER)
    assert dropped == []
    assert len(rows) == 9
    per_user = {
        u: sum(r["User UUID"] == u for r in rows) for u in ("lrn-201", "lrn-202", "lrn-203")
    }
    assert per_user == {"lrn-201": 4, "lrn-202": 4, "lrn-203": 1}
    assert {r["Collection Id"] for r in rows} == {COURSE}
    assert {r["Collection Name"] for r in rows} == {"Pond Quiz Course"}
    assert {r["Batch Id"] for r in rows} == {"BatchId_bt-101"}
    assert {r["Batch Name"] for r in rows} == {"Dawn Cohort"}
    # the search answer only knows the course: no question set has a title
    assert {r["QuestionSet Title"] for r in rows} == {""}

    cells = [c for c in _csv_cells(header, rows) if c["User UUID"] == "lrn-201"]
    assert {c["Collection Id"] for c in cells} == {COURSE}
    assert {c["Batch Id"] for c in cells} == {"BatchId_bt-101"}
    assert {c["Attempt Id"] for c in cells} == {"att-x1"}
    assert {c["QuestionSet Id"] for c in cells} <= {QUIZ, QUIZ_2}
    expected = {
        "Question Id": ["lf-q-9101", "lf-q-9102", "lf-q-9103", "lf-q-9104"],
        "Question Type": ["mcq", "mcq", "mtf", "mcq"],
        "Question Duration": ["3.0", "2.0", "5.0", "14.0"],  # doubles, 4.5 rounds half up
        "Question Score": ["1.0", "1.0", "0.25", "10.0"],
        "Question Max Score": ["1.0", "1.0", "1.0", "10.0"],
    }
    for column, values in expected.items():
        assert [c[column] for c in cells] == values, column
    assert cells[0]["Question Options"] == OPTIONS_0
    assert cells[0]["Question Response"] == RESPONSE_0
    assert "Pond quiz" in {c["Question Description"] for c in cells}
    assert {c["Question Title"] for c in cells} & {"Wave phase", "Root of two"}


def test_v2_upstream_case_rows_in_detail() -> None:
    """[derived] Attempted On is the string cast (IST session zone here: 18:45 UTC is 00:15 the
    next day); lrn-202's rows are its Cassandra attempt (no question) then the archived
    questions in archive order."""
    header, rows, _ = _v2()
    user1 = [r for r in rows if r["User UUID"] == "lrn-201"]
    assert {r["Attempted On"] for r in user1} == {"2022-02-09 00:15:00"}
    user2 = [r for r in rows if r["User UUID"] == "lrn-202"]
    archived = parse_archived_attempts(_archive_texts("bt-101", COURSE)[0])[1]
    assert [r["Question Id"] for r in user2] == ["", *(q["id"] for q in archived.question)]
    assert [r["Question Id"] for r in user2] == ["", "lf-q-9201", "lf-q-9202", "lf-q-9203"]
    assert user2[0]["Question Options"] == user2[0]["Question Response"] == "null"
    assert user2[0]["Question Duration"] is None
    assert [r["Question Duration"] for r in user2[1:]] == [9.0, 5.0, 7.0]  # 6.5 half up
    assert user2[1]["Question Options"] == (
        "[{'1':'{'text':'A. Tadpole'}'},{'2':'{'text':'B.\u00a0Frog'}'},"
        "{'answer':'{'correct':['1']}'}]"
    )
    assert {r["Attempted On"] for r in user2} == {None}
    lines = to_csv(header, rows).decode().splitlines()
    assert lines[1] == (
        "lf-course-7001,Pond Quiz Course,BatchId_bt-101,Dawn Cohort,lrn-201,"
        'lf-quiz-8001,"",att-x1,2022-02-09 00:15:00,'
        "lf-q-9101,mcq,Wave phase,Pond quiz,3.0,1.0,1.0,"
        f'"{OPTIONS_0}",{RESPONSE_0}'
    )
    assert lines[-1] == (
        "lf-course-7001,Pond Quiz Course,BatchId_bt-101,Dawn Cohort,lrn-203,"
        'lf-quiz-8002,"",att-1,,"","","","",,,,null,null'
    )


def test_the_archival_cql_would_give_twenty_rows() -> None:
    """Upstream's second CQL file stores the first learner's attempt under another attempt id
    than the archive (20 rows instead of 16): attempts that differ in attempt id are not
    duplicates. Here: Cassandra holds lrn-201's attempt as ``att-x2``, the archive as
    ``att-x1``, so both sets of 4 questions are reported (13 rows instead of 9)."""
    renamed = [
        replace(ATTEMPTS[0], attempt_id="att-x2", last_attempted_on=None),
        *_batch001_attempts()[1:3],
    ]
    _, rows, _ = _v2(attempts=renamed)
    assert len(rows) == 13
    assert {r["Attempt Id"] for r in rows if r["User UUID"] == "lrn-201"} == {"att-x1", "att-x2"}
    assert len(_v2()[1]) == 9  # with the same attempt id, the archived copy is a duplicate


# --- union and de-duplication -----------------------------------------------------------------


def test_cassandra_rows_win_duplicates_in_the_fixture() -> None:
    """lrn-201's Cassandra and archived questions share their keys: the Cassandra values
    (descriptions, Attempted On) are the ones reported."""
    _, rows, _ = _v2()
    user1 = [r for r in rows if r["User UUID"] == "lrn-201"]
    assert [r["Question Description"] for r in user1] == [q["description"] for q in QUESTIONS]
    archived = parse_archived_attempts(_archive_texts("bt-101", COURSE)[0])[0]
    assert [q["description"] for q in archived.question] != [q["description"] for q in QUESTIONS]


def test_drop_duplicates_key() -> None:
    """``dropDuplicates(course_id, batch_id, user_id, attempt_id, questionid)``: no content id in
    the key, null question ids equal each other, the first row (Cassandra's) wins; it also
    applies among the Cassandra rows and among the archived ones."""
    base = _batch001_attempts()[0]  # lrn-201, att-x1, 4 questions
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
                "lrn-201",
                "att-x1",
                _csv_quoted([_question_json(q1["id"], title="archived"), _question_json("q-new")]),
            ),
            _archived("lrn-201", "second", "[]"),  # same key as the Cassandra null question
            _archived("lrn-201", "third", _csv_quoted([_question_json("q3")])),
            _archived("lrn-201", "third", _csv_quoted([_question_json("q3", title="later")])),
        ]
    )
    _, rows, _ = _v2(attempts=cassandra, archived=parse_archived_attempts(archive_text))
    assert [
        (r["QuestionSet Id"], r["Attempt Id"], r["Question Id"], r["Question Title"]) for r in rows
    ] == [
        (CONTENT, "att-x1", q1["id"], q1["title"]),
        ("other-content", "att-x1", q2["id"], q2["title"]),
        (CONTENT, "second", "", ""),
        (CONTENT, "att-x1", "q-new", "title q-new"),
        (CONTENT, "third", "q3", "title q3"),
    ]


def test_v2_joins_on_batch_too() -> None:
    """V1 reports attempts of another batch of the course (B9.13); V2 does not: the Cassandra
    read is ``WHERE batch_id`` and the join matches the batch."""
    stray = replace(_batch001_attempts()[2], batch_id="bt-106", attempt_id="from-106")
    archived_stray = parse_archived_attempts(
        HEADER + "\n" + _archived("lrn-203", "archived-106", "[]", batch_id="bt-106")
    )
    _, rows, _ = _v2(attempts=[stray], archived=archived_stray, content_names={})
    assert rows == []
    _, v1_rows, _ = response_rows(
        batch("bt-101"), ENROLMENTS, user_cache("response"), [stray], None, CTX, content_names={}
    )
    assert [r["Attempt Id"] for r in v1_rows] == ["from-106"]


def test_archived_rows_of_unknown_or_uncached_learners() -> None:
    users = {k: v for k, v in user_cache("response").items() if k != "lrn-202"}
    _, rows, dropped = _v2(users=users)
    assert dropped == ["lrn-202"]
    assert "lrn-202" not in {r["User UUID"] for r in rows}
    assert len(rows) == 5  # lrn-201's 4 and lrn-203's 1


# --- archive read failure ---------------------------------------------------------------------


def test_archive_read_failure_reports_cassandra_rows_only() -> None:
    """Sunbird catches the failed read (e.g. no file for the batch: the upstream "blob does not
    has any data" case) and keeps the Cassandra rows as they are: no de-duplication, and the
    duration stays a rounded decimal (``1``, not ``1.0``)."""
    duplicated = [*_batch001_attempts(), _batch001_attempts()[2]]
    header, rows, _ = _v2(attempts=duplicated, archived=None)
    assert [r["User UUID"] for r in rows] == ["lrn-201"] * 4 + ["lrn-202", "lrn-203", "lrn-203"]
    cells = _csv_cells(header, rows)
    assert [c["Question Duration"] for c in cells[:4]] == ["3", "2", "5", "14"]
    assert {c["Attempted On"] for c in cells[:4]} == {"2022-02-09 00:15:00"}
    assert read_archive(_archive_texts("bt-104", "lf-course-7004")) is None


def test_archive_without_rows_still_unions() -> None:
    """A readable archive with no rows: the union happens (durations are doubles) and so does
    the de-duplication."""
    duplicated = [*_batch001_attempts(), _batch001_attempts()[2]]
    header, rows, _ = _v2(attempts=duplicated, archived=read_archive([HEADER]))
    assert [r["User UUID"] for r in rows] == ["lrn-201"] * 4 + ["lrn-202", "lrn-203"]
    assert [c["Question Duration"] for c in _csv_cells(header, rows)[:4]] == [
        "3.0",
        "2.0",
        "5.0",
        "14.0",
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
        HEADER + "\n" + _archived("lrn-204", "a", _csv_quoted(document))
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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.5, 3.0),
        (-2.5, -3.0),
        (0.49999999999999994, 0.0),
        (12.0, 12.0),
        (1e300, 1e300),
        (math.inf, math.inf),
        (7, 7.0),
        (Decimal("1.5"), 2.0),
        (None, None),
    ],
)
def test_round_double(value: Any, expected: float | None) -> None:
    assert round_double(value) == expected


def test_round_double_has_no_negative_zero() -> None:
    for value in (-0.4, -0.0):
        rounded = round_double(value)
        assert rounded == 0.0
        assert rounded is not None
        assert math.copysign(1.0, rounded) == 1.0
    nan = round_double(math.nan)
    assert nan is not None
    assert math.isnan(nan)


# --- V1 is unaffected -------------------------------------------------------------------------


def test_v1_unaffected() -> None:
    """``response_rows`` keeps V1's behaviour: any batch's attempts of the course, Spark CSV
    timestamps, decimal durations, Cassandra map order."""
    header, rows, _ = response_rows(
        batch("bt-101"),
        ENROLMENTS,
        user_cache("response"),
        ATTEMPTS,
        None,
        CTX,
        content_names={CONTENT: ["Frog Quiz"]},
    )
    assert len(rows) == 6
    first = rows[0]
    assert first["Attempted On"] == "2022-02-09T00:15:00.000+05:30"
    assert [r["Question Duration"] for r in rows[:4]] == [3, 2, 5, 14]
    assert all(type(r["Question Duration"]) is int for r in rows[:4])
    assert [c["Question Duration"] for c in _csv_cells(header, rows[:4])] == ["3", "2", "5", "14"]
    assert sanitised_json([{"b": "2", "a": "1"}]) == "[{'a':'1','b':'2'}]"
