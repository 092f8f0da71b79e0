"""The fault suite's tools: flows as child processes (killable), server faults on the suite's own
stack, tracked produce, and counting what a run left against a clean run.

Everything here acts on the settings it is given; the fixtures in ``conftest.py`` only ever give
it the second stack's (``tests/stackkit.FAULTS_PORTS``), never the main stack's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from lernflow.config import Settings
from lernflow.devstack import stack
from lernflow.devstack.base import Server
from lernflow.kernel.dlq import Origin, origin_of
from lernflow.ops.runner import failed_topic
from lernflow.sources.kafka import read_tail
from tests.faults.workloads import Workload, identity

REPO = Path(__file__).resolve().parents[2]
# A flow child may not take more than this much address space: a runaway read (a template of
# /dev/zero, a huge value) fails with MemoryError instead of taking the shared machine's memory.
CHILD_ADDRESS_SPACE = 6 * 1024**3
_ALL = 10**9  # "every message" for read_tail


def _limit_memory() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


@dataclass
class FlowProcess:
    """A ``lernflow`` child process: its log (stdout and stderr) and its counters at exit."""

    proc: subprocess.Popen[bytes]
    log: Path
    metrics: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the child and everything it started (its own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float) -> int:
        """The exit code; a child still running after ``timeout`` s is killed (AssertionError)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            msg = f"still running after {timeout:.0f} s, killed; log tail:\n{self.tail()}"
            raise AssertionError(msg) from None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def counters(self) -> dict[str, dict[str, float]]:
        """``lernflow_events_*_total`` at exit (empty when the process was killed)."""
        if not self.metrics.exists():
            return {}
        data: dict[str, dict[str, float]] = json.loads(self.metrics.read_text())
        return data

    def counter(self, name: str, **labels: str) -> float:
        """The sum of a counter's samples whose labels include ``labels``."""
        want = {f"{k}={v}" for k, v in labels.items()}
        return sum(
            v for key, v in self.counters().get(name, {}).items() if want <= set(key.split(","))
        )


@dataclass
class Case:
    """One case of the suite: its settings (own topics, recovery store, certificate store) and
    the flow processes it started."""

    name: str
    flow: str
    settings: Settings
    dir: Path
    processes: list[FlowProcess] = field(default_factory=list)

    def start(self, *args: str, settings: Settings | None = None) -> FlowProcess:
        """``lernflow ARGS`` in a child of its own process group, logging to the case dir."""
        n = len(self.processes)
        log, metrics = self.dir / f"run-{n}.log", self.dir / f"run-{n}.metrics.json"
        env = {**os.environ, **(settings or self.settings).to_env(), "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "tests.faults.runflow", str(metrics), *args]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=REPO, start_new_session=True, preexec_fn=_limit_memory,
            )  # fmt: skip
        flow_process = FlowProcess(proc, log, metrics)
        self.processes.append(flow_process)
        return flow_process

    def run_flow(self, *extra: str) -> FlowProcess:
        """``lernflow run FLOW EXTRA`` (started, not waited for)."""
        return self.start("run", self.flow, *extra)

    def catch_up(self, *extra: str, timeout: float = 240) -> FlowProcess:
        """``lernflow run FLOW --until-caught-up EXTRA``, waited for; it must exit 0."""
        done = self.run_flow("--until-caught-up", *extra)
        code = done.wait(timeout)
        assert code == 0, f"{self.flow} exited {code}: {done.tail(1)}\n{done.tail()}"
        return done

    def close(self) -> None:
        for p in self.processes:
            if p.alive():
                p.kill9()


def keep_log(proc: FlowProcess, name: str) -> Path:
    """Copy a run's log to ``out/faults/logs/<name>.log`` (kept after the case dir is removed)."""
    target = REPO / "out" / "faults" / "logs" / f"{name}.log"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(proc.output())
    return target.relative_to(REPO)


# ---- servers of the suite's stack -------------------------------------------------------------


def server(settings: Settings, name: str) -> Server:
    """The stack's server called ``name`` (redis, kafka, cassandra, postgres)."""
    return next(s for s in stack.servers(settings, lambda _m: None) if s.name == name)


