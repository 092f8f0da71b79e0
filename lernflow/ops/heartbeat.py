"""Heartbeats: every running flow process says, every few seconds, that it is alive and how it does.

A beat is one small JSON document in Redis (``LERNFLOW_REDIS_HEARTBEAT_DB``, default 14) under
``lernflow:heartbeat:<env>:<flow>:<host>:<pid>``, written with a time to live of three beat
intervals (``LERNFLOW_RUN_HEARTBEAT_INTERVAL_S``, default 5 s, so 15 s), and listed in the set
``lernflow:heartbeats:<env>``. Redis is where every flow process of a deployment can write (the
cache flows need it anyway) and ``lernflow status`` reads all of them with two calls from
any host; the time to live is kept by Redis's clock, so a process killed with ``kill -9`` (or
a host gone) stops counting as running three intervals after its last beat, whatever the clocks
of the hosts say. A clean end (end of input, SIGTERM drain) deletes the beat at once. Why not
a file in the recovery directory: a status on another host (an operator's shell, a probe in
another pod) could not read it, and a flow may run without one (``--no-recovery``).

A beat carries where and since when the process runs, its layout (process id, processes,
workers), the lernflow version, and what it measured in its own memory: events read and parked
in the last minute (from ``lernflow_events_in_total`` / ``lernflow_events_failed_total``), the
lag of its partitions (``lernflow_consumer_lag``) and its recovery store's last write. See
``docs/runbook.md`` (Reading ``lernflow status``).

A beat is best effort: a failed write is logged (WARNING once, then DEBUG until one succeeds)
and never stops the flow.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import Metric

import lernflow
from lernflow.config import Settings
from lernflow.kernel import metrics
from lernflow.kernel.clients import redis_client
from lernflow.kernel.errors import TransientError

logger = logging.getLogger(__name__)

#: a beat lives this many intervals; a process silent longer is not running
TTL_INTERVALS = 3
#: events/s and parked events are measured over about this window
WINDOW_S = 60.0


def index_key(env: str) -> str:
    """The set listing the beat keys of one topic environment."""
    return f"lernflow:heartbeats:{env}"


def beat_key(env: str, flow: str, host: str, pid: int) -> str:
    """The key of one process's beat."""
    return f"lernflow:heartbeat:{env}:{flow}:{host}:{pid}"


def iso(epoch_s: float) -> str:
    """UTC ISO-8601 to the second."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Beat:
    """What one running flow process reported at its last beat."""

    flow: str
    host: str
    pid: int
    process_id: int
    processes: int
    workers: int
    started: float  # epoch seconds
    version: str
    beat: float  # epoch seconds of this beat (the process's clock)
    interval_s: float
    snapshot_interval_s: float
    recovery: bool
    events_in: int  # since the process started
    events_failed: int
    read_last_min: int
    failed_last_min: int
    events_per_s: float  # read over the last minute (or since start, when shorter)
    lag: int | None  # of this process's input partitions; None before its first poll
    last_snapshot: float | None  # epoch seconds of the recovery store's last write

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> Beat | None:
        """The beat in ``text``; None when it is not one (a foreign or older document)."""
        try:
            doc = json.loads(text)
            return cls(**{f.name: doc[f.name] for f in fields(cls)})
        except (ValueError, KeyError, TypeError):
            return None


class BeatStore(Protocol):
    """Where beats live (Redis; a dict in unit tests)."""

    def put(self, index: str, key: str, value: str, ttl_s: float) -> None: ...

    def drop(self, index: str, key: str) -> None: ...

    def read(self, index: str) -> list[str]:
        """Every live beat listed in ``index`` (forgetting the expired ones)."""
        ...


class RedisBeatStore:
    """Beats in Redis: a key with a time to live per process, and a set listing them."""

    def __init__(self, settings: Settings) -> None:
        self._where = f"Redis {settings.redis.host}:{settings.redis.port} DB "
        self._where += str(settings.redis.heartbeat_db)
        self._client = redis_client(settings.redis, settings.redis.heartbeat_db)

    def put(self, index: str, key: str, value: str, ttl_s: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.set(key, value, px=max(1, int(ttl_s * 1000)))
        pipe.sadd(index, key)
        pipe.expire(index, 86_400)  # an environment nothing runs in any more leaves nothing
        pipe.execute()

    def drop(self, index: str, key: str) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.delete(key)
        pipe.srem(index, key)
        pipe.execute()

    def read(self, index: str) -> list[str]:
        try:
            keys = sorted(self._client.smembers(index))
            values = self._client.mget(keys) if keys else []
            gone = [k for k, v in zip(keys, values, strict=True) if v is None]
            if gone:
                self._client.srem(index, *gone)
        except Exception as exc:
            msg = f"cannot read the flows' heartbeats from {self._where}: {exc}"
            raise TransientError(msg) from exc
        return [v for v in values if v is not None]

    def close(self) -> None:
        self._client.close()


def read_beats(store: BeatStore, env: str) -> dict[str, list[Beat]]:
    """The live beats of an environment, by flow, in process-id order."""
    by_flow: dict[str, list[Beat]] = {}
    for text in store.read(index_key(env)):
        beat = Beat.decode(text)
        if beat is not None:
            by_flow.setdefault(beat.flow, []).append(beat)
    for beats in by_flow.values():
        beats.sort(key=lambda b: (b.process_id, b.host, b.pid))
    return by_flow


def _sum_samples(metric: Any, match: dict[str, str]) -> float | None:
    """Sum of a metric's current samples whose labels include ``match`` (None: no sample)."""
    total: float | None = None
    family: Metric
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            if all(sample.labels.get(k) == v for k, v in match.items()):
                total = (total or 0.0) + sample.value
    return total


