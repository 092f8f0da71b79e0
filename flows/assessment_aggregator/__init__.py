"""assessment-aggregator: Sunbird's assessment scores, attempts and certificate trigger.

Run with ``python -m bytewax.run "flows.assessment_aggregator:build_flow()"``.
"""

from __future__ import annotations

from typing import Any

from flows.assessment_aggregator.flow import build_flow as _build


def build_flow(settings: Any = None, options: Any = None) -> Any:
    """Build the dataflow (see :mod:`flows.assessment_aggregator.flow`)."""

    return _build(settings, options)
