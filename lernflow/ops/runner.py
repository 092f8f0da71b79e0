"""Run a flow: recovery store, worker layout, garbage collection (flows come from the registry).

``lernflow run FLOW`` and ``python -m bytewax.run "lernflow.flows.<module>.flow:build_flow()"`` build the same
dataflow; the CLI adds a recovery store (on by default) and the bounded modes.
"""

from __future__ import annotations

import gc
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow

from lernflow.config import Settings
from lernflow.flows.registry import spec
from lernflow.kernel import shutdown
from lernflow.kernel.clients import kafka_preflight
from lernflow.ops.heartbeat import Heartbeat, Layout, RedisBeatStore
from lernflow.sources.options import RunOptions

logger = logging.getLogger(__name__)


def failed_topic(settings: Settings, flow: str) -> str:
    """Full name of a flow's failed topic."""
    return spec(flow).failed_topic_name(settings)


def input_topic(settings: Settings, flow: str) -> str:
    """Full name of a flow's input topic."""
    return spec(flow).input_topic_name(settings)


def build(flow: str, settings: Settings, options: RunOptions) -> Dataflow:
    """The flow's dataflow (:class:`~flows.registry.UnknownFlow` for an unknown name).

    With Kafka TLS or SASL on, a refused password or certificate stops here, at once, with
    :class:`~lernflow.kernel.clients.AccessRefused` naming the settings.
    """
    kafka_preflight(settings.kafka)
    return spec(flow).build(settings, options)


def recovery_dir(settings: Settings, flow: str) -> Path:
    """Where a flow's recovery store lives: ``<recovery_dir>/<env>/<flow>``."""
    return settings.run.recovery_dir / settings.topics.env / flow


def prepare_recovery(settings: Settings, flow: str, fresh: bool, partitions: int) -> Path:
    """Create the recovery store on first use (or anew when ``fresh``)."""
    from bytewax.recovery import init_db_dir

    path = recovery_dir(settings, flow)
    if fresh and path.exists():
        shutil.rmtree(path)
    if not any(path.glob("part-*.sqlite3")):
        path.mkdir(parents=True, exist_ok=True)
        init_db_dir(path, partitions)  # type: ignore[no-untyped-call]
        logger.info("initialised recovery store %s with %d partitions", path, partitions)
    return path


def recovery_fresh(from_beginning: bool, process_id: int | None, prepared: bool) -> bool:
    """Whether this process recreates the recovery store: process 0 of a run from the
    beginning, unless a local cluster's launcher has prepared it for every process."""
    return from_beginning and (process_id or 0) == 0 and not prepared


def run(
    flow: str,
    settings: Settings,
    options: RunOptions,
    *,
    workers: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    recovery: bool = True,
    recovery_partitions: int = 4,
    recovery_prepared: bool = False,
) -> None:
    """Build and run a flow in this process (blocks until it ends).

    With ``options.from_beginning`` process 0 recreates the recovery store, unless
    ``recovery_prepared`` (a local cluster's launcher has already done it for every process).
    """
    from bytewax._bytewax import cli_main
    from bytewax.recovery import RecoveryConfig

    shutdown.install()  # SIGTERM: drain, snapshot, exit 0
    dataflow = build(flow, settings, options)
    interval = timedelta(seconds=settings.run.snapshot_interval_s)
    recovery_config = None
    if recovery:
        # Only process 0 creates the store; the others share the directory.
        fresh = recovery_fresh(options.from_beginning, process_id, recovery_prepared)
        path = prepare_recovery(settings, flow, fresh, recovery_partitions)
        recovery_config = RecoveryConfig(str(path))  # type: ignore[no-untyped-call]
    # Flows allocate millions of short-lived objects (rows, futures, events) and few cycles: the
    # default GC thresholds spent ~11% of the activity flow's CPU in collections (py-spy).
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    logger.info(
        "running %s: %d worker(s), process %s of %s, recovery %s",
        flow, workers, process_id or 0, len(addresses or [""]), "on" if recovery else "off",
        extra={"workers": workers, "recovery": recovery},
    )  # fmt: skip
    layout = Layout(
        flow,
        input_topic(settings, flow),
        workers,
        process_id or 0,
        len(addresses or [""]),
        recovery_dir(settings, flow) if recovery else None,
    )
    # the live flow beats for `lernflow status` (a replay, reporting no position, does not)
    with _beating(settings, layout, on=options.report_position):
        cli_main(  # type: ignore[no-untyped-call]
            dataflow,
            workers_per_process=workers,
            process_id=process_id,
            addresses=addresses,
            epoch_interval=interval,
            recovery_config=recovery_config,
        )


@contextmanager
def _beating(settings: Settings, layout: Layout, *, on: bool) -> Iterator[None]:
    """Heartbeats while the block runs (:mod:`lernflow.ops.heartbeat`); deleted at its end."""
    if not on:
        yield
        return
    store = RedisBeatStore(settings)
    beats = Heartbeat(store, settings, layout)
    beats.start()
    try:
        yield
    finally:
        beats.stop()
        store.close()
