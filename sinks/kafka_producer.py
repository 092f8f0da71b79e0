"""A Kafka producer that never loses a message silently.

Wraps ``confluent_kafka.Producer`` with three guarantees the stock Bytewax ``KafkaSink`` lacks:

* a delivery callback on every message; :meth:`DeliveryTrackingProducer.flush` raises
  :class:`~lernflow.kernel.errors.TransientError` naming the failed messages instead of returning
  normally when librdkafka gave up on them;
* backpressure on ``BufferError`` (local queue full): poll and retry instead of crashing
  (Bytewax issue #522);
* idempotent producer (``enable.idempotence``) so broker-side retries never duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lernflow.config import KafkaSettings
from lernflow.kernel.errors import TransientError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutMessage:
    """One message to produce."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class DeliveryTrackingProducer:
    """Produce with delivery reports; ``flush()`` fails loudly if any message was not delivered."""

    def __init__(self, settings: KafkaSettings, client_id: str = "lernflow", **extra: Any) -> None:
        from confluent_kafka import Producer

        conf: dict[str, Any] = settings.client_config()
        conf.update(
            {
                "client.id": client_id,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": settings.producer_linger_ms,
                "compression.type": "lz4",
                "message.timeout.ms": 120_000,
                "queue.buffering.max.messages": 200_000,
            }
        )
        conf.update(extra)
        self._producer = Producer(conf)
        self._failed: list[tuple[str, str]] = []
        self.delivered = 0

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed.append((f"{msg.topic()}", str(err)))
        else:
            self.delivered += 1

    def produce(self, message: OutMessage) -> None:
        """Queue one message, waiting for queue space instead of failing when it is full."""
        while True:
            try:
                self._producer.produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=list(message.headers) or None,
                    on_delivery=self._on_delivery,
                )
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                self._producer.poll(0.05)
        self._producer.poll(0)

    def produce_all(self, messages: Sequence[OutMessage]) -> None:
        """Queue many messages and wait until every one is acknowledged."""
        for m in messages:
            self.produce(m)
        self.flush()

    def flush(self, timeout_s: float = 120.0) -> None:
        """Wait for all queued messages; raise TransientError if any was not delivered."""
        deadline = time.monotonic() + timeout_s
        remaining = self._producer.flush(timeout_s)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(1.0)
        if remaining:
            msg = f"{remaining} Kafka messages still undelivered after {timeout_s:.0f}s"
            raise TransientError(msg)
        if self._failed:
            failed, self._failed = self._failed, []
            msg = f"{len(failed)} Kafka messages failed delivery, first: {failed[0]}"
            raise TransientError(msg)
