"""Report CSV dialect (spec B8.2: Spark 3.2 + univocity) and file naming (B4.4 step 4, B8.1)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from hypothesis import strategies as st

from lernflow.reports.csvout import report_path
from tests.conformance.conftest import SUNBIRD_FIXTURES

CASES = json.loads((SUNBIRD_FIXTURES / "reports" / "test_cases_progress_exhaust.json").read_text())


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


_TEXT = st.text(st.characters(exclude_characters="\\\x00", exclude_categories=["Cs"]))


# --- names and paths --------------------------------------------------------------------------


def test_report_path_b10() -> None:
    """B10.1 "validate the report path" (on demand and standalone)."""
    expected = next(c for c in CASES["cases"] if c["name"] == "validate the report path")[
        "expected"
    ]
    now = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
    on_demand = report_path(
        "", "progress-exhaust", "37564CF8F134EE7532F125651B51D17F", "batch-001", "progress", now
    )
    standalone = report_path("", "progress-exhaust", None, "batch-001", "progress", now)
    assert on_demand == expected["on_demand"].replace("<yyyyMMdd>", "20240101") + ".csv"
    assert standalone == expected["standalone"].replace("<yyyyMMdd>", "20240101") + ".csv"
    assert report_path("", "progress-exhaust", "", "batch-001", "progress", now) == standalone
