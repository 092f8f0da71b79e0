"""``lernflow run`` and ``lernflow replay``: process a flow's input, live or a bounded range."""

from __future__ import annotations

import os
import time

import typer

from lernflow.cli.common import (
    console,
    flow_input_topic,
    flow_name,
    get_settings,
    report,
    stops_cleanly,
)
from lernflow.config import Settings
from lernflow.kernel import logs
from lernflow.kernel.errors import ExitCode
from lernflow.ops import cluster, runner
from lernflow.ops import replay as replay_mod
from lernflow.sources.options import RunOptions

_FLOW_ARG = typer.Argument(
    ...,
    help="activity-aggregate-updater | assessment-aggregator | user-cache-updater | "
    "relation-cache-updater | certificate-pre-processor | certificate-generator",
)
_WORKERS_OPT = typer.Option(
    1, "--workers", "-w", min=1, envvar="LERNFLOW_WORKERS", help="Worker threads per process."
)
_PROCESSES_OPT = typer.Option(
    1, "--processes", "-p", min=1, help="Start a local cluster of this many processes."
)
_PROCESS_ID_OPT = typer.Option(
    None,
    "--process-id",
    "-i",
    min=0,
    envvar="LERNFLOW_PROCESS_ID",
    help="This process's id in a multi-host cluster (a StatefulSet pod's ordinal).",
)
_ADDRESSES_OPT = typer.Option(
    None,
    "--addresses",
    "-a",
    envvar="LERNFLOW_ADDRESSES",
    help="All processes' host:port, ';'-separated, in process-id order (with -i).",
)
_UNTIL_CAUGHT_UP_OPT = typer.Option(
    False, "--until-caught-up", help="Process the input up to its end offsets at start, exit 0."
)
_FROM_BEGINNING_OPT = typer.Option(
    False,
    "--from-beginning",
    help="Ignore stored offsets and recovery state; start at the earliest offset (a replay).",
)
_NO_RECOVERY_OPT = typer.Option(
    False, "--no-recovery", help="Run without a recovery store (state is not snapshotted)."
)
_RECOVERY_PREPARED_OPT = typer.Option(
    False,
    "--recovery-prepared",
    hidden=True,
    help="The recovery store is already (re)created for this cluster: do not recreate it.",
)
_METRICS_PORT_OPT = typer.Option(
    None,
    "--metrics-port",
    help="Serve Prometheus metrics (lernflow_* and Bytewax's) on http://0.0.0.0:PORT/metrics.",
)


def _check_cluster_args(process_id: int | None, addresses: str | None, processes: int) -> None:
    if (process_id is None) != (addresses is None) and processes == 1:
        console.print(
            "[red]-i/--process-id (LERNFLOW_PROCESS_ID) and -a/--addresses (LERNFLOW_ADDRESSES) "
            "go together[/red]"
        )
        raise typer.Exit(ExitCode.USAGE)
    if process_id is not None and addresses and process_id >= len(addresses.split(";")):
        console.print(
            f"[red]-i/--process-id {process_id} has no entry in -a/--addresses "
            f"({len(addresses.split(';'))} addresses)[/red]"
        )
        raise typer.Exit(ExitCode.USAGE)


def _serve_metrics(port: int) -> None:
    """Turn on Bytewax's dataflow API (which serves /metrics); children inherit it."""
    os.environ["BYTEWAX_DATAFLOW_API_ENABLED"] = "1"
    os.environ["BYTEWAX_DATAFLOW_API_PORT"] = str(port)


def run_flow(
    flow: str = _FLOW_ARG,
    workers: int = _WORKERS_OPT,
    processes: int = _PROCESSES_OPT,
    process_id: int = _PROCESS_ID_OPT,
    addresses: str = _ADDRESSES_OPT,
    until_caught_up: bool = _UNTIL_CAUGHT_UP_OPT,
    from_beginning: bool = _FROM_BEGINNING_OPT,
    no_recovery: bool = _NO_RECOVERY_OPT,
    metrics_port: int = _METRICS_PORT_OPT,
    recovery_prepared: bool = _RECOVERY_PREPARED_OPT,
) -> None:
    """Run one flow. Reads <env>.<input topic> (LERNFLOW_ENV), writes Sunbird's tables/topics.

    By default the flow keeps a Bytewax recovery store under LERNFLOW_RUN_RECOVERY_DIR and
    resumes from it after a crash; bad events go to the flow's failed topic.

    Exit codes: 0 done; 2 a bad command line; 69 a server stayed unreachable; 70 an internal
    error; 74 a disk is full; 78 a setting, credentials or the schema must be fixed
    (docs/runbook.md). The last line on stderr says why it stopped; -v adds the traceback.
    """
    flow_name(flow)
    settings = get_settings()
    logs.set_context(flow=flow, process=process_id)
    _check_cluster_args(process_id, addresses, processes)
    if metrics_port:
        _serve_metrics(metrics_port)
    options = RunOptions(until_caught_up=until_caught_up, from_beginning=from_beginning)
    if processes > 1:
        code = cluster.run_local(
            settings, flow, processes=processes, workers=workers, until_caught_up=until_caught_up,
            from_beginning=from_beginning, no_recovery=no_recovery,
        )  # fmt: skip
        raise typer.Exit(code)
    t0 = time.monotonic()
    where = None if no_recovery else runner.recovery_dir(settings, flow)
    with stops_cleanly(flow, settings, where):
        runner.run(
            flow,
            settings,
            options,
            workers=workers,
            process_id=process_id,
            addresses=addresses.split(";") if addresses else None,
            recovery=not no_recovery,
            recovery_partitions=max(4, workers),
            recovery_prepared=recovery_prepared,
        )
    report(f"{flow}: finished in {time.monotonic() - t0:.1f}s")


