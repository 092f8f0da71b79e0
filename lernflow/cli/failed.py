"""``lernflow failed``: a flow's failed topic, and putting parked events back."""

from __future__ import annotations

from collections import Counter

import typer
from rich.table import Table

from lernflow.cli.common import flow_name, get_settings, out, report
from lernflow.ops.failed import read_failed, requeue

failed_app = typer.Typer(
    help="Inspect a flow's failed topic and put parked events back on the input topic.",
    no_args_is_help=True,
)


@failed_app.command("show")
def failed_show(
    flow: str = typer.Argument(..., help="The flow whose failed topic to read."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many envelopes to print."),
) -> None:
    """Summarise the failed topic: counts by reason and the latest envelopes."""

    settings = get_settings()
    read = read_failed(settings, flow_name(flow), group=None)
    reasons = Counter(e.reason for e in read.events)
    table = Table("count", "reason")
    for reason, n in reasons.most_common():
        table.add_row(str(n), reason)
    out.print(f"{read.topic}: {len(read.events)} failed events")
    out.print(table)
    for e in read.events[-limit:]:
        out.print(f"{e.topic}[{e.partition}]@{e.offset}  {e.reason}")


@failed_app.command("requeue")
def failed_requeue(
    flow: str = typer.Argument(..., help="The flow whose parked events to put back."),
    reason: str = typer.Option(
        None, "--reason", help="Only requeue events whose reason contains this text."
    ),
) -> None:
    """Put parked events back on their input topic, unchanged, once the cause is fixed.

    Each envelope is requeued once (progress is kept in the <env>-<flow>-group-requeue group).
    """

    requeue(get_settings(), flow_name(flow), report, only_reason=reason)
