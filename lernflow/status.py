"""``lernflow status``: where each flow is in its input, how far behind, what it parked.

Positions come from the consumer group each flow reports to (``<env>-<flow>-group``, committed
at every snapshot), end offsets from the broker, failed counts from the failed topic's offsets,
and the last snapshot time from the recovery store's files.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from config import Settings
from lernflow.clients import kafka_consumer
from lernflow.runner import FLOWS, consumer_group, failed_topic, input_topic, recovery_dir

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


@dataclass(frozen=True)
class FlowStatus:
    """One flow: partitions, total lag, failed events, last snapshot."""

    flow: str
    partitions: list[PartitionStatus]
    lag: int | None
    failed_events: int
    last_snapshot: str | None

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
            committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
            for tp in tps:
                _low, high = consumer.get_watermark_offsets(tp, timeout=10)
                pos = committed.get(tp.partition)
                pos = pos if pos is not None and pos >= 0 else None
                parts.append(
                    PartitionStatus(
                        flow, topic, tp.partition, pos, high, None if pos is None else high - pos
                    )
                )
        ftopic = failed_topic(settings, flow)
        fmd = md.topics.get(ftopic)
        if fmd is not None and fmd.error is None:
            for p in fmd.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(ftopic, p), timeout=10)
                failed += high - low
    finally:
        consumer.close()
    lags = [p.lag for p in parts if p.lag is not None]
    snaps = list(recovery_dir(settings, flow).glob("part-*.sqlite3*"))
    last = (
        datetime.fromtimestamp(max(f.stat().st_mtime for f in snaps), UTC).isoformat(
            timespec="seconds"
        )
        if snaps
        else None
    )
    return FlowStatus(flow, parts, sum(lags) if lags else None, failed, last)


def all_status(settings: Settings) -> list[FlowStatus]:
    """Status of every known flow."""
    return [flow_status(settings, f) for f in FLOWS]
