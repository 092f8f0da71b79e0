"""Drive a flow's production orchestration (the processor shell and the flow's logic) in memory.

Unit tests build the flow's :class:`~flows.shell.FlowSpec` processor with an in-memory store and
:class:`MemoryOutbox`, feed it payloads as Kafka records through the spec's own parse step, and
read what was produced. Nothing here re-implements a flow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import REGISTRY

from lernflow.config import Settings
from lernflow.flows.shell import BatchProcessor, FlowLogic, FlowSpec
from lernflow.sinks.kafka_producer import OutMessage
from lernflow.sources.kafka import KafkaRecord


class MemoryOutbox:
    """Keeps produced messages in order (the shell's ``Outbox`` protocol)."""

    def __init__(self) -> None:
        self.messages: list[OutMessage] = []

    def produce_all(self, messages: Sequence[OutMessage]) -> None:
        self.messages.extend(messages)

    def flush(self) -> None:
        return None

    def on(self, topic: str) -> list[Any]:
        """The JSON values produced to ``topic``."""
        return [json.loads(m.value) for m in self.messages if m.topic == topic]


def records(topic: str, payloads: Iterable[bytes | str], partition: int = 0) -> list[KafkaRecord]:
    """Payloads as consecutive records of one partition."""
    return [
        KafkaRecord(topic, partition, offset, None, p.encode() if isinstance(p, str) else p, 0)
        for offset, p in enumerate(payloads)
    ]


def run(
    spec: FlowSpec[Any],
    settings: Settings,
    logic: FlowLogic[Any],
    payloads: Iterable[bytes | str],
    outbox: MemoryOutbox | None = None,
) -> tuple[MemoryOutbox, BatchProcessor[Any]]:
    """Parse ``payloads`` with the spec's parser and process them as one batch."""
    outbox = outbox if outbox is not None else MemoryOutbox()
    processor = spec.processor(settings, logic=logic, outbox=outbox)
    parse = spec.parser(settings)
    processor.process([parse(r) for r in records(spec.input_topic_name(settings), payloads)])
    return outbox, processor


def metric(name: str, **labels: str) -> float:
    """The current value of one metric sample (0 when it was never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
