"""What every command shares: the two consoles, the settings, progress lines and the flow
registry lookups."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from lernflow.config import Settings, SettingsError, load_settings
from lernflow.flows.registry import FLOWS
from lernflow.kernel import logs
from lernflow.kernel.errors import ExitCode
from lernflow.ops import stopped
from lernflow.ops.runner import input_topic

logger = logging.getLogger(__name__)

#: progress, warnings and errors (stderr)
console = Console(stderr=True)
#: the command's own output: tables, JSON (stdout)
out = Console()


def get_settings() -> Settings:
    """The effective settings; exit 78 (EX_CONFIG) with the reason when they are invalid."""
    try:
        return load_settings()
    except SettingsError as exc:
        say_last(f"invalid settings: {exc}", stop_kind="config", exit_code=int(ExitCode.CONFIG))
        raise typer.Exit(ExitCode.CONFIG) from None


def say_last(message: str, **fields: object) -> None:
    """Print a command's closing line on stderr: plain text, or a JSON record (--log-format)."""
    console.print(logs.last_line(message, **fields), markup=False, highlight=False, soft_wrap=True)


def exit_uncaught(exc: Exception, command: str) -> int:
    """What the ``lernflow`` command does with an exception no command turned into its own line:
    the one line of :func:`stopped.explain` (the settings if they load) and its exit code."""
    try:
        settings: Settings | None = load_settings()
    except SettingsError:
        settings = None
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.error("%s failed", command, exc_info=exc)
    stop = stopped.explain(exc, command, settings, resume=_AGAIN)
    say_last(stop.line, **stop.fields, exit_code=int(stop.code))
    return int(stop.code)


_AGAIN = "run the command again once fixed"


@contextmanager
def stops_cleanly(
    what: str, settings: Settings, recovery_dir: Path | None = None, resume: str = stopped.RESUME
) -> Iterator[None]:
    """Run a flow or job; if it raises, end with the one line of :func:`stopped.explain` and
    its exit code (docs/runbook.md, "exit codes"). The traceback (Python's, and Bytewax's Rust
    backtrace) only with ``-v``."""
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
    if not verbose:
        os.environ["RUST_BACKTRACE"] = "0"  # read by Bytewax when a worker panics
    t0 = time.monotonic()
    try:
        yield
    except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
        raise
    except Exception as exc:
        stop = stopped.explain(exc, what, settings, recovery_dir, time.monotonic() - t0, resume)
        if verbose:
            logger.error("%s stopped", what, exc_info=exc)
        say_last(stop.line, **stop.fields, exit_code=int(stop.code))
        raise typer.Exit(stop.code) from None


def report(message: str) -> None:
    """Print a time-stamped progress line on stderr."""
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


# -- the flow registry (flows.registry.FLOWS): every CLI lookup of a flow goes here ---


def flow_name(flow: str) -> str:
    """Return ``flow`` when it names a known flow; exit 2 with the known names otherwise."""
    if flow not in FLOWS:
        console.print(f"[red]unknown flow {flow!r}[/red]; the flows are:")
        for name, spec in sorted(FLOWS.items()):
            console.print(f"  {name:28} {spec.summary}")
        raise typer.Exit(ExitCode.USAGE)
    return flow


def flow_input_topic(settings: Settings, flow: str) -> str:
    """Full name of a known flow's input topic (exit 2 for an unknown flow)."""
    return input_topic(settings, flow_name(flow))
