"""``lernflow status``: where each flow is in its input, how far behind, what it parked.

Positions come from the consumer group each flow reports to (``<env>-<flow>-group``, committed
at every snapshot), end offsets from the broker, failed counts from the failed topic's offsets,
and the last snapshot time from the recovery store's files. The recent events/s of a partition
comes from the note our source commits with each position (:mod:`sources.position_note`): the
average over about the last minute, 0 when the flow has not committed for two minutes.

Whether a flow runs, where and since when comes from its processes' heartbeats
(:mod:`lernflow.ops.heartbeat`); :func:`judge` turns all of it into one verdict per flow — ok,
lagging, stopped or failing (the rules are in ``docs/runbook.md``, Reading ``lernflow status``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from confluent_kafka import KafkaException, TopicPartition

from lernflow.config import Settings
from lernflow.flows.registry import FLOWS
from lernflow.kernel.clients import kafka_consumer
from lernflow.kernel.errors import TransientError
from lernflow.ops.heartbeat import Beat, RedisBeatStore, iso, read_beats
from lernflow.ops.runner import failed_topic, input_topic, recovery_dir
from lernflow.sources.kafka import kafka_retry, watermarks
from lernflow.sources.options import consumer_group
from lernflow.sources.position_note import decode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionStatus:
    """One input partition of one flow."""

    flow: str
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int | None
    events_per_s: float | None = None  # None: no position note (never run by lernflow)
    committed_at: str | None = None


Verdict = Literal["ok", "lagging", "stopped", "failing"]

#: lagging: more behind than this many events ...
LAG_FLOOR = 1_000
#: ... and than this many seconds of input at the current rate (plus two snapshot intervals)
LAG_SECONDS = 60.0
#: failing: at least this share of the events read in the last minute was parked
FAILING_SHARE = 0.1


@dataclass(frozen=True)
class Judgement:
    """A flow's verdict and why."""

    verdict: Verdict
    reasons: list[str]


@dataclass(frozen=True)
class ProcessStatus:
    """One running process of a flow, as its last heartbeat describes it."""

    host: str
    pid: int
    process_id: int
    processes: int
    workers: int
    started: str
    version: str
    last_beat: str
    events_per_s: float
    read_last_min: int
    failed_last_min: int
    lag: int | None

    @classmethod
    def of(cls, b: Beat) -> ProcessStatus:
        return cls(
            b.host, b.pid, b.process_id, b.processes, b.workers, iso(b.started), b.version,
            iso(b.beat), b.events_per_s, b.read_last_min, b.failed_last_min, b.lag,
        )  # fmt: skip


@dataclass(frozen=True)
class FlowStatus:
    """One flow: verdict, processes, partitions, lag, recent events/s, failed events, snapshot.

    ``lag`` is what the running processes still have to read (their heartbeats' partition lag),
    or, when they do not all report one or the flow is stopped, ``committed_lag``: the end
    offsets minus the positions committed at the last snapshots (where a restart resumes).
    """

    flow: str
    partitions: list[PartitionStatus]
    lag: int | None
    failed_events: int
    last_snapshot: str | None
    events_per_s: float | None = None
    verdict: Verdict = "stopped"
    reasons: list[str] = field(default_factory=list)
    processes: list[ProcessStatus] = field(default_factory=list)
    up_since: str | None = None
    committed_lag: int | None = None
    snapshot_age_s: float | None = None
    failed_last_min: int = 0

    @property
    def running(self) -> bool:
        return bool(self.processes)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {**asdict(self), "running": self.running}


def judge(beats: list[Beat], lag: int | None) -> Judgement:
    """The verdict on a flow from its live heartbeats and its lag (pure; see the runbook).

    stopped — no live heartbeat; failing — running, but fewer processes beat than the run was
    started with, or at least :data:`FAILING_SHARE` of the events read in the last minute were
    parked; lagging — running, and more than :data:`LAG_FLOOR` events and more than
    :data:`LAG_SECONDS` (plus two snapshot intervals) of input at the current rate behind;
    ok — running otherwise, including idle (nothing to read).
    """
    if not beats:
        return Judgement("stopped", ["no live heartbeat"])
    reasons: list[str] = []
    expected = max(b.processes for b in beats)
    live = len({b.process_id for b in beats})
    if live < expected:
        reasons.append(f"{live} of {expected} processes beat")
    read = sum(b.read_last_min for b in beats)
    failed = sum(b.failed_last_min for b in beats)
    if failed and failed >= FAILING_SHARE * read:
        reasons.append(f"parked {failed:,} of {read:,} events read in the last minute")
    if reasons:
        return Judgement("failing", reasons)
    rate = sum(b.events_per_s for b in beats)
    slack = LAG_SECONDS + 2 * max(b.snapshot_interval_s for b in beats)
    if lag is not None and lag > max(LAG_FLOOR, rate * slack):
        behind = f"about {lag / rate:,.0f} s at {rate:,.1f} events/s" if rate else "reading nothing"
        return Judgement("lagging", [f"{lag:,} events behind, {behind}"])
    return Judgement("ok", [])


