"""The processor shell: everything the six flows share between the Kafka input and their stores.

::

    Kafka input ──► parse ──► key by shard ──► route ──► BatchProcessor ──► FlowLogic.run_round

A flow is declared once as a :class:`FlowSpec` (name, topics, parser, shard entity, logic) and
the shell does the rest (docs/architecture.md#the-processor-shell):

* **parse** turns each :class:`~sources.kafka.KafkaRecord` into an :class:`Item`: the parsed
  value, a :class:`~flows.skipped.Skipped` event, or the reason it is invalid;
* **shard** keys items so all events of one entity go to one worker, in order;
* **route** hands each worker what arrived, holding nothing across epochs (a snapshot never
  covers an item that is not processed yet);
* :class:`BatchProcessor` parks invalid items on the failed topic, counts skipped ones, splits
  the rest into **rounds** (the k-th item of every key) and gives each round to the flow's
  :class:`FlowLogic`, with a :class:`Round` through which it sends, parks and skips. Every flow
  counts ``lernflow_events_{in,out,skipped,failed}_total`` the same way. A round that fails with
  an error a retry will not fix is run again in halves until the items causing it are found and
  parked; an item already on the failed topic is not parked again (:mod:`flows.parked`).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from lernflow.config import Settings
from lernflow.config.settings import TopicSettings
from lernflow.flows.parked import ParkedOrigins, tail_loader
from lernflow.flows.skipped import Skipped
from lernflow.kernel import metrics
from lernflow.kernel.dlq import Origin, build_envelope, envelope_headers
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.retry import is_event_fault
from lernflow.sinks.kafka_producer import DeliveryTrackingProducer, OutMessage
from lernflow.sinks.processor_sink import ProcessorSink
from lernflow.sources.kafka import KafkaInput, KafkaRecord
from lernflow.sources.options import RunOptions

logger = logging.getLogger(__name__)

V = TypeVar("V")


@dataclass(frozen=True)
class Item(Generic[V]):
    """One input message after parsing: ``value`` or ``error`` (the reason it is invalid)."""

    record: KafkaRecord
    value: V | Skipped | None = None
    error: str | None = None
    error_type: str = "InvalidEvent"
    shard_entity: str = ""


class Outbox(Protocol):
    """Where messages go: our Kafka producer, or an in-memory list in unit tests."""

    def produce_all(self, messages: Sequence[OutMessage]) -> None:
        """Produce every message and wait until each is acknowledged (raise if one fails)."""

    def flush(self) -> None:
        """Wait for anything still queued."""


@dataclass(frozen=True)
class Parking:
    """One item to put on the failed topic, and why."""

    item: Item[Any]
    reason: str
    error_type: str
    isolated: bool = False  # found by isolating a failing round (logged as a warning)


class FailedTopic:
    """A flow's failed topic: each input message is parked there once (by origin).

    ``parked`` knows the origins already on the topic (its tail, read on first use, and what
    this process parked since; :mod:`flows.parked`): an item parked before is skipped and
    counted as ``already-parked``, so a restart or a replay never parks an event twice.
    """

    def __init__(self, flow: str, topic: str, outbox: Outbox, parked: ParkedOrigins) -> None:
        self.flow = flow
        self.topic = topic
        self._outbox = outbox
        self._parked = parked

    def park(self, parkings: Sequence[Parking]) -> None:
        """Send the envelopes of ``parkings`` not parked before, wait, then count and log them."""
        if not parkings:
            return
        new: dict[Origin, Parking] = {}
        for p in parkings:
            origin = origin_of_record(p.item.record)
            if origin in new:  # parked twice in one round (e.g. two users of one request)
                new[origin] = _merged(new[origin], p)
            elif self._parked.contains(origin):
                metrics.EVENTS_SKIPPED.labels(self.flow, "already-parked").inc()
                logger.info("%s is already on %s", p.item.record.coordinates, self.topic)
            else:
                new[origin] = p
        send(
            self.flow,
            self._outbox,
            [failed_message(self.flow, self.topic, p) for p in new.values()],
        )
        self._parked.add(new)
        for p in new.values():
            metrics.EVENTS_FAILED.labels(self.flow, p.error_type).inc()
            rec = p.item.record
            logger.log(
                logging.WARNING if p.isolated else logging.INFO,
                "%s %s to %s: %s: %s", "isolated and parked" if p.isolated else "parked",
                rec.coordinates, self.topic, p.error_type, p.reason,
                extra={"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
                       "error_type": p.error_type},
            )  # fmt: skip


def _merged(first: Parking, second: Parking) -> Parking:
    """One parking of an item with the reasons of both (each reason once)."""
    if second.reason in first.reason.split("; "):
        return first
    return Parking(first.item, f"{first.reason}; {second.reason}", first.error_type, first.isolated)


def origin_of_record(record: KafkaRecord) -> Origin:
    """The origin (topic, partition, offset) that identifies an input message when parked."""
    return Origin(record.topic, record.partition, record.offset)


class Round(Generic[V]):
    """One round of a batch (at most one item per key) and the shell's services to it.

    What the round parks and skips takes effect when it succeeds (:meth:`finish`); a round that
    raises leaves neither, so the shell can run its items again (see :class:`BatchProcessor`).
    """

    def __init__(self, failed: FailedTopic, outbox: Outbox, items: list[Item[V]]):
        self.items = items
        self._failed = failed
        self._outbox = outbox
        self._parked: list[Parking] = []
        self._skipped: dict[str, int] = {}

    def values(self) -> list[tuple[Item[V], V]]:
        """The round's items with their parsed values (all valid and not skipped)."""
        return [(i, i.value) for i in self.items if i.value is not None]  # type: ignore[misc]

    def send(self, messages: Sequence[OutMessage]) -> None:
        """Produce ``messages`` now and wait for every acknowledgement."""
        send(self._failed.flow, self._outbox, messages)

    def park(self, item: Item[Any], reason: str, error_type: str) -> None:
        """Put ``item`` on the failed topic (sent when the round ends) with ``reason``."""
        self._parked.append(Parking(item, reason, error_type))

    def skip(self, kind: str, count: int = 1) -> None:
        """Count ``count`` events deliberately not acted on, under ``kind`` (when the round ends)."""
        self._skipped[kind] = self._skipped.get(kind, 0) + count

    def finish(self) -> None:
        """Send what was parked and count what was skipped during the round (the shell calls this)."""
        parked, self._parked = self._parked, []
        self._failed.park(parked)
        for kind, n in self._skipped.items():
            metrics.EVENTS_SKIPPED.labels(self._failed.flow, kind).inc(n)
        self._skipped = {}


