"""The shape every lernflow job shares, and the pieces that wire it.

::

    Kafka input ──► parse ──► key by shard ──► window (max size / timeout) ──► processor sink

* **parse** turns each :class:`~sources.kafka.KafkaRecord` into an :class:`Item`: the parsed
  request, or the reason it is invalid (it is then parked on the failed topic by the processor,
  in input order, never dropped).
* **shard** keys each item so all events of one entity (an enrolment, a user) go to the same
  worker, in order: ``crc32(entity) % shards``.
* **route** sends each shard's items to one worker as they arrive, holding nothing across
  epochs (so a snapshot never covers an item that is not processed yet); the sink receives
  everything that arrived in one activation (up to ``LERNFLOW_KAFKA_CONSUMER_BATCH_SIZE`` per
  partition read) and batches its I/O over it.
* the **processor sink** gets the closed windows of its worker in order; a job's
  :class:`Processor` does the batched reads, calls the pure rules, writes, and produces. Writes
  are idempotent upserts and the rules are replay-safe, so re-processing an epoch after a crash
  leaves the same state.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from config import Settings
from lernflow.kernel import metrics
from lernflow.kernel.dlq import build_envelope, envelope_headers
from lernflow.kernel.errors import InvalidEvent
from sinks.kafka_producer import OutMessage
from sources.kafka import KafkaInput, KafkaRecord
from sources.options import RunOptions

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Item(Generic[T]):
    """One input message after parsing: ``value`` or ``error`` (the reason it is invalid)."""

    record: KafkaRecord
    value: T | None = None
    error: str | None = None
    error_type: str = "InvalidEvent"
    shard_entity: str = ""


def parse_with(
    flow: str, parse: Callable[[bytes], T], entity: Callable[[T], str]
) -> Callable[[KafkaRecord], Item[T]]:
    """Wrap a pure parser so invalid input becomes an error item instead of an exception."""

    def step(record: KafkaRecord) -> Item[T]:
        metrics.EVENTS_IN.labels(flow).inc()
        if record.value is None:
            return Item(record, error="message has no value (tombstone)")
        try:
            value = parse(record.value)
        except InvalidEvent as exc:
            return Item(record, error=exc.reason, error_type=type(exc).__name__)
        except Exception as exc:
            logger.exception("parser failed on %s", record.coordinates)
            return Item(record, error=f"unexpected parse error: {exc!r}", error_type="ParseError")
        return Item(record, value=value, shard_entity=entity(value))

    return step


def shard_of(shards: int) -> Callable[[Item[Any]], str]:
    """Key function: the item's entity hashed into ``shards`` buckets (stable across processes)."""

    def key(item: Item[Any]) -> str:
        entity = item.shard_entity or f"{item.record.topic}:{item.record.partition}"
        return str(zlib.crc32(entity.encode("utf-8")) % shards)

    return key


def failed_message(
    flow: str, failed_topic: str, item: Item[Any], reason: str, error_type: str
) -> OutMessage:
    """The failed-topic message for one input item (original payload and coordinates kept)."""
    rec = item.record
    metrics.EVENTS_FAILED.labels(flow, error_type).inc()
    logger.info(
        "parked %s to %s: %s", rec.coordinates, failed_topic, reason,
        extra={"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
               "error_type": error_type},
    )  # fmt: skip
    return OutMessage(
        failed_topic,
        build_envelope(
            flow=flow,
            reason=reason,
            error_type=error_type,
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            key=rec.key,
            value=rec.value,
            timestamp_ms=rec.timestamp_ms,
        ),
        key=rec.key,
        headers=envelope_headers(rec.topic, rec.partition, rec.offset),
    )


def rounds(items: Sequence[Item[T]], key: Callable[[T], object]) -> list[list[Item[T]]]:
    """Split items into rounds: round k holds the k-th item of every key, input order kept.

    Items of different keys in one round are independent, so a round's reads and writes can be
    batched; items of the same key run in successive rounds, so each sees the previous one's
    writes.
    """
    out: list[list[Item[T]]] = []
    seen: dict[object, int] = {}
    for item in items:
        assert item.value is not None
        k = key(item.value)
        n = seen.get(k, 0)
        seen[k] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(item)
    return out


class _PassThrough(StatefulBatchLogic[Item[Any], list[Item[Any]], None]):
    """Emit a key's items as soon as they arrive and keep no state between epochs.

    The keyed step only routes items (all of one entity to one worker, in order); holding them
    in a window across epochs would let a snapshot record input offsets past items that are not
    yet processed, which a crash then loses (observed with ``collect`` + ``kill -9``).
    """

    def on_batch(self, values: list[Item[Any]]) -> tuple[list[list[Item[Any]]], bool]:
        return [values], StatefulBatchLogic.DISCARD

    def snapshot(self) -> None:
        return None


def _pass_through(_resume: None) -> _PassThrough:
    return _PassThrough()


class Processor(Protocol):
    """A job's per-worker batch processor (owns its connections)."""

    def process(self, items: list[Item[Any]]) -> None:
        """Handle items in order: reads, rules, writes, produce. Raise only on transient faults."""

    def close(self) -> None:
        """Release connections."""


class _ProcessorPartition(StatelessSinkPartition[tuple[str, list[Item[Any]]]]):
    def __init__(self, processor: Processor, flow: str) -> None:
        self._processor = processor
        self._flow = flow

    def write_batch(self, items: list[tuple[str, list[Item[Any]]]]) -> None:
        merged: list[Item[Any]] = []
        for _shard, window in items:
            merged.extend(window)
        if merged:
            metrics.BATCH_SIZE.labels(self._flow).observe(len(merged))
            self._processor.process(merged)

    def close(self) -> None:
        self._processor.close()


class ProcessorSink(DynamicSink[tuple[str, list[Item[Any]]]]):
    """Runs a :class:`Processor` (built once per worker) over the closed windows of that worker."""

    def __init__(self, flow: str, factory: Callable[[], Processor]) -> None:
        self._flow = flow
        self._factory = factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ProcessorPartition:
        return _ProcessorPartition(self._factory(), self._flow)


def kafka_input(
    flow_id: str, settings: Settings, options: RunOptions | None, topic: str
) -> KafkaInput:
    """The flow's source on ``<env>.<topic>``: start, end and position reports from ``options``."""
    options = options or RunOptions()
    return KafkaInput(
        settings.kafka,
        [settings.topics.full(topic)],
        start=options.start(),
        until_caught_up=options.until_caught_up,
        end_offsets=options.end_offsets,
        commit_group=options.commit_group(settings, flow_id),
    )


def windowed_flow(
    flow_id: str,
    settings: Settings,
    source: KafkaInput,
    parse: Callable[[KafkaRecord], Item[Any]],
    processor: Callable[[], Processor],
    shards: int = 64,
) -> Dataflow:
    """Wire the shared shape with stable step ids (they are the recovery keys)."""
    flow = Dataflow(flow_id)
    records = op.input("kafka-in", flow, source)
    items = op.map("parse", records, parse)
    keyed = op.key_on("shard", items, shard_of(shards))
    batches = op.stateful_batch("route", keyed, _pass_through)
    op.output("process", batches, ProcessorSink(flow_id, processor))
    return flow


def group_keys(values: Iterable[T], key: Callable[[T], object]) -> list[object]:
    """Distinct keys in first-seen order."""
    return list(dict.fromkeys(key(v) for v in values))
