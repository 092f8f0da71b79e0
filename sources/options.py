"""How a flow reads its input: where it starts, where it stops, where it reports its position."""

from __future__ import annotations

from dataclasses import dataclass, field

from lernflow.config import Settings


@dataclass(frozen=True)
class RunOptions:
    """How the input is read.

    Attributes:
        until_caught_up: stop at the input's end offsets as of the start, then exit.
        from_beginning: ignore stored positions and recovery state; start at the earliest offset.
        start_offsets: explicit ``{(topic, partition): offset}`` to start at (replays).
        end_offsets: explicit ``{(topic, partition): offset}`` to stop at (exclusive).
    """

    until_caught_up: bool = False
    from_beginning: bool = False
    start_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    report_position: bool = True

    def commit_group(self, settings: Settings, flow: str) -> str | None:
        """The group positions are reported to (None for replays: the live group is untouched)."""
        return consumer_group(settings, flow) if self.report_position else None

    def start(self) -> str | dict[tuple[str, int], int]:
        """The KafkaInput ``start`` argument for these options."""
        if self.start_offsets:
            return self.start_offsets
        return "earliest" if self.from_beginning else "committed"


def consumer_group(settings: Settings, flow: str) -> str:
    """The consumer group a flow reports its position to (Sunbird-style name)."""
    return f"{settings.topics.env}-{flow}-group"
