"""``lernflow status``: every flow's position, lag, rate, failed events and last snapshot."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from lernflow.cli.common import get_settings, out
from lernflow.ops.status import FlowStatus, all_status


def _dash(v: object) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


def _table(flows: list[FlowStatus]) -> Table:
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


def status(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Per flow and partition: committed position, end offset, lag, recent events/s, failed
    events (on the flow's failed topic) and the last recovery snapshot.

    events/s is the average over about the last minute, from the note each flow commits with
    its position; 0 when the flow has not committed for two minutes (stopped), '-' when the
    position was not committed by lernflow.
    """

    flows = all_status(get_settings())
    if as_json:
        out.print_json(json.dumps([f.as_dict() for f in flows]))
        return
    out.print(_table(flows))
