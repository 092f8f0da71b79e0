"""``lernflow doctor``: check a deployment's dependencies before the first event."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from lernflow.cli.common import console, get_settings, out
from lernflow.config.settings import KAFKA_CLIENT_LOGGER
from lernflow.kernel.logs import CASSANDRA_LOGGERS
from lernflow.ops import doctor as doctor_ops

_STYLE = {
    doctor_ops.Verdict.OK: "green",
    doctor_ops.Verdict.WARN: "yellow",
    doctor_ops.Verdict.FAIL: "bold red",
}


@contextlib.contextmanager
def _quiet_clients() -> Iterator[None]:
    """The clients' own lines repeat what a verdict says: hidden unless -v (DEBUG)."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    loggers = [logging.getLogger(n) for n in (KAFKA_CLIENT_LOGGER, *CASSANDRA_LOGGERS)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def doctor_table(checks: list[doctor_ops.Check]) -> Table:
    """One line per check: verdict, what, then the target and the reason (which wrap)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("target · detail", overflow="fold")
    for c in checks:
        table.add_row(
            Text(c.verdict.value, style=_STYLE[c.verdict]),
            Text(c.check),
            Text.assemble((c.target, "bold"), " · ", c.detail),
        )
    return table


_FLOWS = typer.Argument(
    None,
    help="Flows to check for (and/or 'reports'); default: all six flows and the reports.",
    show_default=False,
)


def doctor(
    flows: list[str] = _FLOWS,
    as_json: bool = typer.Option(
        False, "--json", help="A JSON list of {check, target, verdict, detail}."
    ),
    timeout: float = typer.Option(
        3.0, "--timeout", min=0.5, max=60.0, help="Seconds each server may take to answer."
    ),
) -> None:
    """Check every dependency the flows need, in order, with a verdict per line: Kafka
    reachable and authenticated, each topic and its partitions, each consumer group's lag;
    Cassandra reachable, keyspaces, tables and columns; Redis reachable, DB indexes, the
    relation cache; the certificate signing key and JWKS, template hosts; PostgreSQL for the
    reports. A FAIL or warn line names the setting (env var) or command that fixes it.

    Exit codes: 0 every check passed (warnings allowed); 1 a check failed; 2 unknown flow;
    78 an invalid setting.
    """

    names = flows or []
    unknown = [n for n in names if n not in doctor_ops.targets()]
    if unknown:
        console.print(f"[red]unknown flow {', '.join(map(repr, unknown))}[/red]; choose from:")
        for name in doctor_ops.targets():
            console.print(f"  {name}")
        raise typer.Exit(2)
    settings = get_settings()
    t0 = time.monotonic()
    with _quiet_clients():
        checks = doctor_ops.run_checks(settings, names, timeout_s=timeout)
    took = time.monotonic() - t0
    if as_json:
        out.print_json(json.dumps([c.as_dict() for c in checks]))
    else:
        out.print(doctor_table(checks))
    out.file.flush()  # the table before the summary on stderr, when both go to one pipe
    counts = {v: sum(c.verdict is v for c in checks) for v in doctor_ops.Verdict}
    console.print(
        f"doctor: {counts[doctor_ops.Verdict.OK]} ok, {counts[doctor_ops.Verdict.WARN]} warn, "
        f"{counts[doctor_ops.Verdict.FAIL]} FAIL in {took:.1f} s",
        highlight=False,
    )
    if doctor_ops.failed(checks):
        raise typer.Exit(1)
