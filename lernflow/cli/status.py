"""``lernflow status``: one line per flow — running or not, rate, lag, parked, snapshot, verdict."""

from __future__ import annotations

import json
import time
from datetime import datetime

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from lernflow.cli.common import console, flow_name, get_settings, out
from lernflow.kernel.errors import LernflowError
from lernflow.ops.status import FlowStatus, all_status

#: exit codes (also in --help and docs/runbook.md)
EXIT_OK = 0
EXIT_DOWN = 1  # a selected flow is stopped or failing
EXIT_UNKNOWN = 69  # EX_UNAVAILABLE: Kafka or Redis did not answer, nothing can be said

_FLOWS_ARG = typer.Argument(None, help="Flows to show (default: all six).")
_VERDICT_STYLE = {"ok": "green", "lagging": "yellow", "stopped": "red", "failing": "red bold"}


def _dash(v: object) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


def compact(n: float | None) -> str:
    """A count in at most 5 characters: 9,999 · 12.3k · 999k · 12.3M · 999M · 1.2G."""
    if n is None:
        return "-"
    if n < 10:
        return f"{n:.1f}".removesuffix(".0") if isinstance(n, float) else str(n)
    if n < 9_999.5:
        return f"{n:,.0f}"
    if n < 99_950:
        return f"{n / 1e3:.1f}k"
    if n < 999_500:
        return f"{n / 1e3:.0f}k"
    if n < 99_950_000:
        return f"{n / 1e6:.1f}M"
    if n < 999_500_000:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e9:.1f}G" if n < 9_950_000_000 else f"{n / 1e9:.0f}G"


def age(seconds: float | None) -> str:
    """A duration in at most 5 characters: 42s · 17m · 3h05m · 23h · 2d03h · 123d."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 36_000:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s < 86_400:
        return f"{s // 3600}h"
    if s < 10 * 86_400:
        return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"
    return f"{s // 86_400}d"


def _since(stamp: str | None, now: float) -> float | None:
    return None if stamp is None else now - datetime.fromisoformat(stamp).timestamp()


def summary_table(flows: list[FlowStatus], now: float | None = None) -> Table:
    """One line per flow, 78 columns wide at most (flow names up to 26 characters)."""
    now = time.time() if now is None else now
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
    table.add_column("flow", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for name in ("procs", "up", "ev/s", "lag", "failed", "snap"):
        table.add_column(name, justify="right", no_wrap=True)
    for f in flows:
        expected = max((p.processes for p in f.processes), default=0)
        live = len({p.process_id for p in f.processes})
        table.add_row(
            f.flow,
            f"[{_VERDICT_STYLE[f.verdict]}]{f.verdict}[/]",
            f"{live}/{expected}" if f.running else "-",
            age(_since(f.up_since, now)) if f.running else "-",
            compact(f.events_per_s) if f.running else "-",
            compact(f.lag),
            compact(f.failed_events),
            age(f.snapshot_age_s),
        )
    return table


def _partition_table(flows: list[FlowStatus]) -> Table:
    dash = _dash
    table = Table("flow", "partition", "committed", "end", "lag", "events/s", "failed events",
                  "last snapshot")  # fmt: skip
    for f in flows:
        if not f.partitions:
            table.add_row(f.flow, "-", "-", "-", "-", "-", str(f.failed_events),
                          dash(f.last_snapshot))  # fmt: skip
        for p in f.partitions:
            table.add_row(
                f.flow, f"{p.topic}[{p.partition}]", dash(p.committed), dash(p.end), dash(p.lag),
                dash(p.events_per_s), f"{f.failed_events:,}", dash(f.last_snapshot),
            )  # fmt: skip
    return table


def _process_table(flows: list[FlowStatus]) -> Table:
    table = Table("flow", "process", "host", "pid", "workers", "started", "version", "last beat")
    for f in flows:
        for p in f.processes:
            table.add_row(f.flow, f"{p.process_id}/{p.processes}", p.host, str(p.pid),
                          str(p.workers), p.started, p.version, p.last_beat)  # fmt: skip
    return table


def render(flows: list[FlowStatus], to: Console, *, partitions: bool = False) -> None:
    """The summary (or the per-partition detail), and why each flow is lagging or failing."""
    if partitions:
        to.print(_partition_table(flows))
        if any(f.running for f in flows):
            to.print(_process_table(flows))
        return
    to.print(summary_table(flows))
    for f in flows:
        if f.verdict in ("lagging", "failing"):
            to.print(f"{f.flow}: {'; '.join(f.reasons)}", highlight=False)


def exit_code(flows: list[FlowStatus]) -> int:
    """1 when any flow is stopped or failing, else 0."""
    return EXIT_DOWN if any(f.verdict in ("stopped", "failing") for f in flows) else EXIT_OK


def status(
    flows: list[str] = _FLOWS_ARG,
    as_json: bool = typer.Option(False, "--json", help="Everything, machine-readable."),
    partitions: bool = typer.Option(
        False, "--partitions", help="Per partition: committed, end, lag, events/s; and processes."
    ),
) -> None:
    """One line per flow: verdict, processes beating, up for, events/s over the last minute,
    lag, events on its failed topic, age of its last recovery snapshot.

    Verdicts: ok (running; idle counts as ok), lagging (running but behind by more than 1,000
    events and a minute of input), failing (running, but a process of the run is missing or a
    tenth or more of the last minute's events were parked), stopped (no live heartbeat: never
    started, ended, or silent for three heartbeat intervals). See docs/runbook.md.

    Exit codes: 0 every selected flow ok or lagging; 1 a selected flow is stopped or failing;
    2 an unknown flow or invalid settings; 69 Kafka or Redis did not answer. So
    'lernflow status FLOW' is a probe.
    """
    selected = [flow_name(f) for f in flows] if flows else None
    settings = get_settings()
    try:
        result = all_status(settings, selected)
    except LernflowError as exc:
        console.print(f"[red]status unknown:[/red] {exc}", highlight=False)
        raise typer.Exit(EXIT_UNKNOWN) from None
    if as_json:
        out.print_json(json.dumps([f.as_dict() for f in result]))
    else:
        render(result, out, partitions=partitions)
    raise typer.Exit(exit_code(result))
