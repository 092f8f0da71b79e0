"""The note our Kafka source commits with each consumer-group position.

Kafka keeps a short metadata string with every committed offset. Ours records when the position
was committed and an earlier (offset, time) point, so ``lernflow status`` — a separate process
with no access to the flow's memory — can show a recent events/s per partition from one
``committed()`` call. Pure: no Kafka client here.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass

#: how far back the earlier point of a note reaches (the rate is an average over about this)
WINDOW_MS = 60_000
#: a note committed longer ago than this means the flow is not running: its rate reads as 0
STALE_MS = 120_000


@dataclass(frozen=True)
class PositionNote:
    """One committed position: now, and an earlier point to measure the rate against."""

    committed_ms: int
    since_offset: int
    since_ms: int

    def encode(self) -> str:
        return json.dumps(
            {"t": self.committed_ms, "o0": self.since_offset, "t0": self.since_ms},
            separators=(",", ":"),
        )

    def events_per_s(self, offset: int, now_ms: int) -> float:
        """Average rate from the earlier point to ``offset``; 0 once the note is stale."""
        if now_ms - self.committed_ms > STALE_MS or self.committed_ms <= self.since_ms:
            return 0.0
        return max(0, offset - self.since_offset) * 1000.0 / (self.committed_ms - self.since_ms)


def decode(text: str | None) -> PositionNote | None:
    """The note in a committed offset's metadata, or ``None`` (absent, foreign or malformed)."""
    if not text:
        return None
    try:
        doc = json.loads(text)
        return PositionNote(int(doc["t"]), int(doc["o0"]), int(doc["t0"]))
    except (ValueError, KeyError, TypeError):
        return None


class PositionHistory:
    """The points a partition committed lately, to build each new note from."""

    def __init__(self, window_ms: int = WINDOW_MS) -> None:
        self._window = window_ms
        self._points: deque[tuple[int, int]] = deque()

    def note(self, offset: int, now_ms: int) -> PositionNote:
        """The note for committing ``offset`` now; remembers the point."""
        while len(self._points) > 1 and now_ms - self._points[1][1] >= self._window:
            self._points.popleft()
        since_offset, since_ms = self._points[0] if self._points else (offset, now_ms)
        self._points.append((offset, now_ms))
        return PositionNote(now_ms, since_offset, since_ms)