def server_pid(settings: Settings, name: str) -> int:
    pid = server(settings, name).owned_pid()
    assert pid, f"{name} of {settings.stack.dir} is not running under this stack"
    return pid


@contextlib.contextmanager
def paused(settings: Settings, name: str) -> Iterator[int]:
    """SIGSTOP the server (its process group) for the block, SIGCONT after, whatever happens."""
    pid = server_pid(settings, name)
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.killpg(pid, signal.SIGCONT)


def restart(settings: Settings, name: str) -> float:
    """Stop the server (SIGTERM, data kept), start it again, wait until it answers; seconds."""
    t0 = time.monotonic()
    srv = server(settings, name)
    srv.stop()
    srv.await_ready(srv.launch())
    return time.monotonic() - t0


# ---- a small disk ----------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted on ``path`` for the block (needs root: the suite runs as
    root on the project's machine; ``mount -t tmpfs``)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(path)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    assert done.returncode == 0, (
        f"{' '.join(mount)}: {done.stderr.strip()} (the disk-full cases need root)"
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path) -> Path:
    """Write a file into ``path`` until its disk is full; the file (delete it to free space)."""
    filler = path / "filler.bin"
    chunk = b"\0" * 65_536
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError:
            pass
    with contextlib.suppress(OSError), filler.open("ab") as out:  # the last partial block
        while True:
            out.write(b"\0")
            out.flush()
    return filler


# ---- input and output -------------------------------------------------------------------------


