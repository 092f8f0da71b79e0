"""``lernflow status`` at a glance: heartbeats, verdicts, the 80-column summary, exit codes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from lernflow import cli
from lernflow.cli.status import EXIT_DOWN, EXIT_OK, age, compact, exit_code, summary_table
from lernflow.config import Settings, load_settings
from lernflow.flows.registry import FLOWS
from lernflow.kernel import metrics
from lernflow.ops.heartbeat import Beat, Heartbeat, Layout, index_key, read_beats
from lernflow.ops.status import FlowStatus, ProcessStatus, judge

FLOW = "user-cache-updater"


class MemoryBeatStore:
    """The heartbeat store in a dict; ``now`` stands for Redis's clock (keys expire by it)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.keys: dict[str, tuple[str, float]] = {}
        self.index: dict[str, set[str]] = {}
        self.fail = False

    def put(self, index: str, key: str, value: str, ttl_s: float) -> None:
        if self.fail:
            raise ConnectionError("Redis down")
        self.keys[key] = (value, self.now + ttl_s)
        self.index.setdefault(index, set()).add(key)

    def drop(self, index: str, key: str) -> None:
        self.keys.pop(key, None)
        self.index.get(index, set()).discard(key)

    def read(self, index: str) -> list[str]:
        live = [
            k for k in sorted(self.index.get(index, ())) if self.keys.get(k, ("", -1))[1] > self.now
        ]
        return [self.keys[k][0] for k in live]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings()
    return s.with_overrides(
        topics=s.topics.model_copy(update={"env": "unit-status"}),
        run=s.run.model_copy(update={"heartbeat_interval_s": 5.0, "recovery_dir": tmp_path}),
    )


def _heartbeat(
    settings: Settings, store: MemoryBeatStore, clock: Clock, **layout: object
) -> Heartbeat:
    lay = Layout(FLOW, "unit-status.topic", 2, 0, 1, None)
    return Heartbeat(store, settings, dataclasses.replace(lay, **layout), clock=clock)  # type: ignore[arg-type]


def test_a_beat_says_where_and_how_the_process_runs_and_expires_after_three_intervals(
    settings: Settings,
) -> None:
    store, clock = MemoryBeatStore(), Clock(1_000_000.0)
    store.now = clock.t
    hb = _heartbeat(settings, store, clock)
    hb.beat()
    beats = read_beats(store, "unit-status")[FLOW]
    assert len(beats) == 1
    b = beats[0]
    assert b.workers == 2 and b.process_id == 0 and b.processes == 1 and b.pid > 0 and b.host
    assert b.started == 1_000_000.0 and b.version and not b.recovery
    store.now += 14.9  # within 3 x 5 s
    assert FLOW in read_beats(store, "unit-status")
    store.now += 0.2  # silent for over three intervals: gone
    assert read_beats(store, "unit-status") == {}


def test_a_clean_stop_deletes_the_beat_at_once(settings: Settings) -> None:
    store, clock = MemoryBeatStore(), Clock(1_000_000.0)
    hb = _heartbeat(settings, store, clock)
    hb.start()
    hb.stop()
    assert read_beats(store, "unit-status") == {}
    assert store.index[index_key("unit-status")] == set()


def test_a_beat_measures_the_last_minute_of_this_process_counters(settings: Settings) -> None:
    store, clock = MemoryBeatStore(), Clock(2_000_000.0)
    hb = _heartbeat(settings, store, clock)
    metrics.EVENTS_IN.labels(FLOW).inc(600)  # before the window: not counted after a minute
    for _ in range(20):  # 100 s: 10 events/s, 1 parked every 5 s
        clock.t += 5
        metrics.EVENTS_IN.labels(FLOW).inc(50)
        metrics.EVENTS_FAILED.labels(FLOW, "unit").inc(1)
        beat = hb.beat()
    assert beat.events_per_s == pytest.approx(10.0, rel=0.1)
    assert 600 <= beat.read_last_min <= 650 and 12 <= beat.failed_last_min <= 13
    assert beat.events_in >= 1_600


def test_a_beat_carries_the_lag_gauge_of_its_input_and_its_recovery_store(
    settings: Settings, tmp_path: Path
) -> None:
    store, clock = MemoryBeatStore(), Clock(3_000_000.0)
    metrics.CONSUMER_LAG.labels("unit-status.lagged", "0").set(7)
    metrics.CONSUMER_LAG.labels("unit-status.lagged", "1").set(5)
    (tmp_path / "part-0.sqlite3").write_bytes(b"")
    hb = _heartbeat(settings, store, clock, input_topic="unit-status.lagged", recovery_dir=tmp_path)
    beat = hb.beat()
    assert beat.lag == 12 and beat.recovery
    assert beat.last_snapshot == (tmp_path / "part-0.sqlite3").stat().st_mtime


