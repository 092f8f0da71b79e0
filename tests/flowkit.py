"""Helpers for flow tests: produce input, run a flow to the end of its input, read outputs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bytewax.testing import run_main

from lernflow.config import Settings
from lernflow.ops import runner, schema
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from lernflow.sources.kafka import read_to_end
from lernflow.sources.options import RunOptions


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
    """Everything on a topic up to its high watermark now (assigned partitions, no group)."""
    return read_to_end(settings.kafka, topic)


def read_json(settings: Settings, topic: str) -> list[Any]:
    return [json.loads(v) for v in read_topic(settings, topic)]