def produce_tracked(
    settings: Settings, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]
) -> list[Origin]:
    """Produce ``(key, value)`` messages in order (a value None is a tombstone) and return where
    each landed (topic, partition, offset), in the same order."""
    conf: dict[str, Any] = settings.kafka.client_config()
    conf.update({"enable.idempotence": True, "acks": "all", "message.max.bytes": 2_000_000,
                 "linger.ms": 5, "compression.type": "lz4"})  # fmt: skip
    producer = Producer(conf)
    landed: dict[int, Origin] = {}
    errors: list[str] = []

    def on_delivery(index: int) -> Callable[[Any, Any], None]:
        def done(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(f"message {index}: {err}")
            else:
                landed[index] = Origin(msg.topic(), msg.partition(), msg.offset())

        return done

    for i, (key, value) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery(i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(120)
    assert not errors, errors[:5]
    assert len(landed) == len(messages), f"{len(messages) - len(landed)} messages not acknowledged"
    return [landed[i] for i in range(len(messages))]


def produce_events(settings: Settings, topic: str, events: Sequence[tuple[bytes, bytes]]) -> None:
    produce_tracked(settings, topic, list(events))


def parked_origins(settings: Settings, topic: str) -> Counter[Origin | None]:
    """How many envelopes on the failed topic name each origin (None: no origin found)."""
    return Counter(origin_of(m.headers, m.value) for m in read_tail(settings.kafka, topic, _ALL))


def output_counts(settings: Settings, workload: Workload) -> Counter[str]:
    """Each output message's identity (topic without the env prefix + normalised JSON), counted."""
    out: Counter[str] = Counter()
    for topic in workload.outputs(settings):
        short = topic.split(".", 1)[1]
        for m in read_tail(settings.kafka, topic, _ALL):
            out[f"{short} {identity(m.value)}"] += 1
    return out


@dataclass(frozen=True)
class Snapshot:
    """What a run left: the stored state's rows, the output messages, the parked envelopes."""

    state: Counter[str]
    outputs: Counter[str]
    parked: int


def snapshot(settings: Settings, workload: Workload) -> Snapshot:
    state = Counter(repr(row) for row in workload.state(settings))
    failed = sum(parked_origins(settings, failed_topic(settings, workload.flow)).values())
    return Snapshot(state, output_counts(settings, workload), failed)


def distinct(snap: Snapshot) -> Snapshot:
    """``snap`` with every row and message counted once."""
    return Snapshot(Counter(set(snap.state)), Counter(set(snap.outputs)), snap.parked)


@dataclass(frozen=True)
class Difference:
    """A run against the clean run: rows and messages missing (lost) and extra (duplicated);
    ``resent``: extra messages on topics the flow documents as at-least-once after a crash."""

    lost: int
    duplicated: int
    resent: int
    examples: str

    @property
    def none(self) -> bool:
        return self.lost == 0 and self.duplicated == 0


def compare(clean: Snapshot, got: Snapshot, resends: frozenset[str] = frozenset()) -> Difference:
    """``got`` against ``clean``; extra messages on the ``resends`` topics count as resent."""
    missing = (clean.state - got.state) + (clean.outputs - got.outputs)
    extra = (got.state - clean.state) + (got.outputs - clean.outputs)
    resent = Counter({k: n for k, n in extra.items() if k.split(" ", 1)[0] in resends})
    examples = (
        f"missing {[_short(k) for k in list(missing)[:3]]}; "
        f"extra {[_short(k) for k in list(extra - resent)[:3]]}"
    )
    return Difference(
        sum(missing.values()), sum((extra - resent).values()), sum(resent.values()), examples
    )


def _short(text: str, width: int = 300) -> str:
    return text if len(text) <= width else text[:width] + f"…({len(text)} chars)"


# ---- results ---------------------------------------------------------------------------------


@dataclass
class Reference:
    """A workload's clean run: what it left, how many events it had."""

    snapshot: Snapshot
    sent: int
    skipped: int  # lernflow_events_skipped_total of the run
    seconds: float


@dataclass
class Row:
    """One line of docs/reliability.md's table."""

    flow: str
    case: str
    sent: int = 0
    applied: int | None = None
    skipped: int | None = None
    parked: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    resent: int | None = None  # at-least-once messages sent again (documented per flow)
    seconds: float = 0.0
    outcome: str = ""
    note: str = ""


# ---- checks ------------------------------------------------------------------------------------


def check_clean_state(case: Case, workload: Workload, ref: Reference, row: Row) -> None:
    """Fill the row from what the case left, then require the clean run's state and outputs."""
    got = snapshot(case.settings, workload)
    diff = compare(ref.snapshot, got, workload.resends)
    row.applied = workload.progress(case.settings)
    row.parked, row.lost, row.duplicated = got.parked, diff.lost, diff.duplicated
    row.resent = diff.resent
    debris = workload.debris(case.settings)
    if debris:
        row.note += f"; {len(debris)} temporary file(s) left by the kill, e.g. {debris[0]}"
    assert diff.none, f"{diff.lost} lost, {diff.duplicated} duplicated: {diff.examples}"
    assert got.parked == ref.snapshot.parked, (
        f"{got.parked} parked, clean run {ref.snapshot.parked}"
    )


def assert_running(proc: FlowProcess, applied: int, total: int) -> None:
    """The flow is still running and has work left: a fault now lands inside the run."""
    assert proc.alive(), (
        f"the flow exited ({proc.proc.returncode}) at {applied} of {total}: {proc.tail()}"
    )
    assert applied < total, f"all {total} events applied before the fault"


# ---- waiting ----------------------------------------------------------------------------------


def wait_for_count(
    count: Callable[[], int], target: int, proc: FlowProcess, timeout: float = 180
) -> int:
    """Poll ``count`` until it reaches ``target``; the count reached.

    Returns early (with the count) if the process exits; fails after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        done = count()
        if done >= target or not proc.alive():
            return done
        assert time.monotonic() < deadline, f"{done} of {target} after {timeout:.0f} s"
        time.sleep(0.1)


def wait_for_progress(
    workload: Workload, settings: Settings, target: int, proc: FlowProcess, timeout: float = 180
) -> int:
    """:func:`wait_for_count` on the input events applied (the workload's stored state)."""
    return wait_for_count(lambda: workload.progress(settings), target, proc, timeout)


def no_space_line(output: str) -> str | None:
    """The last non-empty line of ``output`` if it reports a full disk, else None."""
    lines = [line for line in output.splitlines() if line.strip()]
    if lines and re.search(r"no space left|disk is full|ENOSPC", lines[-1], re.IGNORECASE):
        return lines[-1]
    return None
