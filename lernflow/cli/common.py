"""What every command shares: the two consoles, the settings, progress lines and the flow
registry lookups."""

from __future__ import annotations

import time

import typer
from rich.console import Console

from lernflow.config import Settings, SettingsError, load_settings
from lernflow.flows.registry import FLOWS
from lernflow.ops.runner import input_topic

#: progress, warnings and errors (stderr)
console = Console(stderr=True)
#: the command's own output: tables, JSON (stdout)
out = Console()


def get_settings() -> Settings:
    """The effective settings; exit 2 with the reason when they are invalid."""
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None


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
        raise typer.Exit(2)
    return flow


def flow_input_topic(settings: Settings, flow: str) -> str:
    """Full name of a known flow's input topic (exit 2 for an unknown flow)."""
    return input_topic(settings, flow_name(flow))