def test_a_failed_beat_write_never_stops_the_flow(settings: Settings) -> None:
    store, clock = MemoryBeatStore(), Clock(4_000_000.0)
    store.fail = True
    hb = _heartbeat(settings, store, clock)
    hb.beat()
    hb.beat()  # no exception
    dropped: list[str] = []
    store.drop = lambda _index, key: dropped.append(key)  # type: ignore[method-assign,assignment]
    hb.stop()
    assert dropped == []  # the end does not wait for Redis again (the beat expires anyway)


def _beat(**over: object) -> Beat:
    base = Beat(
        FLOW, "h", 1, 0, 1, 1, 0.0, "0.1.0", 60.0, 5.0, 10.0, True, 100, 0, 600, 0, 10.0, 0, None
    )
    return dataclasses.replace(base, **over)  # type: ignore[arg-type]


def test_verdicts() -> None:
    assert judge([], 0).verdict == "stopped"  # no heartbeat, even with nothing to read
    assert judge([_beat()], 0).verdict == "ok"
    idle = _beat(read_last_min=0, events_per_s=0.0)
    assert judge([idle], 0).verdict == "ok"  # running with nothing to read is ok, not stopped
    # a process of a two-process run is missing
    assert judge([_beat(processes=2)], 0).verdict == "failing"
    assert judge([_beat(processes=2), _beat(processes=2, process_id=1, pid=2)], 0).verdict == "ok"
    # parking a tenth of what it reads is failing; a trickle is not
    assert judge([_beat(failed_last_min=60)], 0).verdict == "failing"
    assert judge([_beat(failed_last_min=5)], 0).verdict == "ok"
    # lagging: over 1,000 events and over a minute (plus two snapshots) at the current rate
    assert judge([_beat()], 800).verdict == "ok"  # 10/s x 80 s = 800 allowed, floor 1,000
    assert judge([_beat()], 1_001).verdict == "lagging"
    assert judge([_beat(events_per_s=100.0)], 7_999).verdict == "ok"
    assert judge([idle], 5_000).reasons == ["5,000 events behind, reading nothing"]


def _status(flow: str, verdict: str, running: bool) -> FlowStatus:
    procs = (
        [ProcessStatus("h", 1, k, 2, 4, "2026-12-01T00:00:00+00:00", "0.1.0",
                       "2026-12-04T00:00:00+00:00", 123456.0, 1, 0, 0) for k in range(2)]
        if running else []
    )  # fmt: skip
    return FlowStatus(
        flow, [], 987_654_321, 99_999_999, None, 123_456.7 if running else 0.0,
        verdict, [], procs, "2026-11-01T00:00:00+00:00" if running else None,  # type: ignore[arg-type]
        987_654_321, 8_000_000.0,
    )  # fmt: skip


def test_the_summary_of_six_flows_fits_80_columns_without_wrapping() -> None:
    flows = [
        _status(f, v, v != "stopped")
        for f, v in zip(FLOWS, ["ok", "lagging", "failing", "stopped"] * 2, strict=False)
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(flows, now=1_800_000_000.0))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) == 2 + len(FLOWS)  # header, rule, one line per flow: nothing wrapped
    for name, line in zip(FLOWS, lines[2:], strict=True):
        assert line.startswith(name + " ")  # the whole name, on its own line
    assert "2/2" in lines[2] and "988M" in lines[2]


def test_compact_numbers_and_ages_stay_within_five_characters() -> None:
    for n in (0, 7, 9.99, 9_999, 99_999, 999_999, 99_999_999, 999_999_999, 9_999_999_999, 10**12):
        assert len(compact(n)) <= 5, n
    assert compact(12_345) == "12.3k" and compact(9_999) == "9,999" and compact(None) == "-"
    for s in (0, 59, 61, 3_599, 3_601, 86_399, 86_401, 99 * 86_400, 500 * 86_400):
        assert len(age(s)) <= 5, s
    assert age(3 * 3600 + 5 * 60) == "3h05m" and age(None) == "-"


def test_exit_code_is_non_zero_when_a_flow_is_stopped_or_failing() -> None:
    assert exit_code([_status(FLOW, "ok", True), _status(FLOW, "lagging", True)]) == EXIT_OK
    assert exit_code([_status(FLOW, "ok", True), _status(FLOW, "stopped", False)]) == EXIT_DOWN
    assert exit_code([_status(FLOW, "failing", True)]) == EXIT_DOWN


def test_status_exits_69_with_one_line_when_redis_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LERNFLOW_REDIS_PORT", "1")  # nothing listens there: refused at once
    res = CliRunner().invoke(cli.app, ["status", FLOW])
    assert res.exit_code == 69, res.output
    assert "status unknown" in res.output and "heartbeats" in res.output


def test_status_exits_2_for_an_unknown_flow() -> None:
    assert CliRunner().invoke(cli.app, ["status", "no-such-flow"]).exit_code == 2
