"""Read a flow's failed topic and put parked events back on their input topic."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from config import Settings
from lernflow.kernel.clients import kafka_consumer
from lernflow.kernel.dlq import FailedEvent, parse_envelope
from lernflow.ops.runner import failed_topic
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from sources.options import consumer_group

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequeueResult:
    """What ``requeue`` did."""

    requeued: int
    skipped_not_envelope: int
    by_topic: dict[str, int]


@dataclass(frozen=True)
class FailedRead:
    """Envelopes read from a failed topic and the next offset per partition."""

    topic: str
    events: list[FailedEvent]
    next_offsets: dict[int, int]


def read_failed(
    settings: Settings, flow: str, group: str | None, idle_s: float = 3.0
) -> FailedRead:
    """Read the failed topic from the group's position (or the start) to its current end."""
    from confluent_kafka import TopicPartition

    topic = failed_topic(settings, flow)
    consumer = kafka_consumer(
        settings.kafka, group_id=group or f"lernflow-inspect-{time.time_ns()}"
    )
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        if md.error is not None:
            msg = f"failed topic {topic} does not exist (run 'lernflow schema apply')"
            raise RuntimeError(msg)
        tps = [TopicPartition(topic, p) for p in md.partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        starts = {tp.partition: 0 for tp in tps}
        if group:
            for tp in consumer.committed(tps, timeout=10):
                starts[tp.partition] = max(tp.offset, 0)
        assign = [TopicPartition(topic, p, o) for p, o in starts.items() if o < ends[p]]
        consumer.assign(assign)
        remaining = {tp.partition for tp in assign}
        events: list[FailedEvent] = []
        positions: dict[int, int] = {}
        last = time.monotonic()
        while remaining and time.monotonic() - last < idle_s:
            for m in consumer.consume(500, timeout=0.5):
                if m.error() is not None:
                    continue
                last = time.monotonic()
                positions[m.partition()] = m.offset() + 1
                if m.offset() + 1 >= ends[m.partition()]:
                    remaining.discard(m.partition())
                try:
                    events.append(parse_envelope(m.value()))
                except ValueError:
                    logger.warning("%s[%s]@%s is not an envelope", topic, m.partition(), m.offset())
    finally:
        consumer.close()
    return FailedRead(topic, events, positions)


def requeue(
    settings: Settings,
    flow: str,
    report: Callable[[str], None] = lambda _m: None,
    only_reason: str | None = None,
) -> RequeueResult:
    """Produce every not-yet-requeued parked event back to its source topic, unchanged.

    Progress is kept in the consumer group ``<env>-<flow>-requeue``, so running it twice does not
    requeue the same envelope twice.
    """
    from confluent_kafka import TopicPartition

    group = consumer_group(settings, flow) + "-requeue"
    read = read_failed(settings, flow, group)
    producer = DeliveryTrackingProducer(settings.kafka, client_id=f"lernflow-requeue-{flow}")
    by_topic: Counter[str] = Counter()
    skipped = 0
    out = []
    for ev in read.events:
        if ev.payload is None or (only_reason and only_reason not in ev.reason):
            skipped += 1
            continue
        out.append(OutMessage(ev.topic, ev.payload, key=ev.key))
        by_topic[ev.topic] += 1
    producer.produce_all(out)
    if read.next_offsets:
        committer = kafka_consumer(settings.kafka, group_id=group)
        try:
            committer.commit(
                offsets=[TopicPartition(read.topic, p, o) for p, o in read.next_offsets.items()],
                asynchronous=False,
            )
        finally:
            committer.close()
    report(f"requeued {len(out)} events from {read.topic} ({dict(by_topic)}), skipped {skipped}")
    return RequeueResult(len(out), skipped, dict(by_topic))
