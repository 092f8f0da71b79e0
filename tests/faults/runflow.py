"""``python -m tests.faults.runflow METRICS.json ARGS…``: ``lernflow ARGS…`` in this process, then
the flow's ``lernflow_events_*_total`` counters written to ``METRICS.json`` as it exits.

The fault suite runs flows as a user would (the CLI, in a child process it can kill -9); this
wrapper only adds the counters the process had when it ended normally (with any exit code), so a
test can check that a skipped event was counted. A process killed with SIGKILL writes nothing.
"""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path

from prometheus_client import REGISTRY


def counters() -> dict[str, dict[str, float]]:
    """``{metric name: {"label=value,…": value}}`` of every lernflow_events_* counter."""
    out: dict[str, dict[str, float]] = {}
    for metric in REGISTRY.collect():
        if not metric.name.startswith("lernflow_events"):
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out.setdefault(sample.name, {})[labels] = sample.value
    return out


def _dump(path: Path) -> None:
    path.write_text(json.dumps(counters(), indent=1, sort_keys=True))


def main() -> None:
    path = Path(sys.argv[1])
    sys.argv = ["lernflow", *sys.argv[2:]]
    atexit.register(_dump, path)
    from lernflow.cli import main as lernflow_main

    lernflow_main()


if __name__ == "__main__":
    main()
