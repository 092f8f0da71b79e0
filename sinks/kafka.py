"""Bytewax sink that produces :class:`~sinks.kafka_producer.OutMessage` items.

At-least-once: every ``write_batch`` waits until all of its messages are acknowledged (delivery
callbacks) and raises if any failed, so an epoch never completes with a lost message. After a
crash, messages of the resumed epoch may be produced again; consumers must be idempotent
(lernflow's are).
"""

from __future__ import annotations

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from config import KafkaSettings
from sinks.kafka_producer import DeliveryTrackingProducer, OutMessage


class _Partition(StatelessSinkPartition[OutMessage]):
    def __init__(self, producer: DeliveryTrackingProducer) -> None:
        self._producer = producer

    def write_batch(self, items: list[OutMessage]) -> None:
        self._producer.produce_all(items)

    def close(self) -> None:
        self._producer.flush()


class KafkaOutput(DynamicSink[OutMessage]):
    """Produce each item to its own topic, one idempotent producer per worker."""

    def __init__(self, kafka: KafkaSettings, client_id: str) -> None:
        self._kafka = kafka
        self._client_id = client_id

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        producer = DeliveryTrackingProducer(
            self._kafka, client_id=f"{self._client_id}-{worker_index}"
        )
        return _Partition(producer)
