"""Shared helpers for benchmarks: rows, timing, RSS."""

from __future__ import annotations

import resource
import uuid
from dataclasses import dataclass

from config import Settings


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table."""

    name: str
    items: int
    seconds: float
    unit: str = "events"
    rss_mb: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


def peak_rss_mb() -> float:
    """Peak RSS of this process (and waited-for children) in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return max(own, kids)


def isolated(settings: Settings, label: str) -> Settings:
    """Settings with a private topic environment for one benchmark run."""
    topics = settings.topics.model_copy(update={"env": f"bench-{label}-{uuid.uuid4().hex[:6]}"})
    return settings.with_overrides(topics=topics)
