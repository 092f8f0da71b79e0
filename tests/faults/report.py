"""``python -m tests.faults.report [results.json]``: the fault suite's results as the markdown table
of docs/reliability.md (``make faults`` writes ``out/faults/results.json`` and ``.md``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = ("flow", "case", "sent", "applied", "skipped", "parked", "lost", "duplicated",
           "resent", "seconds", "outcome")  # fmt: skip
FLOW_ORDER = ("activity-aggregate-updater", "assessment-aggregator", "relation-cache-updater",
              "user-cache-updater", "certificate-pre-processor", "certificate-generator")  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


CASE_ORDER = ("clean run", "kill -9", "Cassandra", "Kafka", "Redis", "hostile", "2 processes",
              "replay", "recovery store", "certificate store")  # fmt: skip


def _rank(names: tuple[str, ...], text: str) -> int:
    return next((i for i, n in enumerate(names) if text.startswith(n)), len(names))


def _order(row: dict[str, Any]) -> tuple[int, int]:
    return _rank(FLOW_ORDER, row["flow"]), _rank(CASE_ORDER, row["case"])


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table, one row per case (flows in pipeline order, cases in run order), then notes."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    ordered = sorted(rows, key=_order)
    for row in ordered:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in COLUMNS) + " |")
    notes = [f"* {r['flow']} / {r['case']}: {r['note']}" for r in ordered if r.get("note")]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "out/faults/results.json")
    sys.stdout.write(markdown(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
