"""``lernflow replay``: re-process a bounded range of a flow's input.

The range is given as a time (``offsets_for_times`` on every partition) or explicit
``topic:partition:offset`` lists. The replay reads through our own Kafka source, keeps its own
recovery store (the live flow's store and consumer group are untouched) and relies on each
flow's replay safety: the state it leaves is the state the original processing left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lernflow.config import Settings
from lernflow.kernel import metrics
from lernflow.kernel.clients import kafka_consumer
from lernflow.ops import runner
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


def replay(
    flow: str,
    settings: Settings,
    start: dict[tuple[str, int], int],
    end: dict[tuple[str, int], int],
    progress: Callable[[int, int, float], None] | None = None,
    workers: int = 1,
    consumption_memory: int | None = None,
) -> int:
    """Run ``flow`` over ``[start, end)``; return the number of messages in the range.

    Every partition of the input topic gets a bounded range: a partition named in neither
    ``start`` nor ``end`` is not replayed. ``consumption_memory``: the activity flow's
    ``LERNFLOW_ACTIVITY_CONSUMPTION_MEMORY`` for this replay (None: the setting as it is).
    """
    current = end_offsets(settings, runner.input_topic(settings, flow))
    end = {k: end.get(k, start.get(k, high)) for k, high in current.items()}
    start = {k: min(start.get(k, end[k]), end[k]) for k in current}
    total = sum(max(0, end.get(k, 0) - start.get(k, 0)) for k in end)
    activity = settings.activity
    if consumption_memory is not None:
        activity = activity.model_copy(update={"consumption_memory": consumption_memory})
    replay_settings = settings.with_overrides(
        run=settings.run.model_copy(
            update={"recovery_dir": settings.run.recovery_dir / "replays" / f"{int(time.time())}"}
        ),
        activity=activity,
    )
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
        runner.run(flow, replay_settings, options, workers=workers, recovery=True)
    finally:
        done.set()
        thread.join()
    if progress:
        progress(int(counter._value.get() - base), total, time.monotonic() - t0)
    return total