class FlowLogic(Protocol[V]):
    """What a flow supplies: the round key and one round's reads, plan and writes."""

    def round_key(self, value: V) -> object:
        """Items with equal keys run in successive rounds (each sees the previous one's writes).

        ``None``: the item has no ordering constraint the shell must keep — the whole batch is
        one round and the logic orders one entity's items itself (activity merges them).
        """

    def run_round(self, round_: Round[V]) -> None:
        """Read, plan (pure rules) and apply one round.

        Raise on faults. A transient one stops the flow (after the store's retries); any other
        makes the shell run the round's items again in halves to park the ones that cause it,
        so a round must be safe to run again on a subset of its items (writes idempotent,
        replays recognised).
        """

    def close(self) -> None:
        """Release the store's connections."""


class BatchProcessor(Generic[V]):
    """A worker's processor: one per worker, fed what arrived together, in input order.

    **Isolation.** When a round raises an error that is not transient
    (:func:`~lernflow.kernel.retry.is_event_fault`: a server rejecting a value, a rule's
    ``ValueError``), its items run again as two rounds, each half split again while it fails,
    until the items that fail alone are found; each is parked with the error's message
    (``error_type`` the exception's class) and logged as one warning, the rest are applied. A
    round's halves run before the next round, so one key's items stay in order. A transient
    error is raised: the flow stops and resumes from its snapshot.
    """

    def __init__(
        self,
        flow: str,
        failed_topic: str,
        logic: FlowLogic[V],
        outbox: Outbox,
        parked: ParkedOrigins | None = None,
    ):
        self.flow = flow
        self.failed_topic = failed_topic
        self.logic = logic
        self.outbox = outbox
        self.failed = FailedTopic(flow, failed_topic, outbox, parked or ParkedOrigins())

    def process(self, items: list[Item[V]]) -> None:
        """Park the invalid, count the skipped, run the rest in rounds."""
        self.failed.park(
            [Parking(i, i.error or "", i.error_type) for i in items if i.error is not None]
        )
        valid: list[Item[V]] = []
        for item in items:
            if isinstance(item.value, Skipped):
                metrics.EVENTS_SKIPPED.labels(self.flow, item.value.kind).inc()
            elif item.error is None and item.value is not None:
                valid.append(item)
        for items_of_round in rounds(valid, self.logic.round_key):
            self._run(items_of_round)

    def _run(self, items: list[Item[V]]) -> None:
        """Run one round; on an event fault, isolate the items that cause it."""
        round_ = Round(self.failed, self.outbox, items)
        try:
            self.logic.run_round(round_)
            round_.finish()
        except Exception as exc:
            if not is_event_fault(exc):
                raise
            if len(items) == 1:
                self.failed.park([Parking(items[0], error_message(exc), type(exc).__name__, True)])
                return
            logger.info(
                "%s: a round of %d items failed (%s); running it again in halves",
                self.flow, len(items), type(exc).__name__,
            )  # fmt: skip
            half = len(items) // 2
            self._run(items[:half])
            self._run(items[half:])

    def close(self) -> None:
        """Wait for queued messages, then release the flow's connections."""
        self.outbox.flush()
        self.logic.close()


