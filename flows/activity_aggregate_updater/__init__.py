"""activity-aggregate-updater: course progress, completion and the certificate trigger.

Run with ``python -m bytewax.run "flows.activity_aggregate_updater:build_flow()"``.
"""

from __future__ import annotations

from typing import Any

from flows.activity_aggregate_updater.flow import build_flow as _build


def build_flow(settings: Any = None, options: Any = None) -> Any:
    """Build the dataflow (see :mod:`flows.activity_aggregate_updater.flow`)."""

    return _build(settings, options)
