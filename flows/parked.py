"""Which input messages are already on a flow's failed topic, so none is parked twice.

A flow that restarts re-reads its input from the last snapshot (or a replay re-reads a range),
and would park the same bad events again. Parking is idempotent by **origin** (source topic,
partition, offset; :class:`~lernflow.kernel.dlq.Origin`): the first time a worker parks, the
process reads the failed topic's tail — the last ``LERNFLOW_KAFKA_FAILED_DEDUP_TAIL`` envelopes
of each partition, their ``lernflow.source.*`` headers only — and from then on the shell skips
an item whose origin is already there (``lernflow_events_skipped_total{reason_kind=
"already-parked"}``). One index is shared by the workers of a process and kept up to date by
their parkings; a run that parks nothing never reads the tail (docs/architecture.md#the-processor-shell).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from lernflow.config import KafkaSettings
from lernflow.kernel.dlq import Origin, origin_of
from lernflow.sources.kafka import read_tail

logger = logging.getLogger(__name__)

Loader = Callable[[], Iterable[Origin]]


class ParkedOrigins:
    """The origins already parked on one failed topic (read on first use; thread-safe).

    Without a ``load`` function it starts empty (unit tests, an in-memory outbox).
    """

    def __init__(self, load: Loader | None = None) -> None:
        self._load = load
        self._origins: set[Origin] | None = None
        self._lock = threading.Lock()

    def _set(self) -> set[Origin]:
        if self._origins is None:
            self._origins = set(self._load()) if self._load is not None else set()
        return self._origins

    def contains(self, origin: Origin) -> bool:
        """True when ``origin`` is on the failed topic (the tail read, or parked since)."""
        with self._lock:
            return origin in self._set()

    def add(self, origins: Iterable[Origin]) -> None:
        """Record ``origins`` as parked (call after their envelopes are acknowledged)."""
        with self._lock:
            self._set().update(origins)


def tail_loader(kafka: KafkaSettings, topic: str, per_partition: int) -> Loader:
    """A loader of the origins in the last ``per_partition`` envelopes of each partition.

    Best effort: when the tail cannot be read (the topic is missing, Kafka is down), it logs a
    warning and returns what it read; an event may then be parked a second time, which the
    failed-topic readers already tolerate (they keep one envelope per origin).
    """

    def load() -> set[Origin]:
        origins: set[Origin] = set()
        if per_partition <= 0:
            return origins
        t0 = time.perf_counter()
        read = 0
        try:
            for message in read_tail(kafka, topic, per_partition):
                read += 1
                origin = origin_of(message.headers, message.value)
                if origin is not None:
                    origins.add(origin)
        except Exception as exc:  # an index of what is parked must never stop the flow
            logger.warning(
                "could not read the tail of %s (%s: %s): events parked before may be parked again",
                topic, type(exc).__name__, exc,
            )  # fmt: skip
        logger.info(
            "%d parked origins in the last %d envelopes of %s (%.2f s)",
            len(origins), read, topic, time.perf_counter() - t0,
        )  # fmt: skip
        return origins

    return load
