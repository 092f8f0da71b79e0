"""``lernflow report`` and ``lernflow run-job``: Sunbird's course exhaust reports."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from lernflow.cli.common import console, get_settings, out, report, stops_cleanly
from lernflow.reports.jobs import load, run_job
from lernflow.reports.paths import UnsafeIdError
from lernflow.reports.runner import BatchOutcome, run_batches

report_app = typer.Typer(
    help="Sunbird's course exhaust reports (progress, response, userinfo) as CSV files.",
    no_args_is_help=True,
)


def _print_result(r: BatchOutcome, explain: bool) -> None:
    report(f"{r.batch_id}: {r.rows:,} rows, {r.size:,} bytes -> {r.path}")
    if r.dropped:
        console.print(
            f"[yellow]{r.batch_id}: {len(r.dropped):,} enrolled learners left out: no user:<id> "
            "in the Redis user cache (fix: 'lernflow user-cache rebuild' or --user ID)[/yellow]"
        )
        if explain:
            for uid in r.dropped:
                out.print(f"  missing user:{uid}", markup=False, highlight=False)


def _report_command(
    job_id: str, batch_id: list[str], course_id: str | None, out_dir: str, explain: bool
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    settings = get_settings()
    t0 = time.monotonic()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} batches"),
        TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task(job_id, total=len(batch_id), rows=0)
        try:
            results = run_batches(
                settings, job_id, batch_id, Path(out_dir), course_id=course_id,
                progress=lambda done, total, rows: bar.update(task, completed=done, total=total, rows=rows),
            )  # fmt: skip
        except UnsafeIdError as exc:  # a usage error: exit 2, naming the option and the value
            raise typer.BadParameter(exc.message, param_hint=f"'{exc.option}'") from None
    failed = False
    for r in results:
        if r.error:
            failed = True
            console.print(f"[red]{r.batch_id}: {r.error}[/red]")
            continue
        _print_result(r, explain)
    report(f"{job_id}: {sum(r.rows for r in results):,} rows in {time.monotonic() - t0:.1f}s")
    if failed:
        raise typer.Exit(1)


_BATCH_OPT = typer.Option(..., "--batch-id", help="Batch id (repeatable).")
_COURSE_OPT = typer.Option(None, "--course-id", help="Only batches of this collection.")
_OUT_OPT = typer.Option("reports-out", "--out", help="Directory the CSV files are written under.")
_EXPLAIN_OPT = typer.Option(
    False, "--explain", help="List the learners left out (no user-cache entry)."
)


@report_app.command("progress-exhaust")
def report_progress(
    batch_id: list[str] = _BATCH_OPT, course_id: str = _COURSE_OPT, out_dir: str = _OUT_OPT,
    explain: bool = _EXPLAIN_OPT,
) -> None:  # fmt: skip
    """Progress per learner: enrolment/completion dates, progress %, certificate, scores."""
    _report_command("progress-exhaust", batch_id, course_id, out_dir, explain)


@report_app.command("response-exhaust")
def report_response(
    batch_id: list[str] = _BATCH_OPT, course_id: str = _COURSE_OPT, out_dir: str = _OUT_OPT,
    explain: bool = _EXPLAIN_OPT,
) -> None:  # fmt: skip
    """Every question response of every assessment attempt."""
    _report_command("response-exhaust", batch_id, course_id, out_dir, explain)


@report_app.command("userinfo-exhaust")
def report_userinfo(
    batch_id: list[str] = _BATCH_OPT, course_id: str = _COURSE_OPT, out_dir: str = _OUT_OPT,
    explain: bool = _EXPLAIN_OPT,
) -> None:  # fmt: skip
    """Learner details (consent rules apply)."""
    _report_command("userinfo-exhaust", batch_id, course_id, out_dir, explain)


_PENDING = "run it again: it picks up every request still SUBMITTED or FAILED"


def run_job_command(
    job: str = typer.Argument(..., help="progress-exhaust | response-exhaust | userinfo-exhaust"),
    out_dir: str = typer.Option(
        None, "--out", help="Report root (default LERNFLOW_REPORTS_OUT_DIR)."
    ),
) -> None:
    """Process every pending request of one report in Sunbird's job_request table (PostgreSQL),
    like Sunbird's run-job.sh: statuses, duplicates, per-channel limits, zips and passwords.

    Exit codes as for 'lernflow run' (69: PostgreSQL, Cassandra or Redis unreachable; 78: a
    setting or credentials to fix); the last line on stderr says why.
    """

    settings = get_settings()
    root = Path(out_dir) if out_dir else settings.reports.out_dir
    with stops_cleanly(f"run-job {job}", settings, resume=_PENDING):
        result = run_job(settings, job, root)
    table = Table("request_id", "tag", "status", "files", "error")
    for r in result.requests:
        table.add_row(
            r.request_id, r.tag, r.status, "\n".join(r.download_urls), r.err_message or ""
        )
    out.print(table)
    report(
        f"{job}: {len(result.requests)} requests ({result.duplicates} duplicates) in "
        f"{result.seconds:.1f}s; files under {root}"
    )


@report_app.command("requests")
def report_requests(
    job: str = typer.Option(None, "--job", help="Only this report's requests."),
) -> None:
    """List the job_request rows and their status."""

    table = Table("request_id", "job", "tag", "status", "iteration", "submitted", "error")
    for r in load(get_settings()):
        if job and r.job_id != job:
            continue
        table.add_row(r.request_id, r.job_id, r.tag, r.status, str(r.iteration),
                      str(r.dt_job_submitted or ""), r.err_message or "")  # fmt: skip
    out.print(table)
