"""``lernflow replay``: re-process a bounded range of a flow's input.

The range is given as a time (``offsets_for_times`` on every partition) or explicit
``topic:partition:offset`` lists. The replay reads through our own Kafka source, keeps its own
recovery store (the live flow's store and consumer group are untouched) and relies on each
flow's replay safety: the state it leaves is the state the original processing left.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lernflow.config import Settings
from lernflow.kernel import metrics
from lernflow.kernel.clients import kafka_consumer
from lernflow.ops import cluster, runner
from lernflow.sources.kafka import kafka_retry, watermarks
from lernflow.sources.options import RunOptions

logger = logging.getLogger(__name__)


def parse_point(text: str, topic: str, settings: Settings) -> dict[tuple[str, int], int]:
    """``2026-11-24T10:00:00Z`` or ``topic:partition:offset,…`` → offsets per partition."""
    if ":" in text and not text[:4].isdigit():
        out: dict[tuple[str, int], int] = {}
        for part in text.split(","):
            t, p, o = part.strip().rsplit(":", 2)
            out[(t, int(p))] = int(o)
        return out
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        msg = f"{text!r} is neither an ISO time nor topic:partition:offset[,…]"
        raise ValueError(msg) from None
    if when.tzinfo is None:
        msg = f"{text!r} has no time zone; add Z or +hh:mm"
        raise ValueError(msg)
    return offsets_for_time(settings, topic, int(when.timestamp() * 1000))


def offsets_for_time(settings: Settings, topic: str, ts_ms: int) -> dict[tuple[str, int], int]:
    """First offset at or after ``ts_ms`` in each partition (the end offset if none)."""
    from confluent_kafka import TopicPartition

    consumer = kafka_consumer(settings.kafka, group_id="lernflow-replay-probe")
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = [TopicPartition(topic, p, ts_ms) for p in sorted(md.partitions)]
        found = kafka_retry(
            lambda: consumer.offsets_for_times(tps, timeout=30), f"offsets for a time in {topic}"
        )
        out = {}
        for tp in found:
            if tp.offset < 0:
                _low, high = watermarks(consumer, TopicPartition(topic, tp.partition))
                out[(topic, tp.partition)] = high
            else:
                out[(topic, tp.partition)] = tp.offset
        return out
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str) -> dict[tuple[str, int], int]:
    """Current end offset of each partition."""
    from confluent_kafka import TopicPartition

    consumer = kafka_consumer(settings.kafka, group_id="lernflow-replay-probe")
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            (topic, p): watermarks(consumer, TopicPartition(topic, p))[1]
            for p in sorted(md.partitions)
        }
    finally:
        consumer.close()


@dataclass(frozen=True)
class ReplayLayout:
    """How a replay runs: ``workers`` threads a process; for one process of a local cluster
    (``lernflow replay -p N``) its id, every process's address and the replay's id, which names
    the recovery store they share; the activity flow's consumption and relation memories and
    the Kafka prefetch per input partition in KiB (None: as set)."""

    workers: int = 1
    process_id: int | None = None
    addresses: tuple[str, ...] | None = None
    replay_id: str | None = None
    consumption_memory: int | None = None
    prefetch_kbytes: int | None = None
    relation_memory_s: float | None = None


def replay_settings(settings: Settings, layout: ReplayLayout) -> Settings:
    """``settings`` with the replay's own recovery store, memories and prefetch."""
    replay_id = layout.replay_id or str(int(time.time()))
    activity, kafka = settings.activity, settings.kafka
    if layout.consumption_memory is not None:
        activity = activity.model_copy(update={"consumption_memory": layout.consumption_memory})
    if layout.relation_memory_s is not None:
        activity = activity.model_copy(update={"relation_memory_s": layout.relation_memory_s})
    if layout.prefetch_kbytes is not None:
        kafka = kafka.model_copy(update={"prefetch_kbytes": layout.prefetch_kbytes})
    return settings.with_overrides(
        run=settings.run.model_copy(
            update={"recovery_dir": settings.run.recovery_dir / "replays" / replay_id}
        ),
        activity=activity,
        kafka=kafka,
    )


