"""Run every benchmark and print the table (``make bench``)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.common import Row
from bench.work import short_table
from lernflow.config import load_settings

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
    parser.add_argument("--json", type=Path, help="also write one JSON record per row here")
    parser.add_argument(
        "--workload",
        choices=("simple", "realistic", "both"),
        help="activity and replay traffic (default: LERNFLOW_BENCH_WORKLOAD, else both)",
    )
    args = parser.parse_args()
    if args.workload:
        os.environ["LERNFLOW_BENCH_WORKLOAD"] = args.workload
    settings = load_settings()
    rows: list[Row] = []
    console = Console()
    if not console.is_terminal:  # a log file: wide rows rather than wrapped cells
        console = Console(width=240)
    for name in BENCHMARKS:
        if args.only and args.only not in name:
            continue
        t0 = time.monotonic()
        console.print(f"[dim]running {name} …[/dim]")
        module = importlib.import_module(name)
        rows += module.run(settings)
        console.print(f"[dim]{name} done in {time.monotonic() - t0:.0f}s[/dim]")
    console.print(table_of(rows))
    if args.json:
        args.json.write_text("".join(json.dumps(r.record()) + "\n" for r in rows))
    return 0


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table_of(rows: list[Row]) -> Table:
    """The printed table: rate, flow/limit, CPU-ms per event, RSS, writes per event."""
    table = Table("benchmark", "workload", "items", "seconds", "rate /s", "/limit",
                  "C* ms/ev", "flow ms/ev", "RSS MiB", "C* writes/ev", "note")  # fmt: skip
    for r in rows:
        rec = r.record()
        writes = r.writes_per_item()
        spread = " ".join(f"{short_table(t)} {n:.2f}" for t, n in writes.items())
        total = f"{sum(writes.values()):.2f}: {spread}" if writes else "-"
        table.add_row(
            r.name, r.workload or "-", f"{r.items:,}", f"{r.seconds:.2f}",
            f"{r.rate:,.0f} {r.unit}", _num(r.ratio_to_limit, ".2f"),
            _num(rec["cassandra_cpu_ms_per_event"], ".3f"),
            _num(rec["flow_cpu_ms_per_event"], ".3f"), _num(r.rss_mb, ".0f"), total, r.note,
        )  # fmt: skip
    return table


if __name__ == "__main__":
    sys.exit(main())
