"""Report CSV dialect (B8.2: Spark 3.2 + univocity) and file naming (B4.4 step 4, B8.1).

Rules: docs/flows/progress-exhaust.md. Case ids (B10.1, ...) name the upstream case each test
states with our own data.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lernflow.kernel.java import java_double_to_string
from lernflow.reports.csvout import csv_line, report_file_name, report_path, to_csv

REQUEST_ID = "9F2C61D0A7B34E58B1C4D2E6F8A01B37"


def _trimmed(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _read(data: bytes) -> list[list[str]]:
    text = io.StringIO(data.decode("utf-8"), newline="")
    return list(csv.reader(text, escapechar="\\", doublequote=False))


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("", '""'),  # empty string
        (None, ""),  # null
        ("   ", '""'),  # whitespace only: trimmed to empty
        ("  a b  ", "a b"),  # trimmed both ends
        ("a,b", '"a,b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ('"', '"\\""'),
        ("C:\\dir", "C:\\dir"),  # unquoted: the backslash is written as is
        ("C:\\dir, x", '"C:\\\\dir, x"'),  # quoted: the backslash is escaped
        ("a\nb", '"a\nb"'),
        ("a\rb", '"a\rb"'),
        ("abc\n", '"abc"'),  # a trailing newline triggers quoting, then is trimmed
        ("\nabc", "abc"),  # a leading one is skipped before the check
        ("x\t", "x"),
        ("#tag", "#tag"),  # only the first column is quoted for '#'
        ("a'b", "a'b"),
        ("ünï", "ünï"),
        (True, "true"),
        (100, "100"),
        (1.0, "1.0"),
        (0.33, "0.33"),
        (1e7, "1.0E7"),
        (Decimal("12"), "12"),
    ],
)
def test_field_rendering(value: Any, written: str) -> None:
    assert csv_line(["first", value]) == "first," + written


def test_first_column_comment_character_is_quoted() -> None:
    assert csv_line(["#tag", "#tag"]) == '"#tag",#tag'
    assert csv_line([" #tag"]) == "#tag"


def test_header_always_and_newline_after_each_record() -> None:
    assert to_csv(["A", "B"], []) == b"A,B\n"
    assert to_csv(["A", "B"], [{"A": "1"}, {"B": ""}]) == b'A,B\n1,\n,""\n'


def test_single_null_column_record_is_skipped() -> None:
    """univocity skips a record that renders empty (skipEmptyLines)."""
    assert to_csv(["A"], [{"A": None}, {"A": ""}]) == b'A\n""\n'


def test_unsupported_values_are_rejected() -> None:
    with pytest.raises(TypeError):
        to_csv(["A"], [{"A": datetime(2020, 1, 1, tzinfo=UTC)}])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (10.0, "10.0"),
        (0.33, "0.33"),
        (100.0, "100.0"),
        (1234567.0, "1234567.0"),
        (9999999.0, "9999999.0"),
        (1e7, "1.0E7"),
        (12345678.9, "1.23456789E7"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (-2.5e-5, "-2.5E-5"),
        (1e21, "1.0E21"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_java_double(value: float, text: str) -> None:
    assert java_double_to_string(value) == text


_TEXT = st.text(st.characters(exclude_characters="\\\x00", exclude_categories=["Cs"]))


@given(st.lists(_TEXT, min_size=2, max_size=6))
def test_any_row_of_strings_round_trips_to_the_trimmed_values(row: list[str]) -> None:
    """Read back with Python's csv reader (backslash escapes), every value is the trimmed value."""
    header = [f"c{i}" for i in range(len(row))]
    # Sunbird's dialect: formula neutralising (tests/unit/test_reports_safety.py) off
    data = to_csv(header, [dict(zip(header, row, strict=True))], neutralise=False)
    assert _read(data) == [header, [_trimmed(v) for v in row]]


@given(st.lists(_TEXT.map(lambda text: text + "\\, \\"), min_size=1, max_size=4))
def test_backslashes_in_quoted_values_round_trip(row: list[str]) -> None:
    """Values that get quoted (here: they contain a comma) escape their backslashes."""
    header = [f"c{i}" for i in range(len(row))] + ["last"]
    values = [*row, "x"]
    data = to_csv(header, [dict(zip(header, values, strict=True))], neutralise=False)
    assert _read(data)[1] == [_trimmed(v) for v in values]


# --- names and paths --------------------------------------------------------------------------


def test_report_path_b10() -> None:
    """B10.1 "validate the report path" (on demand and standalone): on demand the request id
    is a folder under the job id; standalone there is none; the date is the IST report date."""
    now = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
    on_demand = report_path("", "progress-exhaust", REQUEST_ID, "bt-101", "progress", now)
    standalone = report_path("", "progress-exhaust", None, "bt-101", "progress", now)
    assert on_demand == f"progress-exhaust/{REQUEST_ID}/bt-101_progress_20240101.csv"
    assert standalone == "progress-exhaust/bt-101_progress_20240101.csv"
    assert report_path("", "progress-exhaust", "", "bt-101", "progress", now) == standalone


def test_report_path_uses_the_ist_date_and_a_verbatim_prefix() -> None:
    evening_utc = datetime(2024, 1, 1, 19, 0, tzinfo=UTC)  # 00:30 on the 2nd in IST
    assert report_path("reports/", "userinfo-exhaust", "R", "b", "userinfo", evening_utc) == (
        "reports/userinfo-exhaust/R/b_userinfo_20240102.csv"
    )
    naive_utc = datetime(2024, 1, 1, 18, 29)  # naive means UTC
    assert report_path("", "response-exhaust", "R", "b", "response", naive_utc).endswith(
        "_20240101.csv"
    )
    pacific = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-8)))
    assert report_path("", "progress-exhaust", None, "b", "progress", pacific) == (
        "progress-exhaust/b_progress_20240102.csv"
    )


def test_report_file_name() -> None:
    assert (
        report_file_name("bt-101", "progress", date(2021, 5, 9)) == "bt-101_progress_20210509.csv"
    )
    assert report_file_name("b", "k", date(999, 1, 2)) == "b_k_09990102.csv"
