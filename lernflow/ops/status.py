"""``lernflow status``: where each flow is in its input, how far behind, what it parked.

Positions come from the consumer group each flow reports to (``<env>-<flow>-group``, committed
at every snapshot), end offsets from the broker, failed counts from the failed topic's offsets,
and the last snapshot time from the recovery store's files. The recent events/s of a partition
comes from the note our source commits with each position (:mod:`sources.position_note`): the
average over about the last minute, 0 when the flow has not committed for two minutes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from lernflow.config import Settings
from lernflow.flows.registry import FLOWS
from lernflow.kernel.clients import kafka_consumer
from lernflow.ops.runner import failed_topic, input_topic, recovery_dir
from lernflow.sources.kafka import kafka_retry, watermarks
from lernflow.sources.options import consumer_group
from lernflow.sources.position_note import decode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionStatus:
    """One input partition of one flow."""

    flow: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int | None
    events_per_s: float | None = None  # None: no position note (never run by lernflow)
    committed_at: str | None = None


@dataclass(frozen=True)
class FlowStatus:
    """One flow: partitions, total lag, recent events/s, failed events, last snapshot."""

    flow: str
    partitions: list[PartitionStatus]
    lag: int | None
    failed_events: int
    last_snapshot: str | None
    events_per_s: float | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def flow_status(settings: Settings, flow: str) -> FlowStatus:
    """Collect the status of one flow."""
    from confluent_kafka import TopicPartition

    group = consumer_group(settings, flow)
    topic = input_topic(settings, flow)
    consumer = kafka_consumer(settings.kafka, group_id=group)
    parts: list[PartitionStatus] = []
    failed = 0
    try:
        md = consumer.list_topics(timeout=10)
        tmd = md.topics.get(topic)
        if tmd is not None and tmd.error is None:
            tps = [TopicPartition(topic, p) for p in sorted(tmd.partitions)]
            committed = {
                tp.partition: tp
                for tp in kafka_retry(
                    lambda: consumer.committed(tps, timeout=10), f"committed offsets of {group}"
                )
            }
            now_ms = int(time.time() * 1000)
            for tp in tps:
                _low, high = watermarks(consumer, tp)
                got = committed.get(tp.partition)
                pos = got.offset if got is not None and got.offset >= 0 else None
                note = decode(getattr(got, "metadata", None)) if pos is not None else None
                parts.append(
                    PartitionStatus(
                        flow, topic, tp.partition, pos, high,
                        None if pos is None else high - pos,
                        None if note is None or pos is None else
                        round(note.events_per_s(pos, now_ms), 1),
                        None if note is None else _iso(note.committed_ms / 1000),
                    )
                )  # fmt: skip
        ftopic = failed_topic(settings, flow)
        fmd = md.topics.get(ftopic)
        if fmd is not None and fmd.error is None:
            for p in fmd.partitions:
                low, high = watermarks(consumer, TopicPartition(ftopic, p))
                failed += high - low
    finally:
        consumer.close()
    lags = [p.lag for p in parts if p.lag is not None]
    snaps = list(recovery_dir(settings, flow).glob("part-*.sqlite3*"))
    last = _iso(max(f.stat().st_mtime for f in snaps)) if snaps else None
    rates = [p.events_per_s for p in parts if p.events_per_s is not None]
    return FlowStatus(
        flow, parts, sum(lags) if lags else None, failed, last,
        round(sum(rates), 1) if rates else None,
    )  # fmt: skip


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def all_status(settings: Settings) -> list[FlowStatus]:
    """Status of every known flow."""
    return [flow_status(settings, f) for f in FLOWS]
