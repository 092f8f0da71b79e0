"""The fault suite's fixtures (``make faults``; docs/reliability.md).

* ``faults_stack``: a second stack of the suite's own — Kafka, Cassandra, Redis, PostgreSQL on
  ports 19xxx (``tests/stackkit.FAULTS_PORTS``) under ``.stack-faults`` — started for the
  session and wiped at its end (``LERNFLOW_FAULTS_KEEP_STACK=1`` keeps it running). Servers are
  paused, restarted and killed only there, never on the main stack other tests use.
* ``new_case``: a fresh case on that stack — every table truncated, Redis flushed, its own topic
  environment, recovery store and certificate store.
* ``clean``: each workload's clean, uninterrupted run, once per session: the reference a fault
  case's end state and outputs are compared with.
* ``record``: a row of the results table. Every row (with the test's outcome) goes to
  ``out/faults/results.json`` and ``out/faults/results.md`` (``python -m tests.faults.report``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from lernflow.certificates import signing
from lernflow.config import Settings, load_settings
from lernflow.devstack import stack
from lernflow.kernel.clients import cassandra_session, kafka_admin, redis_client
from lernflow.ops import schema
from tests.faults.harness import REPO, Case, Reference, Row, produce_events, snapshot
from tests.faults.report import markdown
from tests.faults.workloads import WORKLOADS
from tests.stackkit import FAULTS_PORTS, second_stack_settings

STACK_DIR = Path(os.environ.get("LERNFLOW_FAULTS_STACK_DIR", REPO / ".stack-faults")).resolve()
KEEP_STACK = os.environ.get("LERNFLOW_FAULTS_KEEP_STACK") == "1"
RESULTS = Path(os.environ.get("LERNFLOW_FAULTS_RESULTS", REPO / "out" / "faults" / "results.json"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: the fault and fuzz suite on its own second stack (make faults only)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults" in str(item.path):
            item.add_marker(pytest.mark.faults)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.failed):
        item.stash[_OUTCOME] = report.outcome
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            text = crash.message if crash is not None else str(report.longrepr)
            item.stash[_FAILURE] = (text.strip().splitlines() or [""])[0][:300]
    return report


_OUTCOME = pytest.StashKey[str]()
_FAILURE = pytest.StashKey[str]()


# ---- the stack ------------------------------------------------------------------------------


def _noop(_message: str) -> None:
    pass


@contextlib.contextmanager
def _only_session() -> Iterator[None]:
    """Hold ``.stack-faults/session.lock`` for the session: two sessions on one stack would
    truncate each other's tables and stop each other's servers, so a second one stops at once."""
    lock = (STACK_DIR / "session.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        pytest.exit(f"another fault-suite session (pid {holder}) is using {STACK_DIR}; "
                    "run again when it has ended", returncode=3)  # fmt: skip
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    try:
        yield
    finally:
        lock.close()  # releases the lock


@pytest.fixture(scope="session")
def faults_stack() -> Iterator[Settings]:
    base = load_settings()
    STACK_DIR.mkdir(parents=True, exist_ok=True)
    STACK_DIR.chmod(0o755)  # PostgreSQL runs as the postgres user and must reach its data
    with _only_session():
        yield from _the_stack(base)


def _the_stack(base: Settings) -> Iterator[Settings]:
    s = second_stack_settings(base, STACK_DIR, FAULTS_PORTS, kafka_heap="512m", cassandra_heap="1G")
    assert s.kafka.brokers != base.kafka.brokers and s.cassandra.port != base.cassandra.port
    for srv in stack.servers(s, _noop):
        if srv.is_listening() and not srv.owned_pid():
            pytest.fail(f"port {srv.port} ({srv.name}) is taken by a process this suite did not "
                        f"start; the fault suite needs ports {FAULTS_PORTS}")  # fmt: skip
    stack.up(s, _noop)
    schema.apply_cassandra(s.cassandra)
    keys = STACK_DIR / "certificate-keys"
    if not any(keys.glob("*.private.pem")):
        signing.generate_keys(keys)
    yield s.with_overrides(certificates=s.certificates.model_copy(update={"keys_dir": keys}))
    if not KEEP_STACK:  # failed cases' logs stay in .stack-faults/cases
        stack.down(s, _noop, wipe=True)


def _reset_stores(s: Settings) -> None:
    """Every table of the three keyspaces truncated, every Redis DB flushed (our stack only)."""
    keyspaces = {s.cassandra.courses_keyspace, s.cassandra.sunbird_keyspace,
                 s.cassandra.hierarchy_keyspace}  # fmt: skip
    cluster, session = cassandra_session(s.cassandra)
    try:
        rows = session.execute("SELECT keyspace_name, table_name FROM system_schema.tables")
        for r in rows:
            if r.keyspace_name in keyspaces:
                session.execute(f"TRUNCATE {r.keyspace_name}.{r.table_name}", timeout=120)
    finally:
        cluster.shutdown()
    client = redis_client(s.redis, 0)
    client.flushall()
    client.close()


def _delete_topics(s: Settings) -> None:
    admin = kafka_admin(s.kafka)
    prefix = s.topics.env + "."
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=60).values():
            with contextlib.suppress(Exception):
                future.result()


@pytest.fixture
def new_case(
    faults_stack: Settings, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Case]]:
    made: list[Case] = []

    def make(flow: str, name: str, **overrides: Any) -> Case:
        """A fresh case; ``overrides`` replace fields of the run settings (e.g. snapshot interval)."""
        _reset_stores(faults_stack)
        env = f"faults-{uuid.uuid4().hex[:8]}"
        work = STACK_DIR / "cases" / env
        work.mkdir(parents=True)
        base = faults_stack
        s = base.with_overrides(
            topics=base.topics.model_copy(update={"env": env}),
            run=base.run.model_copy(
                update={"recovery_dir": work / "recovery", "snapshot_interval_s": 1.0, **overrides}
            ),
            # smaller reads: a run advances in more, smaller steps, so a fault lands inside it
            kafka=base.kafka.model_copy(update={"consumer_batch_size": WORKLOADS[flow].read_batch}),
            certificates=base.certificates.model_copy(
                update={"storage_dir": work / "certificates"}
            ),
        )
        schema.apply_topics(s.kafka, s.topics)
        case = Case(name, flow, s, work)
        made.append(case)
        return case

    yield make
    passed = request.node.stash.get(_OUTCOME, "") == "passed"
    for case in made:
        case.close()
        if passed:  # a failed case's logs and topics stay (.stack-faults/cases/<env>)
            _delete_topics(case.settings)
            shutil.rmtree(case.dir, ignore_errors=True)


# ---- the clean reference ----------------------------------------------------------------------


_REFERENCES: dict[str, Reference] = {}


@pytest.fixture
def clean(new_case: Callable[..., Case], results: list[Row]) -> Callable[[str], Reference]:
    def reference(flow: str) -> Reference:
        if flow not in _REFERENCES:
            workload = WORKLOADS[flow]
            case = new_case(flow, "clean run")
            events = workload.load(case.settings)
            produce_events(case.settings, workload.input(case.settings), events)
            t0 = time.monotonic()
            done = case.catch_up()
            seconds = time.monotonic() - t0
            snap = snapshot(case.settings, workload)
            applied = workload.progress(case.settings)
            skipped = int(done.counter("lernflow_events_skipped_total"))
            _REFERENCES[flow] = Reference(snap, len(events), skipped, seconds)
            results.append(Row(
                flow=flow, case="clean run (the reference)", sent=len(events), applied=applied,
                skipped=skipped, parked=snap.parked,
                lost=0, duplicated=0, seconds=round(seconds, 1), outcome="passed",
            ))  # fmt: skip
        return _REFERENCES[flow]

    return reference


# ---- results ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def results() -> Iterator[list[Row]]:
    rows: list[Row] = []
    yield rows
    if not rows:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    new = {(r.flow, r.case): asdict(r) for r in rows}
    kept = [r for r in old if (r["flow"], r["case"]) not in new]
    RESULTS.write_text(json.dumps(kept + list(new.values()), indent=1) + "\n")
    RESULTS.with_suffix(".md").write_text(markdown(kept + list(new.values())))


@pytest.fixture
def record(request: pytest.FixtureRequest, results: list[Row]) -> Iterator[Callable[..., Row]]:
    made: list[tuple[Row, float]] = []

    def row(flow: str, case: str) -> Row:
        """A row, timed from now to the end of the test."""
        made.append((Row(flow=flow, case=case), time.monotonic()))
        return made[-1][0]

    yield row
    for r, t0 in made:
        r.seconds = round(time.monotonic() - t0, 1)
        r.outcome = request.node.stash.get(_OUTCOME, "failed")
        if r.outcome != "passed":
            r.note = (r.note + " " if r.note else "") + request.node.stash.get(_FAILURE, "")
        results.append(r)
