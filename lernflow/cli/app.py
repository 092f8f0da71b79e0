"""The ``lernflow`` Typer app: global options, and every command group put together.

Each group lives in its own module (``run``, ``status``, ``report``, ``stack``, ``cert``,
``failed``, ``caches``); this module only assembles them in the order ``--help`` shows.
"""

from __future__ import annotations

import logging
import sys

import typer

from lernflow.cli import caches, cert, doctor, failed, report, run, serve, stack, status
from lernflow.cli.common import console, exit_uncaught
from lernflow.kernel import logs

app = typer.Typer(
    help=(
        "lernflow — Sunbird ED's course-completion, assessment, certificate and cache stream "
        "jobs as Bytewax dataflows, drop-in compatible with Sunbird's topics, tables and Redis "
        "keys.\n\nQuick start: 'lernflow stack up', 'lernflow schema apply', then "
        "'lernflow run <flow>'. Settings come from LERNFLOW_* environment variables "
        "('lernflow config show')."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("run")(run.run_flow)
app.command("status")(status.status)
app.command("doctor")(doctor.doctor)
app.command("replay")(run.replay_cmd)
app.command("run-job")(report.run_job_command)
app.command("demo")(stack.demo)
app.command("serve")(serve.serve)
app.add_typer(cert.cert_app, name="cert")
app.add_typer(report.report_app, name="report")
app.add_typer(failed.failed_app, name="failed")
app.add_typer(caches.user_cache_app, name="user-cache")
app.add_typer(caches.relation_app, name="relation-cache")
app.add_typer(stack.stack_app, name="stack")
app.add_typer(stack.schema_app, name="schema")
app.add_typer(stack.config_app, name="config")


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    log_level: str = typer.Option(
        "WARNING",
        "--log-level",
        envvar="LERNFLOW_LOG_LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (-v means DEBUG).",
    ),
    log_format: str = typer.Option(
        "text",
        "--log-format",
        envvar="LERNFLOW_LOG_FORMAT",
        help="text, or json: one JSON object per line (ts, level, logger, msg, flow, process).",
    ),
) -> None:

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        console.print(f"[red]--log-level / LERNFLOW_LOG_LEVEL:[/red] {log_level!r} is not a level")
        raise typer.Exit(2)
    try:
        logs.configure(logging.DEBUG if verbose else level, log_format)
    except ValueError as exc:
        console.print(f"[red]--log-format / LERNFLOW_LOG_FORMAT:[/red] {exc}")
        raise typer.Exit(2) from None


def main() -> None:
    """Entry point of the ``lernflow`` console script. An exception a command did not handle
    ends in one line and a documented exit code (docs/runbook.md), its traceback with ``-v``."""
    try:
        app(prog_name="lernflow")
    except Exception as exc:
        command = " ".join(["lernflow", *[a for a in sys.argv[1:3] if not a.startswith("-")]])
        raise SystemExit(exit_uncaught(exc, command)) from None