@dataclass(frozen=True)
class Layout:
    """Where and how one flow process runs (what a beat says besides its measurements)."""

    flow: str
    input_topic: str
    workers: int
    process_id: int
    processes: int
    recovery_dir: Path | None  # None: run without a recovery store


@dataclass(frozen=True)
class _Point:
    at: float
    read: float
    failed: float


class Heartbeat:
    """Beats for one flow process: :meth:`start` a daemon thread, :meth:`stop` at the end."""

    def __init__(
        self,
        store: BeatStore,
        settings: Settings,
        layout: Layout,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._layout = layout
        self._clock = clock
        self._interval = settings.run.heartbeat_interval_s
        self._snapshot_interval = settings.run.snapshot_interval_s
        self._index = index_key(settings.topics.env)
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._key = beat_key(settings.topics.env, layout.flow, self._host, self._pid)
        self._started = clock()
        read, failed = self._counters()
        self._points: deque[_Point] = deque([_Point(self._started, read, failed)])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def _counters(self) -> tuple[float, float]:
        match = {"flow": self._layout.flow}
        read = _sum_samples(metrics.EVENTS_IN, match) or 0.0
        return read, _sum_samples(metrics.EVENTS_FAILED, match) or 0.0

    def _last_snapshot(self) -> float | None:
        where = self._layout.recovery_dir
        if where is None:
            return None
        try:
            return max((f.stat().st_mtime for f in where.glob("part-*.sqlite3*")), default=None)
        except OSError:
            return None

    def measure(self) -> Beat:
        """Sample this process's counters and describe it (no I/O but the recovery dir)."""
        now = self._clock()
        read, failed = self._counters()
        self._points.append(_Point(now, read, failed))
        while len(self._points) > 2 and self._points[1].at <= now - WINDOW_S:
            self._points.popleft()
        first = self._points[0]
        span = now - first.at
        lag = _sum_samples(metrics.CONSUMER_LAG, {"topic": self._layout.input_topic})
        lay = self._layout
        return Beat(
            lay.flow, self._host, self._pid, lay.process_id, lay.processes, lay.workers,
            self._started, lernflow.__version__, now, self._interval, self._snapshot_interval,
            lay.recovery_dir is not None, int(read), int(failed), int(read - first.read),
            int(failed - first.failed), round((read - first.read) / span, 1) if span > 0 else 0.0,
            None if lag is None else int(lag), self._last_snapshot(),
        )  # fmt: skip

    def beat(self) -> Beat:
        """Measure and write one beat (a failed write is logged, not raised)."""
        beat = self.measure()
        try:
            self._store.put(self._index, self._key, beat.encode(), self._interval * TTL_INTERVALS)
        except Exception as exc:
            level = logging.DEBUG if self._failing else logging.WARNING
            logger.log(level, "%s: heartbeat not written (status will say stopped): %s",
                       self._layout.flow, exc)  # fmt: skip
            self._failing = True
        else:
            if self._failing:
                logger.info("%s: heartbeat written again", self._layout.flow)
            self._failing = False
        return beat

    def _loop(self) -> None:
        while True:
            self.beat()
            if self._stop.wait(self._interval):
                return

    def start(self) -> None:
        """Beat now, then every interval, from a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="lernflow-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and delete the beat: the flow reads as stopped at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, math.ceil(self._interval)))
        if self._failing:  # Redis did not take the last beat: do not wait for it again
            return
        try:
            self._store.drop(self._index, self._key)
        except Exception as exc:
            logger.warning("%s: heartbeat not deleted (it expires in %.0f s): %s",
                           self._layout.flow, self._interval * TTL_INTERVALS, exc)  # fmt: skip