@dataclass(frozen=True)
class _KafkaView:
    partitions: list[PartitionStatus]
    failed_events: int


def _kafka_view(settings: Settings, flow: str) -> _KafkaView:
    """Positions, end offsets and position notes of the input; the failed topic's size."""
    group = consumer_group(settings, flow)
    topic = input_topic(settings, flow)
    consumer = kafka_consumer(settings.kafka, group_id=group)
    parts: list[PartitionStatus] = []
    failed = 0
    try:
        md = consumer.list_topics(timeout=10)
        tmd = md.topics.get(topic)
        if tmd is not None and tmd.error is None:
            tps = [TopicPartition(topic, p) for p in sorted(tmd.partitions)]
            committed = {
                tp.partition: tp
                for tp in kafka_retry(
                    lambda: consumer.committed(tps, timeout=10), f"committed offsets of {group}"
                )
            }
            now_ms = int(time.time() * 1000)
            for tp in tps:
                _low, high = watermarks(consumer, tp)
                got = committed.get(tp.partition)
                pos = got.offset if got is not None and got.offset >= 0 else None
                note = decode(getattr(got, "metadata", None)) if pos is not None else None
                parts.append(
                    PartitionStatus(
                        flow, topic, tp.partition, pos, high,
                        None if pos is None else high - pos,
                        None if note is None or pos is None else
                        round(note.events_per_s(pos, now_ms), 1),
                        None if note is None else iso(note.committed_ms / 1000),
                    )
                )  # fmt: skip
        ftopic = failed_topic(settings, flow)
        fmd = md.topics.get(ftopic)
        if fmd is not None and fmd.error is None:
            for p in fmd.partitions:
                low, high = watermarks(consumer, TopicPartition(ftopic, p))
                failed += high - low
    finally:
        consumer.close()
    return _KafkaView(parts, failed)


def flow_status(settings: Settings, flow: str, beats: list[Beat]) -> FlowStatus:
    """Collect the status of one flow, given its live heartbeats."""
    view = _kafka_view(settings, flow)
    lags = [p.lag for p in view.partitions if p.lag is not None]
    committed_lag = sum(lags) if lags else None
    live_lags = [b.lag for b in beats]
    lag = (
        sum(x for x in live_lags if x is not None)
        if beats and None not in live_lags
        else committed_lag
    )
    snaps = [b.last_snapshot for b in beats if b.last_snapshot is not None]
    if not snaps:  # stopped, or running elsewhere without a recovery store: this host's store
        snaps = [f.stat().st_mtime for f in recovery_dir(settings, flow).glob("part-*.sqlite3*")]
    last = max(snaps) if snaps else None
    judgement = judge(beats, lag)
    return FlowStatus(
        flow, view.partitions, lag, view.failed_events, None if last is None else iso(last),
        round(sum(b.events_per_s for b in beats), 1) if beats else 0.0,
        judgement.verdict, judgement.reasons, [ProcessStatus.of(b) for b in beats],
        iso(min(b.started for b in beats)) if beats else None, committed_lag,
        None if last is None else round(max(0.0, time.time() - last), 1),
        sum(b.failed_last_min for b in beats),
    )  # fmt: skip


def all_status(settings: Settings, flows: list[str] | None = None) -> list[FlowStatus]:
    """Status of the given flows (every known flow by default), in the registry's order."""
    store = RedisBeatStore(settings)
    try:
        beats = read_beats(store, settings.topics.env)
    finally:
        store.close()
    wanted = [f for f in FLOWS if flows is None or f in flows]
    try:
        return [flow_status(settings, f, beats.get(f, [])) for f in wanted]
    except KafkaException as exc:
        msg = f"Kafka {settings.kafka.brokers} did not answer: {exc}"
        raise TransientError(msg) from exc
