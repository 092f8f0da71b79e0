"""Helpers for flow tests: produce input, run a flow to the end of its input, read outputs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from bytewax.testing import run_main

from config import Settings
from lernflow import runner, schema
from lernflow.clients import kafka_consumer
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage


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
    opts = runner.RunOptions(until_caught_up=True, **options)
    run_main(runner.build(flow, settings, opts))


def read_topic(settings: Settings, topic: str, idle_s: float = 2.0) -> list[bytes]:
    """Everything currently on a topic (all partitions), in per-partition order."""
    consumer = kafka_consumer(settings.kafka, group_id=f"test-read-{time.time_ns()}")
    consumer.subscribe([topic])
    out: list[bytes] = []
    last = time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() - last < idle_s and time.monotonic() < deadline:
        msgs = consumer.consume(1000, 0.3)
        for m in msgs:
            if m.error() is None:
                out.append(m.value())
                last = time.monotonic()
    consumer.close()
    return out


def read_json(settings: Settings, topic: str) -> list[Any]:
    return [json.loads(v) for v in read_topic(settings, topic)]
