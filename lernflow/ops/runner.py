"""Run a flow: the registry of flows, run options, recovery store and worker layout.

``lernflow run FLOW`` and ``python -m bytewax.run "flows.<module>:build_flow()"`` build the same
dataflow; the CLI adds a recovery store (on by default) and the bounded modes.
"""

from __future__ import annotations

import gc
import importlib
import logging
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from config import Settings
from lernflow.kernel import shutdown
from sources.options import RunOptions

logger = logging.getLogger(__name__)

#: flow name -> (module, failed-topic setting, input-topic setting)
FLOWS: dict[str, tuple[str, str, str]] = {
    "activity-aggregate-updater": (
        "flows.activity_aggregate_updater.flow", "activity_agg_failed", "course_batch_job_request",
    ),
    "assessment-aggregator": (
        "flows.assessment_aggregator.flow", "telemetry_assess_failed", "telemetry_assess",
    ),
    "user-cache-updater": (
        "flows.user_cache_updater.flow", "telemetry_audit_failed", "telemetry_audit",
    ),
    "relation-cache-updater": (
        "flows.relation_cache_updater.flow", "content_postpublish_failed",
        "content_postpublish_request",
    ),
    "certificate-pre-processor": (
        "flows.certificate_pre_processor.flow", "issue_certificate_failed",
        "issue_certificate_request",
    ),
    "certificate-generator": (
        "flows.certificate_generator.flow", "generate_certificate_failed",
        "generate_certificate_request",
    ),
}  # fmt: skip


def failed_topic(settings: Settings, flow: str) -> str:
    """Full name of a flow's failed topic."""
    return settings.topics.full(getattr(settings.topics, FLOWS[flow][1]))


def input_topic(settings: Settings, flow: str) -> str:
    """Full name of a flow's input topic."""
    return settings.topics.full(getattr(settings.topics, FLOWS[flow][2]))


def build(flow: str, settings: Settings, options: RunOptions) -> Any:
    """Import the flow module and build its dataflow."""
    if flow not in FLOWS:
        msg = f"unknown flow {flow!r}; known: {', '.join(sorted(FLOWS))}"
        raise ValueError(msg)
    module = importlib.import_module(FLOWS[flow][0])
    return module.build_flow(settings, options)


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
) -> None:
    """Build and run a flow in this process (blocks until it ends)."""
    from bytewax._bytewax import cli_main
    from bytewax.recovery import RecoveryConfig

    shutdown.install()  # SIGTERM: drain, snapshot, exit 0
    dataflow = build(flow, settings, options)
    interval = timedelta(seconds=settings.run.snapshot_interval_s)
    recovery_config = None
    if recovery:
        # Only process 0 creates the store; the others share the directory.
        fresh = options.from_beginning and (process_id or 0) == 0
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
    cli_main(  # type: ignore[no-untyped-call]
        dataflow,
        workers_per_process=workers,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=interval,
        recovery_config=recovery_config,
    )
