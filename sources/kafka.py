"""Our Kafka source for Bytewax: one partition per (topic, partition), offsets in snapshots.

Beyond the stock ``bytewax.connectors.kafka.KafkaSource`` it can:

* stop at the end offsets seen at start (``until_caught_up``: tests, backfills, the demo);
* start from explicit per-partition offsets and stop at explicit end offsets (replays);
* commit the snapshotted position to a consumer group (``commit_group``) so ordinary Kafka
  tooling and ``lernflow status`` can show the flow's position and lag. The group is only a
  report: the position that counts is the one in the Bytewax recovery snapshot.

Each item is a :class:`KafkaRecord` carrying its coordinates, so failures can name them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from lernflow.config import KafkaSettings
from lernflow.kernel import metrics, shutdown
from lernflow.kernel.clients import kafka_consumer
from lernflow.kernel.errors import ConfigError, LernflowError, TransientError
from lernflow.kernel.retry import KAFKA_NOT_READY, kafka_not_ready, retry
from lernflow.sources.position_note import PositionHistory

logger = logging.getLogger(__name__)
T = TypeVar("T")

_IDLE_WAIT = timedelta(milliseconds=50)
_LAG_EVERY_S = 5.0  # how often an input partition refreshes lernflow_consumer_lag


@dataclass(frozen=True)
class KafkaRecord:
    """One consumed message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    @property
    def coordinates(self) -> str:
        """``topic[partition]@offset``, for logs and error messages."""
        return f"{self.topic}[{self.partition}]@{self.offset}"


class _Partition(StatefulSourcePartition[KafkaRecord, int]):
    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        partition: int,
        start: int,
        end: int | None,
        batch_size: int,
        commit_group: str | None,
    ) -> None:
        conf: dict[str, Any] = kafka.client_config()
        conf.update(
            {
                "group.id": commit_group or "lernflow-unused",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 50,
                # librdkafka prefetches up to 64 MiB per consumer by default; with one consumer
                # per partition that was most of a replay's memory (LERNFLOW_KAFKA_PREFETCH_KBYTES)
                "queued.max.messages.kbytes": kafka.prefetch_kbytes,
            }
        )
        self._consumer = Consumer(conf)
        self._tp = TopicPartition
        self._topic = topic
        self._partition = partition
        self._next = start
        self._end = end
        self._batch_size = batch_size
        self._commit = commit_group is not None
        self._idle = False
        self._lag_at = 0.0
        self._settled: int | None = None  # the previous snapshot's position (fully processed)
        self._ended = False
        self._history = PositionHistory()
        self._history.note(start, _now_ms())  # rates count from where this process started
        self._consumer.assign([TopicPartition(topic, partition, start)])

    def next_batch(self) -> list[KafkaRecord]:
        if self._end is not None and self._next >= self._end:
            self._ended = True
            raise StopIteration
        if shutdown.STOP.is_set():  # SIGTERM: end the input here; what is in flight drains
            logger.info("%s[%s]: stopping at offset %s", self._topic, self._partition, self._next)
            self._ended = True
            raise StopIteration
        msgs = self._consumer.consume(self._batch_size, 0.01)
        out: list[KafkaRecord] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal():
                    msg = f"fatal Kafka error on {self._topic}[{self._partition}]: {err}"
                    raise RuntimeError(msg)
                logger.warning("Kafka error on %s[%s]: %s", self._topic, self._partition, err)
                continue
            offset = m.offset()
            if offset is None:
                continue
            if self._end is not None and offset >= self._end:
                break
            _kind, ts = m.timestamp()
            out.append(KafkaRecord(self._topic, self._partition, offset, m.key(), m.value(), ts))
            self._next = offset + 1
        self._idle = not out
        self._report_lag()
        return out

    def _report_lag(self) -> None:
        """``lernflow_consumer_lag`` for this partition, refreshed every few seconds."""
        now = time.monotonic()
        if now - self._lag_at < _LAG_EVERY_S:
            return
        self._lag_at = now
        try:
            _low, high = self._consumer.get_watermark_offsets(
                self._tp(self._topic, self._partition), timeout=5, cached=False
            )
        except Exception as exc:  # a metric must never stop the flow
            logger.debug("lag of %s[%s] unknown: %s", self._topic, self._partition, exc)
            return
        metrics.CONSUMER_LAG.labels(self._topic, str(self._partition)).set(
            max(0, high - self._next)
        )

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + _IDLE_WAIT if self._idle else None

    def snapshot(self) -> int:
        # The consumer-group position must never be ahead of what the processors applied: a
        # restart without a Bytewax resume state starts there. ``snapshot`` is called when the
        # input closes an epoch, before that epoch's records are processed downstream; the
        # input only starts the next epoch once the previous one has fully drained. So the
        # position committed now is the one of the *previous* snapshot (a fully processed
        # epoch), and this one waits for the next call (or a clean close). Found by the
        # kill -9 loop over 100k events: committing the current position lost records.
        if self._commit and self._settled is not None:
            self._commit_offset(self._settled)
        self._settled = self._next
        return self._next

    def _commit_offset(self, offset: int) -> None:
        try:
            note = self._history.note(offset, _now_ms()).encode()
            self._consumer.commit(
                offsets=[self._tp(self._topic, self._partition, offset, metadata=note)],
                asynchronous=False,
            )
        except Exception as exc:
            logger.debug("offset report commit failed: %s", exc)

    def close(self) -> None:
        # after a clean end of input (or a SIGTERM drain) everything read was processed
        if self._commit and self._ended:
            self._commit_offset(self._next)
        self._consumer.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def kafka_retry(call: Callable[[], T], what: str) -> T:
    """A Kafka client call, retried while the answer is only "not ready yet" (~30 s in all)."""
    return retry(call, KAFKA_NOT_READY, what, transient=kafka_not_ready)


