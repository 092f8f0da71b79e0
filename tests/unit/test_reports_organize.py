"""Shared report helpers: organizeDF (B4.5), learner selection (B4.4), Spark value semantics
(docs/flows/progress-exhaust.md)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lernflow.reports.model import Batch, BatchFailed, Enrolment
from lernflow.reports.organize import (
    format_ddmmyyyy,
    organize,
    select_learners,
    spark_ceil,
    spark_divide,
    spark_string_to_date,
    spark_string_to_double,
    timestamp_csv,
    timestamp_ddmmyyyy,
    zone_info,
)

# --- organizeDF -------------------------------------------------------------------------------


def test_organize_prefixes_renames_orders_and_fills() -> None:
    header, rows = organize(
        [{"batchid": "b1", "userid": "u1", "n": None, "s": None, "extra": None, "z - Score": "9%"}],
        columns=["batchid", "userid", "n", "s", "z - Score", "extra"],
        mapping={"batchid": "Batch Id", "userid": "User UUID", "n": "Number", "s": "Text"},
        order=["User UUID", "Batch Id", "Text", "Number"],
        string_columns={"batchid", "userid", "s", "extra", "z - Score"},
    )
    assert header == ["User UUID", "Batch Id", "Text", "Number", "z - Score", "extra"]
    assert rows == [
        {
            "User UUID": "u1",
            "Batch Id": "BatchId_b1",
            "Text": "",
            "Number": None,  # not a string column: stays null
            "z - Score": "9%",
            "extra": "",
        }
    ]


def test_organize_removes_duplicate_names_and_fails_on_missing_fixed_columns() -> None:
    header, _ = organize([], ["a"], {"a": "A"}, ["A", "A"], ["a"])
    assert header == ["A"]
    with pytest.raises(BatchFailed, match=r"^cannot resolve 'B' given input columns: \[A\]$"):
        organize([], ["a"], {"a": "A"}, ["A", "B"], ["a"])


# --- select_learners (B4.4 steps 1-3) --------------------------------------------------------

BATCH = Batch("b1", "c1", "Batch", "Course", "org", "org")


def _enrolment(user: str, **kw: object) -> Enrolment:
    fields: dict[str, object] = {
        "batchid": "b1",
        "userid": user,
        "courseid": "c1",
        "active": True,
        "enrolleddate": "2020-01-01",
        "enrolled_date": None,
        "completedon": None,
    }
    fields.update(kw)
    return Enrolment(**fields)  # type: ignore[arg-type]


def test_select_learners() -> None:
    enrolments = [
        _enrolment("u1"),
        _enrolment("gone"),
        _enrolment("u2", active=False),
        _enrolment("gone"),
        _enrolment("u3", enrolleddate=None, enrolled_date=datetime(2020, 1, 1, tzinfo=UTC)),
        _enrolment("u4", courseid="c2"),
    ]
    users: dict[str, dict[str, str]] = {"u1": {}, "u2": {}, "u3": {}, "u4": {}}
    learners, dropped = select_learners(BATCH, enrolments, users)
    assert [learner.enrolment.userid for learner in learners] == ["u1", "u3"]
    assert dropped == ["gone"]


def test_select_learners_for_another_tenant() -> None:
    users = {"a": {"rootorgid": "state"}, "b": {"rootorgid": "org"}, "c": {}}
    foreign = Batch("b1", "c1", "Batch", "Course", "state", "org")
    learners, dropped = select_learners(
        foreign, [_enrolment(u) for u in ("a", "b", "c", "d")], users
    )
    assert [learner.enrolment.userid for learner in learners] == ["a"]
    assert dropped == ["d"]


# --- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-03 07:00:00:000+0000", (2021, 3, 3)),
        ("2019-11-13T05:41:50Z", (2019, 11, 13)),
        ("2019-11-13", (2019, 11, 13)),
        ("  2019-11-13\t", (2019, 11, 13)),
        ("2019-1-5", (2019, 1, 5)),
        ("2019-11", (2019, 11, 1)),
        ("2019", (2019, 1, 1)),
        ("+2019-11-13", (2019, 11, 13)),
        ("12019-01-01", (12019, 1, 1)),
        ("2020-02-29", (2020, 2, 29)),
        ("2019-02-29", None),
        ("2019-13-01", None),
        ("2019-00-10", None),
        ("2019-11-31", None),
        ("19-11-13", None),
        ("2019-011-13", None),
        ("2019/11/13", None),
        ("13/11/2019", None),
        ("2019-11-13x", None),
        ("2019-11-", None),
        ("2019 05:00", None),
        ("2019-11 05:00", None),
        ("", None),
        ("   ", None),
    ],
)
def test_spark_string_to_date(text: str, expected: tuple[int, int, int] | None) -> None:
    assert spark_string_to_date(text) == expected


def test_format_ddmmyyyy_years() -> None:
    assert format_ddmmyyyy(2019, 11, 3) == "03/11/2019"
    assert format_ddmmyyyy(999, 1, 2) == "02/01/0999"
    assert format_ddmmyyyy(12019, 1, 1) == "01/01/+12019"
    assert format_ddmmyyyy(-5, 1, 1) == "01/01/-0005"


def test_timestamp_dates_follow_the_zone() -> None:
    stamp = datetime(2019, 11, 15, 20, 0, tzinfo=UTC)
    assert timestamp_ddmmyyyy(stamp, "Asia/Kolkata") == "16/11/2019"
    assert timestamp_ddmmyyyy(stamp, "UTC") == "15/11/2019"
    assert timestamp_ddmmyyyy(stamp, "-05:00") == "15/11/2019"
    assert timestamp_ddmmyyyy(datetime(2019, 11, 15, 20, 0), "Asia/Kolkata") == "16/11/2019"


def test_timestamp_csv() -> None:
    stamp = datetime(2021, 7, 15, 5, 30, 0, 123987, tzinfo=UTC)
    assert timestamp_csv(stamp, "Asia/Kolkata") == "2021-07-15T11:00:00.123+05:30"
    assert timestamp_csv(stamp, "UTC") == "2021-07-15T05:30:00.123Z"
    assert timestamp_csv(stamp, "America/New_York") == "2021-07-15T01:30:00.123-04:00"
    assert timestamp_csv(datetime(1800, 1, 1, tzinfo=UTC), "Asia/Kolkata") == (
        "1800-01-01T05:53:28.000+05:53:28"  # local mean time of the zone has seconds
    )


def test_zone_info() -> None:
    assert zone_info("UTC") is UTC
    assert zone_info("+05:30") == timezone(timedelta(hours=5, minutes=30))
    assert zone_info("-01:15") == timezone(-timedelta(hours=1, minutes=15))


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20", 20.0),
        (" 2.5 ", 2.5),
        ("-1e3", -1000.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("7d", 7.0),
        ("7F", 7.0),
        ("0x1p3", 8.0),
        ("-0x1.8p1", -3.0),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("inf", math.inf),
        ("+INF", math.inf),
        ("-infinity", -math.inf),
        ("", None),
        ("abc", None),
        ("1_000", None),
        ("1,5", None),
        ("0x1", None),
        ("١٢", None),  # non-ASCII digits are not Java digits
    ],
)
def test_spark_string_to_double(text: str, expected: float | None) -> None:
    assert spark_string_to_double(text) == expected


def test_spark_string_to_double_nan() -> None:
    for text in ("NaN", "nan", "-NaN", " NAN "):
        value = spark_string_to_double(text)
        assert value is not None
        assert math.isnan(value)


def test_spark_divide_and_ceil() -> None:
    assert spark_divide(1.0, 0.0) is None
    assert spark_divide(1.0, -0.0) is None
    assert spark_divide(None, 1.0) is None
    assert spark_divide(1.0, None) is None
    assert spark_divide(1.0, 4.0) == 0.25
    assert spark_ceil(1.2) == 2
    assert spark_ceil(-1.2) == -1
    assert spark_ceil(math.nan) == 0
    assert spark_ceil(math.inf) == 2**63 - 1
    assert spark_ceil(-math.inf) == -(2**63)
    assert spark_ceil(1e300) == 2**63 - 1


@given(st.dates())
def test_plain_iso_dates_parse(day: object) -> None:
    text = str(day)
    year, month, date_ = (int(part) for part in text.split("-"))
    assert spark_string_to_date(text + " 00:00:00") == (year, month, date_)