_MESSAGE_CAP = 500  # characters of an error's message kept as a parking reason


def error_message(exc: BaseException) -> str:
    """An error's message as a parking reason: one line, at most 500 characters, no traceback."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MESSAGE_CAP else text[: _MESSAGE_CAP - 1] + "…"


def send(flow: str, outbox: Outbox, messages: Sequence[OutMessage]) -> None:
    """Produce and wait; count ``lernflow_events_out_total`` per topic."""
    if not messages:
        return
    outbox.produce_all(messages)
    per_topic: dict[str, int] = {}
    for m in messages:
        per_topic[m.topic] = per_topic.get(m.topic, 0) + 1
    for topic, n in per_topic.items():
        metrics.EVENTS_OUT.labels(flow, topic).inc(n)


def failed_message(flow: str, failed_topic: str, parking: Parking) -> OutMessage:
    """The failed-topic message for one input item (original payload and coordinates kept)."""
    rec = parking.item.record
    envelope = build_envelope(
        flow=flow,
        reason=parking.reason,
        error_type=parking.error_type,
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        key=rec.key,
        value=rec.value,
        timestamp_ms=rec.timestamp_ms,
    )
    headers = envelope_headers(rec.topic, rec.partition, rec.offset)
    return OutMessage(failed_topic, envelope, key=rec.key, headers=headers)


def rounds(items: Sequence[Item[V]], key: Callable[[V], object]) -> list[list[Item[V]]]:
    """Split items into rounds: round k holds the k-th item of every key, input order kept.

    Items of different keys in one round are independent, so a round's reads and writes can be
    batched; items of the same key run in successive rounds, so each sees the previous one's
    writes.
    """
    out: list[list[Item[V]]] = []
    seen: dict[object, int] = {}
    for item in items:
        k = key(item.value)  # type: ignore[arg-type]
        if k is None:  # the logic orders this item itself: it goes in the first round
            if not out:
                out.append([])
            out[0].append(item)
            continue
        n = seen.get(k, 0)
        seen[k] = n + 1
        if n == len(out):
            out.append([])
        out[n].append(item)
    return out


def parse_with(
    flow: str, parse: Callable[[bytes], V | Skipped], entity: Callable[[V], str]
) -> Callable[[KafkaRecord], Item[V]]:
    """Wrap a pure parser so invalid input becomes an error item instead of an exception.

    Every item that fails here is parked (docs/architecture.md#the-processor-shell):

    * :class:`InvalidEvent` is bad input, said by the parser (``lernflow.kernel.jsondoc`` bounds
      size, nesting and ids): parked with its reason; the park itself is the only log line.
    * ``RecursionError`` is bad input too (a structure deeper than a parser's walk): parked as
      ``InvalidEvent``, one WARNING line, no traceback.
    * Any other exception is a bug in the parser, not in the input: parked as ``ParseError``
      with the exception's text; the first of each exception type logs ERROR with its
      traceback (so the bug is visible once), later ones one WARNING line each.
    """
    reported: set[type[BaseException]] = set()

    def step(record: KafkaRecord) -> Item[V]:
        metrics.EVENTS_IN.labels(flow).inc()
        if record.value is None:
            return Item(record, error="message has no value (tombstone)")
        try:
            value = parse(record.value)
        except InvalidEvent as exc:
            return Item(record, error=exc.reason, error_type=type(exc).__name__)
        except RecursionError:
            logger.warning("parser: %s is nested too deeply to parse", record.coordinates)
            return Item(record, error="event is nested too deeply to parse (RecursionError)")
        except Exception as exc:
            reason = f"parser bug: {exc!r}"
            reason = reason if len(reason) <= 300 else reason[:300] + "…"
            if type(exc) in reported:
                logger.warning("%s on %s (traceback logged before)", reason, record.coordinates)
            else:
                reported.add(type(exc))
                logger.exception("parser bug on %s; the event is parked", record.coordinates)
            return Item(record, error=reason, error_type="ParseError")
        if isinstance(value, Skipped):
            return Item(record, value=value)
        return Item(record, value=value, shard_entity=entity(value))

    return step


def shard_of(shards: int) -> Callable[[Item[Any]], str]:
    """Key function: the item's entity hashed into ``shards`` buckets (stable across processes)."""

    def key(item: Item[Any]) -> str:
        entity = item.shard_entity or f"{item.record.topic}:{item.record.partition}"
        return str(zlib.crc32(entity.encode("utf-8")) % shards)

    return key


class _PassThrough(StatefulBatchLogic[Item[Any], list[Item[Any]], None]):
    """Emit a key's items as soon as they arrive and keep no state between epochs.

    Holding items in a window across epochs would let a snapshot record input offsets past
    items that are not processed yet, which a crash then loses (seen with ``collect`` and
    ``kill -9``; docs/fixes-over-sunbird.md).
    """

    def on_batch(self, values: list[Item[Any]]) -> tuple[list[list[Item[Any]]], bool]:
        return [values], StatefulBatchLogic.DISCARD

    def snapshot(self) -> None:
        return None


def _pass_through(_resume: None) -> _PassThrough:
    return _PassThrough()


@dataclass(frozen=True)
class FlowSpec(Generic[V]):
    """A flow, declared once: what the CLI, status, replay, failed and schema read.

    Attributes:
        name: the flow's name (``lernflow run NAME``; part of the consumer group name).
        summary: one line for ``--help`` and ``lernflow status``.
        input_topic / failed_topic: the topics' short names in the topic settings.
        parse: the pure parser (bytes → value or :class:`Skipped`; raises ``InvalidEvent``).
        parse_with_settings: for a parser that depends on settings, builds it from them
            (used instead of ``parse`` when given).
        entity: the shard entity of a value (all events of one entity stay in order).
        shards: how many shards the settings ask for.
        logic: builds the flow's :class:`FlowLogic` (its store and planner) for one worker.
        output_topics: the short names of the topics the flow produces to (besides failed).
    """

    name: str
    summary: str
    input_topic: Callable[[TopicSettings], str]
    failed_topic: Callable[[TopicSettings], str]
    parse: Callable[[bytes], V | Skipped]
    entity: Callable[[V], str]
    shards: Callable[[Settings], int]
    logic: Callable[[Settings], FlowLogic[V]]
    parse_with_settings: Callable[[Settings], Callable[[bytes], V | Skipped]] | None = None
    output_topics: Callable[[TopicSettings], tuple[str, ...]] = lambda _t: ()

    def input_topic_name(self, settings: Settings) -> str:
        """The input topic's full name (with the environment prefix)."""
        return settings.topics.full(self.input_topic(settings.topics))

    def topic_names(self, t: TopicSettings) -> tuple[str, ...]:
        """Every topic the flow reads or writes, full names: input, failed, outputs."""
        short = (self.input_topic(t), self.failed_topic(t), *self.output_topics(t))
        return tuple(t.full(name) for name in short)

    def failed_topic_name(self, settings: Settings) -> str:
        """The failed topic's full name (with the environment prefix)."""
        return settings.topics.full(self.failed_topic(settings.topics))

    def parked_origins(self, settings: Settings) -> ParkedOrigins:
        """What is on the failed topic already (its tail, read when something is first parked)."""
        failed = self.failed_topic_name(settings)
        return ParkedOrigins(tail_loader(settings.kafka, failed, settings.kafka.failed_dedup_tail))

    def processor(
        self,
        settings: Settings,
        logic: FlowLogic[V] | None = None,
        outbox: Outbox | None = None,
        parked: ParkedOrigins | None = None,
    ) -> BatchProcessor[V]:
        """The per-worker processor (tests pass in-memory ``logic`` stores and ``outbox``).

        ``parked`` is shared by the workers of a process; by default a processor with its own
        ``outbox`` starts from an empty index (nothing read from Kafka), else it reads the tail.
        """
        if parked is None:
            parked = ParkedOrigins() if outbox is not None else self.parked_origins(settings)
        return BatchProcessor(
            self.name,
            self.failed_topic_name(settings),
            logic if logic is not None else self.logic(settings),
            outbox
            if outbox is not None
            else DeliveryTrackingProducer(settings.kafka, client_id=self.name),
            parked,
        )

    def parser(self, settings: Settings) -> Callable[[KafkaRecord], Item[V]]:
        """The parse step of the dataflow (counts ``lernflow_events_in_total``)."""
        parse = (
            self.parse if self.parse_with_settings is None else self.parse_with_settings(settings)
        )
        return parse_with(self.name, parse, self.entity)

    def build(self, settings: Settings, options: RunOptions | None = None) -> Dataflow:
        """The dataflow, with stable step ids (they are the recovery keys)."""
        options = options or RunOptions()
        source = KafkaInput(
            settings.kafka,
            [self.input_topic_name(settings)],
            start=options.start(),
            until_caught_up=options.until_caught_up,
            end_offsets=options.end_offsets,
            commit_group=options.commit_group(settings, self.name),
        )
        flow = Dataflow(self.name)
        records = op.input("kafka-in", flow, source)
        items = op.map("parse", records, self.parser(settings))
        keyed = op.key_on("shard", items, shard_of(self.shards(settings)))
        batches = op.stateful_batch("route", keyed, _pass_through)
        parked = self.parked_origins(settings)  # one per process, shared by its workers
        op.output(
            "process",
            batches,
            ProcessorSink(self.name, lambda: self.processor(settings, parked=parked)),
        )
        return flow
