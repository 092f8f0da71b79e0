"""Helpers for flow tests: produce input, run a flow to the end of its input, read outputs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from config import Settings
from lernflow.kernel.clients import kafka_consumer
from lernflow.ops import runner, schema
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from sources.options import RunOptions


def create_topics(settings: Settings) -> None:
    schema.apply_topics(settings.kafka, settings.topics)


def produce(
    settings: Settings, topic: str, values: Iterable[bytes | str], key: bytes | None = None
) -> None:
    producer = DeliveryTrackingProducer(settings.kafka, client_id="test")
    producer.produce_all(
        [OutMessage(topic, v.encode() if isinstance(v, str) else v, key=key) for v in values]
    )


def run_to_end(flow: str, settings: Settings, **options: Any) -> None:
    """Run a flow in this thread until it has processed its input up to the current end."""
    opts = RunOptions(until_caught_up=True, **options)
    run_main(runner.build(flow, settings, opts))


def read_topic(settings: Settings, topic: str) -> list[bytes]:
    """Everything on a topic up to its high watermark now, in per-partition order.

    Partitions are assigned directly (no consumer group, so no rebalance delay) and each is read
    until its position reaches the high watermark taken at the start: an empty result means the
    topic really holds nothing, not that the read gave up early. A topic that does not exist
    fails the call rather than reading as empty.
    """
    consumer = kafka_consumer(settings.kafka, group_id="unused-test-reader")
    try:
        meta = consumer.list_topics(topic, timeout=30)
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            msg = f"topic {topic!r} does not exist ({None if info is None else info.error})"
            raise AssertionError(msg)
        ends: dict[int, int] = {}
        for p in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                ends[p] = high
        by_partition: dict[int, list[bytes]] = {p: [] for p in ends}
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        done: set[int] = set()
        deadline = time.monotonic() + 60
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                msg = f"reading {topic!r} to its high watermarks {ends} timed out"
                raise AssertionError(msg)
            for m in consumer.consume(1000, 0.5):
                if m.error() is not None:
                    raise AssertionError(str(m.error()))
                p = m.partition()
                if m.offset() < ends[p]:
                    by_partition[p].append(m.value())
                if m.offset() + 1 >= ends[p]:
                    done.add(p)
        return [v for p in sorted(by_partition) for v in by_partition[p]]
    finally:
        consumer.close()


def read_json(settings: Settings, topic: str) -> list[Any]:
    return [json.loads(v) for v in read_topic(settings, topic)]