_REPLAY_AGAIN = "nothing is lost: run the same replay again, every flow is replay-safe"


_REPLAY_PROCESSES_OPT = typer.Option(
    1,
    "--processes",
    "-p",
    min=1,
    help="Run the replay in this many local processes (a Bytewax cluster on 127.0.0.1:2101 "
    "and up). The input's partitions are shared out: more processes than partitions gain "
    "nothing.",
)
_CONSUMPTION_MEMORY_OPT = typer.Option(
    2_000_000,
    "--consumption-memory",
    min=0,
    help="activity-aggregate-updater: consumption rows (with their enrolment's row) kept "
    "between rounds instead of read again (about 60 bytes each; checked against the ledger, "
    "so another process counting for the same learner is seen). 0 reads them every round, "
    "as 'lernflow run' does (there: LERNFLOW_ACTIVITY_CONSUMPTION_MEMORY, default 0).",
)

_PREFETCH_OPT = typer.Option(
    2_048,
    "--prefetch-kbytes",
    min=256,
    max=2_097_151,
    help="Kafka messages read ahead per input partition, in KiB. A replay's consumers are "
    "always ahead of the flow, so a small read-ahead costs no speed and ~90 MiB less memory "
    "on four partitions than 'lernflow run' uses (there: LERNFLOW_KAFKA_PREFETCH_KBYTES, "
    "default 16,384).",
)

_RELATION_MEMORY_OPT = typer.Option(
    60.0,
    "--relation-memory",
    min=0,
    max=86_400,
    help="activity-aggregate-updater: seconds the relation-cache sets read are kept for the "
    "next rounds (a course republished meanwhile is seen after at most this long; a course "
    "without leaf nodes is read again every round). 0 reads them every round, as 'lernflow "
    "run' does (there: LERNFLOW_ACTIVITY_RELATION_MEMORY_S, default 0).",
)


def replay_cmd(
    flow: str = typer.Argument(..., help="The flow to replay."),
    start: str = typer.Option(
        ..., "--from", help="ISO time (e.g. 2026-11-24T10:00:00Z) or topic:partition:offset,…"
    ),
    end: str = typer.Option(
        None, "--to", help="ISO time or topic:partition:offset,… (default: the end offsets now)."
    ),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker threads per process."),
    processes: int = _REPLAY_PROCESSES_OPT,
    consumption_memory: int = _CONSUMPTION_MEMORY_OPT,
    prefetch_kbytes: int = _PREFETCH_OPT,
    relation_memory_s: float = _RELATION_MEMORY_OPT,
    process_id: int = typer.Option(None, "--process-id", "-i", min=0, hidden=True),
    addresses: str = typer.Option(None, "--addresses", "-a", hidden=True),
    replay_id: str = typer.Option(None, "--replay-id", hidden=True),
) -> None:
    """Re-process a bounded range of a flow's input (backfill / recovery replay).

    Uses its own recovery store and does not move the live flow's consumer group. Every flow
    is replay-safe, so the state afterwards equals the original processing. Exit codes as
    for 'lernflow run'.
    """
    settings = get_settings()
    topic = flow_input_topic(settings, flow)
    _check_cluster_args(process_id, addresses, processes)
    layout = replay_mod.ReplayLayout(
        workers, process_id, tuple(addresses.split(";")) if addresses else None, replay_id,
        consumption_memory, prefetch_kbytes, relation_memory_s,
    )  # fmt: skip
    with stops_cleanly(f"replay of {flow}", settings, resume=_REPLAY_AGAIN):
        try:
            start_offsets = replay_mod.parse_point(start, topic, settings)
            end_offsets = (
                replay_mod.parse_point(end, topic, settings)
                if end
                else replay_mod.end_offsets(settings, topic)
            )
        except ValueError as exc:
            console.print(f"[red]bad range:[/red] {exc}")
            raise typer.Exit(ExitCode.USAGE) from None
        t0 = time.monotonic()
        if processes > 1:
            code = replay_mod.replay_local(
                flow, settings, start_offsets, end_offsets, processes, layout
            )
            if code:
                raise typer.Exit(code)
            report(f"{flow}: replayed in {processes} processes in {time.monotonic() - t0:.1f}s")
            return
        if process_id is not None:  # one process of a local cluster: no progress bar
            mine = [0]
            total = replay_mod.replay(
                flow, settings, start_offsets, end_offsets,
                lambda done, _total, _elapsed: mine.__setitem__(0, done), layout,
            )  # fmt: skip
            report(
                f"{flow}: process {process_id} replayed {mine[0]:,} of the range's {total:,} "
                f"events in {time.monotonic() - t0:.1f}s"
            )
            return
        total = _replay_with_bar(flow, settings, start_offsets, end_offsets, layout)
    report(f"{flow}: replayed {total:,} events in {time.monotonic() - t0:.1f}s")


def _replay_with_bar(
    flow: str,
    settings: Settings,
    start: dict[tuple[str, int], int],
    end: dict[tuple[str, int], int],
    layout: replay_mod.ReplayLayout,
) -> int:
    """:func:`replay_mod.replay` with a progress bar (events/s, ETA)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(),
        TextColumn("{task.completed:,}/{task.fields[of]} events"), TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"replay {flow}", total=None, rate="", of="?")

        def show(done: int, total: int, elapsed: float) -> None:
            rate = done / elapsed if elapsed > 0 else 0.0
            bar.update(task, completed=done, total=total, rate=f"{rate:,.0f} events/s",
                       of=f"{total:,}")  # fmt: skip

        return replay_mod.replay(flow, settings, start, end, show, layout)
