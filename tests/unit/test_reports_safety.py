"""Issue 15: report paths stay under their root (D5) and formula cells are neutralised (D6).

Beyond Sunbird: ids that are not Sunbird ids (letters, digits, ``_``, ``-``, ``.``; not ``.``
or ``..`` alone) never become path parts, every written path resolves inside the report root,
and text cells starting with ``= + - @`` (tab/CR are trimmed by the writer) get a leading
``'`` unless ``LERNFLOW_REPORTS_NEUTRALISE_FORMULAS`` is false.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lernflow.reports import jobs
from lernflow.reports.csvout import report_path, to_csv
from lernflow.reports.model import Enrolment
from lernflow.reports.packaging import exhaust_file_path
from lernflow.reports.requests import FAILED
from lernflow.reports.runner import run_batches
from lernflow.reports.sources import BatchRow
from tests.unit import test_reports_fixture_rows as world
from tests.unit.test_reports_requests import (
    NOW,
    MemoryRequests,
    MemoryStore,
    make_row,
    progress_run,
    report_settings,
)

BAD_IDS = ["../../x", "..", ".", "a/b", "a\\b", "/etc", "bt 101", "bt-101\n", ""]
GOOD_IDS = ["0126083288437637121", "batch-001", "37564CF8F134EE7532F125651B51D17F-2", "B_1.v2"]


class AnyBatchStore(MemoryStore):
    """A store that answers every requested batch id with bt-101's course and learners (as a
    course_batch row whose id is hostile would)."""

    def __init__(self, batch_name: str = "Heron batch") -> None:
        super().__init__("progress", "progress", "progress")
        self._batch_name = batch_name

    def batches(self, batch_ids: Iterable[str] | None = None) -> list[BatchRow]:
        course, _name = world.COURSE_BATCHES["bt-101"]
        return [BatchRow(course, b, self._batch_name) for b in batch_ids or []]

    def enrolments(self, batch_id: str) -> list[Enrolment]:
        return super().enrolments("bt-101")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- D5: ids and paths --------------------------------------------------------------------


@pytest.mark.parametrize("bad", [b for b in BAD_IDS if b])
def test_naming_functions_refuse_ids_that_are_not_sunbird_ids(bad: str) -> None:
    from lernflow.reports.paths import UnsafeIdError

    with pytest.raises(UnsafeIdError):
        report_path("", "progress-exhaust", "R", bad, "progress", NOW)
    with pytest.raises(UnsafeIdError):
        report_path("", "progress-exhaust", bad, "bt-101", "progress", NOW)
    with pytest.raises(UnsafeIdError):
        exhaust_file_path("progress-exhaust/", bad, "progress", "R", NOW)
    with pytest.raises(UnsafeIdError):
        exhaust_file_path("progress-exhaust/", "bt-101", "progress", bad, NOW)


@pytest.mark.parametrize("good", GOOD_IDS)
def test_real_sunbird_ids_are_accepted(good: str) -> None:
    from lernflow.reports.paths import is_safe_id

    assert is_safe_id(good)
    assert report_path("", "progress-exhaust", good, good, "progress", NOW).startswith(
        f"progress-exhaust/{good}/{good}_progress_"
    )


def test_under_root_refuses_paths_that_resolve_outside(tmp_path: Path) -> None:
    from lernflow.reports.paths import UnsafePathError, under_root

    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    assert under_root(root, "progress-exhaust/r/b.csv") == root / "progress-exhaust/r/b.csv"
    for escaping in ("../x.csv", "a/../../x.csv", "/tmp/x.csv", "link/x.csv", "."):
        with pytest.raises(UnsafePathError):
            under_root(root, escaping)


def test_run_batches_refuses_a_hostile_batch_id_before_writing(tmp_path: Path) -> None:
    from lernflow.reports.paths import UnsafeIdError

    out = tmp_path / "out"
    settings = report_settings(out)
    with pytest.raises(UnsafeIdError, match=r"--batch-id"):
        run_batches(settings, "progress-exhaust", ["../../escaped"], out, store=AnyBatchStore())
    assert _files(tmp_path) == []


def test_cli_hostile_batch_id_is_a_usage_error_naming_option_and_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lernflow import cli
    from lernflow.reports import runner

    monkeypatch.setattr(runner, "ReportStore", lambda *_a, **_k: _OwnedStore())
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli.app,
        ["report", "progress-exhaust", "--batch-id", "../../escaped", "--out", str(out)],
    )
    assert res.exit_code == 2, res.output
    assert "--batch-id" in res.output
    assert "../../escaped" in res.output
    assert _files(tmp_path) == []


class _OwnedStore(AnyBatchStore):
    """An :class:`AnyBatchStore` that the runner may close (it created it)."""

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"request_data": {"batchId": "../../../escaped"}}, "batchId"),
        ({"request_data": {"batchFilter": ["bt-101", "../../../escaped"]}}, "batchFilter"),
        ({"request_id": "../../escaped"}, "request_id"),
    ],
)
def test_job_request_with_a_hostile_id_fails_and_writes_nothing_outside(
    tmp_path: Path, spec: dict[str, object], field: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    row = make_row("progress-exhaust", **spec)
    table = MemoryRequests([row])
    done = jobs.run_job(
        report_settings(out), "progress-exhaust", out, NOW.replace(tzinfo=None),
        requests=table, store=AnyBatchStore(),
    )  # fmt: skip
    [final] = done.requests
    assert final.status == FAILED
    assert field in (final.err_message or "")
    assert final.download_urls == []
    assert [f for f in _files(tmp_path) if not f.startswith("out/")] == []
    assert _files(out) == []


def test_a_good_request_still_writes_under_the_root(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = progress_run([make_row("progress-exhaust")], out)
    [final] = run.final.values()
    assert final.status == "SUCCESS", final.err_message
    assert all(f.startswith("out/progress-exhaust/") for f in _files(tmp_path))


# --- D6: formula cells ----------------------------------------------------------------------

HEADER = ["name", "score", "ratio", "amount", "text_number"]


def _cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))[1:]


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x","y")', b'"\'=HYPERLINK(\\"http://x\\",\\"y\\")"'),
        ("+cmd|' /C calc'!A0", b"'+cmd|' /C calc'!A0"),
        ("-2+3+cmd", b"'-2+3+cmd"),
        ("@SUM(A1:A9)", b"'@SUM(A1:A9)"),
        ("\t=1+1", b"'=1+1"),
        ("\r=1+1", b"'=1+1"),
        ("  -district", b"'-district"),
        ("-", b"'-"),
        ("#-x", b'"#-x"'),
        ("Heron school", b"Heron school"),
        ("a=b", b"a=b"),
    ],
)
def test_text_cells_that_start_a_formula_are_neutralised(cell: str, written: bytes) -> None:
    assert to_csv(["name"], [{"name": cell}]) == b"name\n" + written + b"\n"


def test_numbers_are_never_touched() -> None:
    row = {"name": "-5", "score": -5, "ratio": -0.5, "amount": Decimal("-1.25"),
           "text_number": "+1.5E3"}  # fmt: skip
    assert _cells(to_csv(HEADER, [row])) == [["-5", "-5", "-0.5", "-1.25", "+1.5E3"]]


def test_neutralise_false_writes_sunbirds_bytes() -> None:
    rows: list[dict[str, object]] = [
        {"name": "=1+1", "score": -5},
        {"name": "@x", "text_number": "\t-y"},
    ]
    assert to_csv(HEADER, rows, neutralise=False) == (
        b"name,score,ratio,amount,text_number\n=1+1,-5,,,\n@x,,,,-y\n"
    )


def _progress_with_batch_name(tmp_path: Path, name: str, *, neutralise: bool) -> list[str]:
    base = report_settings(tmp_path)
    settings = base.with_overrides(
        reports=base.reports.model_copy(update={"neutralise_formulas": neutralise})
    )
    [res] = run_batches(
        settings, "progress-exhaust", ["bt-101"], tmp_path, store=AnyBatchStore(name), now=NOW
    )
    assert res.path is not None, res.error
    rows = list(csv.reader(io.StringIO(res.path.read_text())))
    column = rows[0].index("Batch Name")
    return [r[column] for r in rows[1:]]


def test_report_batch_name_formula_is_neutralised_by_default(tmp_path: Path) -> None:
    names = _progress_with_batch_name(tmp_path, "=cmd|' /C calc'!A0", neutralise=True)
    assert names and set(names) == {"'=cmd|' /C calc'!A0"}


def test_setting_off_keeps_the_cell_as_sunbird_writes_it(tmp_path: Path) -> None:
    names = _progress_with_batch_name(tmp_path, "=cmd|' /C calc'!A0", neutralise=False)
    assert names and set(names) == {"=cmd|' /C calc'!A0"}


def test_setting_defaults_on_and_reads_its_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from lernflow.config.settings import ReportSettings

    assert ReportSettings().model_dump().get("neutralise_formulas") is True
    monkeypatch.setenv("LERNFLOW_REPORTS_NEUTRALISE_FORMULAS", "false")
    assert ReportSettings().model_dump().get("neutralise_formulas") is False
