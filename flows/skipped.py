"""The one outcome every flow shares for input it deliberately does not act on.

A :class:`Skipped` event is neither invalid nor applied: the processor shell counts it under
``lernflow_events_skipped_total{flow, kind}`` and moves on (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Skipped:
    """An input event the flow ignores on purpose: ``kind`` is the metric label, ``reason`` why."""

    kind: str
    reason: str
