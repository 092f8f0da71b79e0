"""Resident memory of each server of the local stack."""

from __future__ import annotations

from bench.common import Row
from lernflow.config import Settings
from lernflow.devstack import stack


def run(settings: Settings) -> list[Row]:
    return [
        Row(f"stack: {s.name} RSS", 0, 0.0, rss_mb=s.rss_mb, note="external" if not s.owned else "")
        for s in stack.status(settings)
    ]