def watermarks(consumer: Any, tp: Any) -> tuple[int, int]:
    """``get_watermark_offsets``, retried while the partition is not ready."""
    low, high = kafka_retry(
        lambda: consumer.get_watermark_offsets(tp, timeout=30),
        f"watermarks of {tp.topic}[{tp.partition}]",
    )
    return int(low), int(high)


class KafkaInput(FixedPartitionedSource[KafkaRecord, int]):
    """Read topics partition by partition; resume from the snapshot offset after a restart.

    Args:
        kafka: connection settings.
        topics: full topic names.
        start: ``"earliest"``, ``"latest"``, ``"committed"`` (the ``commit_group``'s position,
            else earliest) or a mapping ``{(topic, partition): offset}``; used only when there
            is no recovery snapshot for the partition.
        until_caught_up: stop each partition at the end offset it had when the flow started.
        end_offsets: stop each listed partition at this offset (exclusive).
        commit_group: consumer group to report positions to (``None``: do not commit).
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: list[str],
        *,
        start: str | dict[tuple[str, int], int] = "committed",
        until_caught_up: bool = False,
        end_offsets: dict[tuple[str, int], int] | None = None,
        commit_group: str | None = None,
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._start = start
        self._until_caught_up = until_caught_up
        self._end_offsets = end_offsets or {}
        self._commit_group = commit_group

    def list_parts(self) -> list[str]:
        admin = AdminClient(self._kafka.client_config())
        md = admin.list_topics(timeout=30)
        parts: list[str] = []
        for topic in self._topics:
            tmd = md.topics.get(topic)
            if tmd is None or tmd.error is not None:
                msg = (
                    f"input topic {topic!r} does not exist on {self._kafka.brokers}; "
                    "create it with 'lernflow schema apply' (check LERNFLOW_ENV)"
                )
                raise ConfigError(msg)  # exit 78: a setting or the schema to fix
            parts += [f"{topic}:{p}" for p in sorted(tmd.partitions)]
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        topic, part_s = for_part.rsplit(":", 1)
        partition = int(part_s)
        probe_conf: dict[str, Any] = self._kafka.client_config()
        probe_conf["group.id"] = self._commit_group or "lernflow-probe"
        probe = Consumer(probe_conf)
        try:
            low, high = watermarks(probe, TopicPartition(topic, partition))
            if resume_state is not None:
                start = resume_state
            elif isinstance(self._start, dict):
                start = self._start.get((topic, partition), low)
            elif self._start == "latest":
                start = high
            elif self._start == "committed" and self._commit_group:
                committed = kafka_retry(
                    lambda: probe.committed([TopicPartition(topic, partition)], timeout=30),
                    f"committed offset of {self._commit_group} on {for_part}",
                )[0]
                start = committed.offset if committed.offset >= 0 else low
            else:
                start = low
        finally:
            probe.close()
        start = max(start, low)
        end = self._end_offsets.get((topic, partition))
        if end is None and self._until_caught_up:
            end = high
        logger.info(
            "%s: %s[%s] from offset %s to %s (resume state %s)",
            step_id, topic, partition, start, end, resume_state,
        )  # fmt: skip
        return _Partition(
            self._kafka,
            topic,
            partition,
            start,
            end,
            self._kafka.consumer_batch_size,
            self._commit_group,
        )


def read_to_end(kafka: KafkaSettings, topic: str, timeout_s: float = 60.0) -> list[bytes]:
    """Every message on ``topic`` up to its high watermarks now, in per-partition order.

    Partitions are assigned directly (no consumer group, so no rebalance delay) and each is read
    until its position reaches the high watermark taken at the start: an empty result means the
    topic holds nothing, not that the read gave up early. A missing topic is an error.
    """
    consumer = kafka_consumer(kafka, group_id="lernflow-read-to-end")
    try:
        ends = _nonempty_ends(consumer, topic)
        by_partition: dict[int, list[bytes]] = {p: [] for p in ends}
        if ends:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                msg = f"reading {topic} to its high watermarks {ends} took over {timeout_s:.0f} s"
                raise TransientError(msg)
            for m in consumer.consume(1000, 0.5):
                if m.error() is not None:
                    raise KafkaException(m.error())
                p = m.partition()
                if m.offset() < ends[p]:
                    by_partition[p].append(m.value())
                if m.offset() + 1 >= ends[p]:
                    done.add(p)
        return [v for p in sorted(by_partition) for v in by_partition[p]]
    finally:
        consumer.close()


def _nonempty_ends(consumer: Any, topic: str) -> dict[int, int]:
    """The high watermark of each partition of ``topic`` that holds messages."""
    info = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        msg = f"topic {topic} does not exist ({None if info is None else info.error})"
        raise LernflowError(msg)
    ends: dict[int, int] = {}
    for p in sorted(info.partitions):
        low, high = watermarks(consumer, TopicPartition(topic, p))
        if high > low:
            ends[p] = high
    return ends


# a tail read runs inside a flow process: the same prefetch bound as the input partitions
_TAIL_PREFETCH = {"queued.max.messages.kbytes": "16384"}


@dataclass(frozen=True)
class TailMessage:
    """One message of a topic's tail: where it is, its headers and value."""

    partition: int
    offset: int
    headers: tuple[tuple[str, bytes | None], ...]
    value: bytes | None