def bounded(
    settings: Settings,
    flow: str,
    start: dict[tuple[str, int], int],
    end: dict[tuple[str, int], int],
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """The range on every partition of the input topic: a partition named in neither
    ``start`` nor ``end`` is empty; a start past the end is the end."""
    current = end_offsets(settings, runner.input_topic(settings, flow))
    end = {k: end.get(k, start.get(k, high)) for k, high in current.items()}
    start = {k: min(start.get(k, end[k]), end[k]) for k in current}
    return start, end


def format_point(offsets: dict[tuple[str, int], int]) -> str:
    """``topic:partition:offset,…`` (what :func:`parse_point` reads back)."""
    return ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(offsets.items()))


def replay(
    flow: str,
    settings: Settings,
    start: dict[tuple[str, int], int],
    end: dict[tuple[str, int], int],
    progress: Callable[[int, int, float], None] | None = None,
    layout: ReplayLayout = ReplayLayout(),
) -> int:
    """Run ``flow`` over ``[start, end)``; return the number of messages in the range.

    Every partition of the input topic gets a bounded range: a partition named in neither
    ``start`` nor ``end`` is not replayed. One process of a local cluster counts only its own
    events in ``progress``; the range's total is the whole range's.
    """
    start, end = bounded(settings, flow, start, end)
    total = sum(max(0, end.get(k, 0) - start.get(k, 0)) for k in end)
    replay_s = replay_settings(settings, layout)
    options = RunOptions(start_offsets=dict(start), end_offsets=dict(end), report_position=False)
    done = threading.Event()
    counter: Any = metrics.EVENTS_IN.labels(flow)
    base = counter._value.get()
    t0 = time.monotonic()

    def report() -> None:
        while not done.wait(0.5):
            if progress:
                progress(int(counter._value.get() - base), total, time.monotonic() - t0)

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        runner.run(
            flow,
            replay_s,
            options,
            workers=layout.workers,
            process_id=layout.process_id,
            addresses=list(layout.addresses) if layout.addresses else None,
            recovery=True,
            recovery_partitions=max(4, layout.workers),
            recovery_prepared=layout.addresses is not None,
        )
    finally:
        done.set()
        thread.join()
    if progress:
        progress(int(counter._value.get() - base), total, time.monotonic() - t0)
    return total


def replay_local(
    flow: str,
    settings: Settings,
    start: dict[tuple[str, int], int],
    end: dict[tuple[str, int], int],
    processes: int,
    layout: ReplayLayout,
) -> int:
    """Replay ``[start, end)`` in ``processes`` local processes; the highest exit code.

    The range is fixed here (explicit offsets) and the shared recovery store created once,
    sized for every worker, before the children (``lernflow replay -i K``) start.
    """
    replay_id = f"{int(time.time())}-p{processes}"
    shared = replay_settings(settings, dataclasses.replace(layout, replay_id=replay_id))
    runner.prepare_recovery(shared, flow, fresh=True, partitions=max(4, processes * layout.workers))
    start, end = bounded(settings, flow, start, end)
    base = [
        sys.executable, "-m", "lernflow.cli", "replay", flow,
        "--from", format_point(start), "--to", format_point(end),
        "-w", str(layout.workers), "--replay-id", replay_id,
        "-a", cluster.local_addresses(processes),
    ]  # fmt: skip
    if layout.consumption_memory is not None:
        base += ["--consumption-memory", str(layout.consumption_memory)]
    if layout.prefetch_kbytes is not None:
        base += ["--prefetch-kbytes", str(layout.prefetch_kbytes)]
    if layout.relation_memory_s is not None:
        base += ["--relation-memory", str(layout.relation_memory_s)]
    logger.info("replay of %s: starting %d local processes", flow, processes)
    return cluster.start_processes(base, processes)
