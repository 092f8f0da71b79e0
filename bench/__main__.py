"""Run every benchmark and print the table (``make bench``)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from rich.console import Console
from rich.table import Table

from bench.common import Row
from config import load_settings

BENCHMARKS = [
    "bench.stack",
    "bench.activity",
    "bench.assessment",
    "bench.caches",
    "bench.certificates",
    "bench.reports",
    "bench.replay",
]


def main() -> int:
    parser = argparse.ArgumentParser(description="lernflow benchmarks (prints one table)")
    parser.add_argument("--only", help="run only benchmarks whose module name contains this")
    args = parser.parse_args()
    settings = load_settings()
    rows: list[Row] = []
    console = Console()
    for name in BENCHMARKS:
        if args.only and args.only not in name:
            continue
        t0 = time.monotonic()
        console.print(f"[dim]running {name} …[/dim]")
        module = importlib.import_module(name)
        rows += module.run(settings)
        console.print(f"[dim]{name} done in {time.monotonic() - t0:.0f}s[/dim]")
    table = Table("benchmark", "items", "seconds", "rate /s", "RSS MiB", "note")
    for r in rows:
        rss = f"{r.rss_mb:.0f}" if r.rss_mb else "-"
        table.add_row(
            r.name, f"{r.items:,}", f"{r.seconds:.2f}", f"{r.rate:,.0f} {r.unit}", rss, r.note
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
