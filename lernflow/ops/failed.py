"""Read a flow's failed topic and put parked events back on their input topic.

Requeue progress is the consumer group ``<env>-<flow>-group-requeue``: each run reads from the
group's position to the topic's end and commits past everything it read, so an envelope is
requeued once. A filtered run (``only_reason``) puts the envelopes it does not match back on the
failed topic (the same bytes, key and headers) before committing, so a later run still finds them;
readers drop duplicate envelopes of the same source message (same topic, partition, offset) and
keep the latest.

A truncated envelope (``payload_truncated``) is never requeued as it is: the original is fetched
from its source topic/partition/offset and checked against ``payload_sha256``; when it is no
longer retained (or differs), the envelope is skipped and counted as ``skipped_unavailable``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lernflow.config import Settings
from lernflow.kernel.clients import kafka_consumer
from lernflow.kernel.dlq import FailedEvent, parse_envelope
from lernflow.ops.runner import failed_topic
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from lernflow.sources.options import consumer_group

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequeueResult:
    """What ``requeue`` did."""

    requeued: int
    skipped_not_envelope: int
    by_topic: dict[str, int]
    kept_for_later: int = 0  # not matching the reason filter: put back on the failed topic
    skipped_unavailable: int = 0  # truncated, and the original is no longer on its source topic


@dataclass(frozen=True)
class ParkedMessage:
    """One failed-topic message as read: its envelope and the raw message to re-park it."""

    event: FailedEvent
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class FailedRead:
    """Envelopes read from a failed topic and the next offset per partition."""

    topic: str
    messages: list[ParkedMessage]
    next_offsets: dict[int, int]
    not_envelopes: int = 0

    @property
    def events(self) -> list[FailedEvent]:
        """The envelopes, one per source message (the latest), in failed-topic order."""
        return [m.event for m in self.messages]


def _latest_per_source(messages: list[ParkedMessage]) -> list[ParkedMessage]:
    """Drop envelopes of a source message parked again later (a filtered requeue re-parks)."""
    latest: dict[tuple[str, int, int], ParkedMessage] = {}
    for m in messages:
        coordinates = (m.event.topic, m.event.partition, m.event.offset)
        latest.pop(coordinates, None)
        latest[coordinates] = m
    return list(latest.values())


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
        messages: list[ParkedMessage] = []
        not_envelopes = 0
        positions: dict[int, int] = {}
        last = time.monotonic()
        while remaining and time.monotonic() - last < idle_s:
            for m in consumer.consume(500, timeout=0.5):
                if m.error() is not None or m.offset() >= ends[m.partition()]:
                    continue
                last = time.monotonic()
                positions[m.partition()] = m.offset() + 1
                if m.offset() + 1 >= ends[m.partition()]:
                    remaining.discard(m.partition())
                try:
                    event = parse_envelope(m.value())
                except ValueError:
                    not_envelopes += 1
                    logger.warning("%s[%s]@%s is not an envelope", topic, m.partition(), m.offset())
                    continue
                headers = tuple(m.headers() or ())
                messages.append(ParkedMessage(event, m.value(), m.key(), headers))
    finally:
        consumer.close()
    return FailedRead(topic, _latest_per_source(messages), positions, not_envelopes)


def fetch_original(settings: Settings, event: FailedEvent, timeout_s: float = 10.0) -> Any:
    """The source message (``confluent_kafka.Message``) of a truncated envelope, or None.

    None when the source topic no longer holds that offset (retention) or the message there does
    not match the envelope's SHA-256.
    """
    from confluent_kafka import KafkaException, TopicPartition

    consumer = kafka_consumer(settings.kafka, group_id="lernflow-requeue-fetch")
    try:
        tp = TopicPartition(event.topic, event.partition)
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
        except KafkaException:
            return None
        if not low <= event.offset < high:
            return None
        consumer.assign([TopicPartition(event.topic, event.partition, event.offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None or m.error() is not None:
                continue
            value = m.value()
            if m.offset() != event.offset or value is None:
                return None  # compacted away
            if hashlib.sha256(value).hexdigest() != event.payload_sha256:
                return None
            return m
        return None
    finally:
        consumer.close()


def _requeue_message(settings: Settings, event: FailedEvent) -> OutMessage | None:
    """The message that puts ``event`` back on its source topic, or None if it cannot."""
    if not event.payload_truncated:
        if event.payload is None:
            return None
        return OutMessage(event.topic, event.payload, key=event.key)
    original = fetch_original(settings, event)
    if original is None:
        logger.warning(
            "not requeued: %s[%s]@%s was truncated in its envelope (%s bytes) and the original is "
            "no longer on the source topic",
            event.topic, event.partition, event.offset, event.payload_size_bytes,
        )  # fmt: skip
        return None
    return OutMessage(event.topic, original.value(), key=original.key())


def requeue(
    settings: Settings,
    flow: str,
    report: Callable[[str], None] = lambda _m: None,
    only_reason: str | None = None,
) -> RequeueResult:
    """Produce every not-yet-requeued parked event back to its source topic, unchanged.

    Progress is kept in the consumer group ``<env>-<flow>-group-requeue``, so running it twice
    does not requeue the same envelope twice. With ``only_reason``, envelopes whose reason does not
    contain it are put back on the failed topic, so a later requeue still finds them.
    """
    from confluent_kafka import TopicPartition

    group = consumer_group(settings, flow) + "-requeue"
    read = read_failed(settings, flow, group)
    producer = DeliveryTrackingProducer(settings.kafka, client_id=f"lernflow-requeue-{flow}")
    by_topic: Counter[str] = Counter()
    skipped, unavailable = read.not_envelopes, 0
    out: list[OutMessage] = []
    keep: list[OutMessage] = []
    for parked in read.messages:
        ev = parked.event
        if only_reason and only_reason not in ev.reason:
            keep.append(OutMessage(read.topic, parked.value, parked.key, parked.headers))
            continue
        message = _requeue_message(settings, ev)
        if message is None:
            if ev.payload_truncated:
                unavailable += 1
            else:
                skipped += 1
            continue
        out.append(message)
        by_topic[ev.topic] += 1
    producer.produce_all(out + keep)  # every one acknowledged before the commit below
    if read.next_offsets:
        committer = kafka_consumer(settings.kafka, group_id=group)
        try:
            committer.commit(
                offsets=[TopicPartition(read.topic, p, o) for p, o in read.next_offsets.items()],
                asynchronous=False,
            )
        finally:
            committer.close()
    result = RequeueResult(len(out), skipped, dict(by_topic), len(keep), unavailable)
    report(
        f"requeued {result.requeued} events from {read.topic} ({result.by_topic}), "
        f"skipped {result.skipped_not_envelope}, kept {result.kept_for_later} not matching "
        f"for a later requeue, {result.skipped_unavailable} truncated whose original is no "
        "longer on the source topic"
    )
    return result