def read_tail(
    kafka: KafkaSettings, topic: str, last: int, timeout_s: float = 60.0
) -> Iterator[TailMessage]:
    """The last ``last`` messages of each partition of ``topic``, up to the high watermarks now.

    Like :func:`read_to_end` (partitions assigned, no consumer group), but each partition starts
    ``last`` messages before its end, and messages are yielded as they are read, not kept.
    """
    consumer = kafka_consumer(kafka, group_id="lernflow-read-tail", **_TAIL_PREFETCH)
    try:
        ends = _nonempty_ends(consumer, topic)
        starts = {p: max(watermarks(consumer, TopicPartition(topic, p))[0], end - last)
                  for p, end in ends.items()}  # fmt: skip
        ends = {p: end for p, end in ends.items() if end > starts[p]}
        if ends:
            consumer.assign([TopicPartition(topic, p, starts[p]) for p in ends])
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                msg = f"reading the tail of {topic} to {ends} took over {timeout_s:.0f} s"
                raise TransientError(msg)
            for m in consumer.consume(1000, 0.05):  # at 1000 messages or after 50 ms
                if m.error() is not None:
                    raise KafkaException(m.error())
                p, offset = m.partition(), m.offset()
                if offset < ends[p]:
                    yield TailMessage(p, offset, tuple(m.headers() or ()), m.value())
                if offset + 1 >= ends[p]:
                    done.add(p)
    finally:
        consumer.close()
