"""The ``lernflow`` command: run flows, manage the local stack and the schema.

Every command reads the same settings (``lernflow config show``); ``LERNFLOW_ENV`` picks the
topic prefix.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import typer
from rich.console import Console
from rich.table import Table

from certificates import render, signing
from certificates import template as tpl
from certificates.model import CertificateData, Signatory
from config import Settings, SettingsError, load_settings
from config.settings import env_var_for
from flows.relation_cache_updater import rules
from flows.relation_cache_updater.processor import RelationCacheWriter
from lernflow.devstack import demo as demo_mod
from lernflow.devstack import stack
from lernflow.kernel import logs
from lernflow.ops import replay as replay_mod
from lernflow.ops import runner, schema
from lernflow.ops.cert_why import explain, title
from lernflow.ops.failed import read_failed, requeue
from lernflow.ops.runner import FLOWS, input_topic
from lernflow.ops.status import all_status
from lernflow.ops.user_cache_rebuild import UserCacheRebuild
from reports.jobs import load, run_job
from reports.runner import run_batches
from sources.options import RunOptions

console = Console(stderr=True)
out = Console()

app = typer.Typer(
    help=(
        "lernflow — Sunbird ED's course-completion, assessment, certificate and cache stream "
        "jobs as Bytewax dataflows, drop-in compatible with Sunbird's topics, tables and Redis "
        "keys.\n\nQuick start: 'lernflow stack up', 'lernflow schema apply', then "
        "'lernflow run <flow>'. Settings come from LERNFLOW_* environment variables "
        "('lernflow config show')."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(
    help=(
        "The local development stack: Kafka 4 (KRaft), Cassandra 5.0, Redis and PostgreSQL "
        "on 127.0.0.1."
    ),
    no_args_is_help=True,
)
schema_app = typer.Typer(
    help="Sunbird-compatible Cassandra keyspaces/tables, Kafka topics, PostgreSQL job_request.",
    no_args_is_help=True,
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
failed_app = typer.Typer(
    help="Inspect a flow's failed topic and put parked events back on the input topic.",
    no_args_is_help=True,
)
relation_app = typer.Typer(
    help="The Redis relation cache (course leaf nodes, ancestors).", no_args_is_help=True
)
user_cache_app = typer.Typer(
    help="The Redis user cache (DB 12, user:<id>) the reports and certificates read.",
    no_args_is_help=True,
)
report_app = typer.Typer(
    help="Sunbird's course exhaust reports (progress, response, userinfo) as CSV files.",
    no_args_is_help=True,
)
cert_app = typer.Typer(
    help="Certificates: signing keys, verification, previews, and why one is missing.",
    no_args_is_help=True,
)
cert_keys_app = typer.Typer(help="The certificate signing keys.", no_args_is_help=True)
cert_app.add_typer(cert_keys_app, name="keys")
app.add_typer(cert_app, name="cert")
app.add_typer(report_app, name="report")
app.add_typer(failed_app, name="failed")
app.add_typer(user_cache_app, name="user-cache")
app.add_typer(relation_app, name="relation-cache")
app.add_typer(stack_app, name="stack")
app.add_typer(schema_app, name="schema")
app.add_typer(config_app, name="config")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None


def _report(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    log_level: str = typer.Option(
        "WARNING",
        "--log-level",
        envvar="LERNFLOW_LOG_LEVEL",
        help="DEBUG, INFO, WARNING or ERROR (-v means DEBUG).",
    ),
    log_format: str = typer.Option(
        "text",
        "--log-format",
        envvar="LERNFLOW_LOG_FORMAT",
        help="text, or json: one JSON object per line (ts, level, logger, msg, flow, process).",
    ),
) -> None:

    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        console.print(f"[red]--log-level / LERNFLOW_LOG_LEVEL:[/red] {log_level!r} is not a level")
        raise typer.Exit(2)
    try:
        logs.configure(logging.DEBUG if verbose else level, log_format)
    except ValueError as exc:
        console.print(f"[red]--log-format / LERNFLOW_LOG_FORMAT:[/red] {exc}")
        raise typer.Exit(2) from None


@stack_app.command("up")
def stack_up() -> None:
    """Start Redis, Kafka and Cassandra unless already running, then wait until each answers.

    Idempotent: a running server is left alone. First start fetches the Kafka and Cassandra
    jars with Maven into the stack dir (LERNFLOW_STACK_DIR, default .stack/).
    """

    settings = _settings()
    try:
        stack.up(settings, _report)
    except stack.StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}")
        raise typer.Exit(1) from None


@stack_app.command("down")
def stack_down(
    wipe: bool = typer.Option(False, "--wipe", help="Also delete the servers' data."),
) -> None:
    """Stop the servers this stack started (by pid file); data is kept unless --wipe."""

    stack.down(_settings(), _report, wipe=wipe)


@stack_app.command("status")
def stack_status(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show each server: up/down, pid, port, RSS, data and log location."""

    rows = stack.status(_settings())
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "up": r.up,
                        "pid": r.pid,
                        "owned": r.owned,
                        "port": r.port,
                        "rss_mb": r.rss_mb,
                        "data_dir": str(r.data_dir),
                        "log": str(r.log_file),
                    }
                    for r in rows
                ]
            )
        )
        return
    table = Table("server", "state", "pid", "port", "RSS MiB", "data dir", "log")
    for r in rows:
        state = "[green]up[/green]" if r.up else "[red]down[/red]"
        if r.up and not r.owned:
            state += " (external)"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb else "-"
        table.add_row(
            r.name, state, str(r.pid or "-"), str(r.port), rss, str(r.data_dir), str(r.log_file)
        )
    out.print(table)
    if not all(r.up for r in rows):
        raise typer.Exit(1)


@schema_app.command("apply")
def schema_apply(
    partitions: int = typer.Option(
        None, "--partitions", help="Partitions for new topics (default LERNFLOW_KAFKA_PARTITIONS)."
    ),
    skip_kafka: bool = typer.Option(False, "--skip-kafka", help="Only Cassandra."),
    skip_cassandra: bool = typer.Option(False, "--skip-cassandra", help="Only Kafka topics."),
    skip_postgres: bool = typer.Option(
        False, "--skip-postgres", help="Leave PostgreSQL (the reports' job_request table) alone."
    ),
) -> None:
    """Create the Sunbird keyspaces, types, tables and indexes, the <env>.* topics, and the
    reports' job_request table in PostgreSQL.

    Idempotent: existing objects are kept (a missing column on an existing table is added).
    """

    settings = _settings()
    if partitions:
        settings = settings.with_overrides(
            kafka=settings.kafka.model_copy(update={"partitions": partitions})
        )
    if not skip_cassandra:
        t0 = time.monotonic()
        n = schema.apply_cassandra(settings.cassandra, _report)
        _report(f"cassandra: {n} statements applied in {time.monotonic() - t0:.1f}s")
    if not skip_kafka:
        t0 = time.monotonic()
        created = schema.apply_topics(settings.kafka, settings.topics)
        _report(
            f"kafka: {len(created)} topics created, "
            f"{len(settings.topics.all_topics()) - len(created)} already present "
            f"[{time.monotonic() - t0:.1f}s]"
        )
    if not skip_postgres and not (skip_cassandra and skip_kafka):
        t0 = time.monotonic()
        done = schema.apply_postgres(settings.postgres)
        _report(f"postgres: {', '.join(done)} [{time.monotonic() - t0:.1f}s]")


def _flow_name(flow: str) -> str:

    if flow not in FLOWS:
        console.print(f"[red]unknown flow {flow!r}[/red]; one of: {', '.join(sorted(FLOWS))}")
        raise typer.Exit(2)
    return flow


@app.command("run")
def run_flow(
    flow: str = typer.Argument(
        ...,
        help="activity-aggregate-updater | assessment-aggregator | user-cache-updater | "
        "relation-cache-updater | certificate-pre-processor | certificate-generator",
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, envvar="LERNFLOW_WORKERS", help="Worker threads per process."
    ),
    processes: int = typer.Option(
        1, "--processes", "-p", min=1, help="Start a local cluster of this many processes."
    ),
    process_id: int = typer.Option(
        None,
        "--process-id",
        "-i",
        min=0,
        envvar="LERNFLOW_PROCESS_ID",
        help="This process's id in a multi-host cluster (a StatefulSet pod's ordinal).",
    ),
    addresses: str = typer.Option(
        None,
        "--addresses",
        "-a",
        envvar="LERNFLOW_ADDRESSES",
        help="All processes' host:port, ';'-separated, in process-id order (with -i).",
    ),
    until_caught_up: bool = typer.Option(
        False, "--until-caught-up", help="Process the input up to its end offsets at start, exit 0."
    ),
    from_beginning: bool = typer.Option(
        False,
        "--from-beginning",
        help="Ignore stored offsets and recovery state; start at the earliest offset (a replay).",
    ),
    no_recovery: bool = typer.Option(
        False, "--no-recovery", help="Run without a recovery store (state is not snapshotted)."
    ),
    metrics_port: int = typer.Option(
        None,
        "--metrics-port",
        help="Serve Prometheus metrics (lernflow_* and Bytewax's) on http://0.0.0.0:PORT/metrics.",
    ),
) -> None:
    """Run one flow. Reads <env>.<input topic> (LERNFLOW_ENV), writes Sunbird's tables/topics.

    By default the flow keeps a Bytewax recovery store under LERNFLOW_RUN_RECOVERY_DIR and
    resumes from it after a crash; bad events go to the flow's failed topic.
    """
    import os
    import subprocess

    _flow_name(flow)
    settings = _settings()
    logs.set_context(flow=flow, process=process_id)
    if (process_id is None) != (addresses is None) and processes == 1:
        console.print(
            "[red]-i/--process-id (LERNFLOW_PROCESS_ID) and -a/--addresses (LERNFLOW_ADDRESSES) "
            "go together[/red]"
        )
        raise typer.Exit(2)
    if process_id is not None and addresses and process_id >= len(addresses.split(";")):
        console.print(
            f"[red]-i/--process-id {process_id} has no entry in -a/--addresses "
            f"({len(addresses.split(';'))} addresses)[/red]"
        )
        raise typer.Exit(2)
    if metrics_port:
        os.environ["BYTEWAX_DATAFLOW_API_ENABLED"] = "1"
        os.environ["BYTEWAX_DATAFLOW_API_PORT"] = str(metrics_port)
    options = RunOptions(until_caught_up=until_caught_up, from_beginning=from_beginning)
    if processes > 1:
        if from_beginning and not no_recovery:
            runner.prepare_recovery(
                settings, flow, fresh=True, partitions=max(4, processes * workers)
            )
        addrs = ";".join(f"127.0.0.1:{2101 + k}" for k in range(processes))
        base = [sys.executable, "-m", "lernflow.cli", "run", flow, "-w", str(workers), "-a", addrs]
        if until_caught_up:
            base.append("--until-caught-up")
        if no_recovery:
            base.append("--no-recovery")
        procs = [
            subprocess.Popen([*base, "-i", str(k)], env=dict(os.environ)) for k in range(processes)
        ]
        codes = [p.wait() for p in procs]
        raise typer.Exit(max(codes))
    t0 = time.monotonic()
    runner.run(
        flow,
        settings,
        options,
        workers=workers,
        process_id=process_id,
        addresses=addresses.split(";") if addresses else None,
        recovery=not no_recovery,
        recovery_partitions=max(4, workers),
    )
    _report(f"{flow}: finished in {time.monotonic() - t0:.1f}s")


@app.command("status")
def status(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Per flow and partition: committed position, end offset, lag, recent events/s, failed
    events (on the flow's failed topic) and the last recovery snapshot.

    events/s is the average over about the last minute, from the note each flow commits with
    its position; 0 when the flow has not committed for two minutes (stopped), '-' when the
    position was not committed by lernflow.
    """

    flows = all_status(_settings())
    if as_json:
        out.print_json(json.dumps([f.as_dict() for f in flows]))
        return

    def dash(v: object) -> str:
        return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)

    table = Table("flow", "partition", "committed", "end", "lag", "events/s", "failed events",
                  "last snapshot")  # fmt: skip
    for f in flows:
        if not f.partitions:
            table.add_row(f.flow, "-", "-", "-", "-", "-", str(f.failed_events),
                          dash(f.last_snapshot))  # fmt: skip
        for p in f.partitions:
            table.add_row(
                f.flow, f"{p.topic}[{p.partition}]", dash(p.committed), dash(p.end), dash(p.lag),
                dash(p.events_per_s), f"{f.failed_events:,}", dash(f.last_snapshot),
            )  # fmt: skip
    out.print(table)


@app.command("replay")
def replay_cmd(
    flow: str = typer.Argument(..., help="The flow to replay."),
    start: str = typer.Option(
        ..., "--from", help="ISO time (e.g. 2026-11-24T10:00:00Z) or topic:partition:offset,…"
    ),
    end: str = typer.Option(
        None, "--to", help="ISO time or topic:partition:offset,… (default: the end offsets now)."
    ),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker threads."),
) -> None:
    """Re-process a bounded range of a flow's input (backfill / recovery replay).

    Uses its own recovery store and does not move the live flow's consumer group. Every flow
    is replay-safe, so the state afterwards equals the original processing.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    settings = _settings()
    topic = input_topic(settings, _flow_name(flow))
    try:
        start_offsets = replay_mod.parse_point(start, topic, settings)
        end_offsets = (
            replay_mod.parse_point(end, topic, settings)
            if end
            else replay_mod.end_offsets(settings, topic)
        )
    except ValueError as exc:
        console.print(f"[red]bad range:[/red] {exc}")
        raise typer.Exit(2) from None
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

        total = replay_mod.replay(flow, settings, start_offsets, end_offsets, show, workers)
    _report(f"{flow}: replayed {total:,} events")


@relation_app.command("rebuild")
def relation_rebuild(
    course: list[str] = typer.Option(..., "--course", help="Collection id (repeatable)."),  # noqa: B008
) -> None:
    """Recompute one course's leafnodes/optionalnodes/ancestors (DB 10) and units (DB 5)
    from its published hierarchy in hierarchy_store.content_hierarchy."""

    writer = RelationCacheWriter(_settings())
    try:
        texts = writer.hierarchies(list(course))
        for cid in course:
            tree = rules.parse_hierarchy(texts[cid])
            if tree is None:
                console.print(f"[red]{cid}: no published hierarchy[/red]")
                raise typer.Exit(1)
            writes = rules.plan(cid, tree)
            writer.write(writes)
            _report(
                f"{cid}: {len(writes.sets)} relation keys, {len(writes.strings)} unit keys written"
            )
    finally:
        writer.close()


@user_cache_app.command("rebuild")
def user_cache_rebuild(
    user: list[str] = typer.Option(  # noqa: B008
        None, "--user", help="Only this user id (repeatable); no state file is kept."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Write nothing; show what would change against Redis."
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Ignore the saved position of an interrupted rebuild."
    ),
    limit: int = typer.Option(None, "--limit", help="Stop after about this many users."),
) -> None:
    """Write every user's cache hash from the Cassandra user tables (Sunbird's bulk user-cache
    indexer): token-range pages, pipelined writes, resumable after an interruption.

    The fields are the ones user-cache-updater writes (names, encrypted email/phone, root org
    and org name, state/district/block/cluster, school name and UDISE code, user types,
    framework) plus usersignintype as the indexer sets it.
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    settings = _settings()
    job = UserCacheRebuild(settings)
    try:
        if user:
            for uid in user:
                try:
                    res = job.one(uid, dry_run)
                except LookupError as exc:
                    console.print(f"[red]{exc}[/red]")
                    raise typer.Exit(1) from None
                _print_rebuild_diffs(res.diffs)
                verb = (
                    "would change"
                    if dry_run and res.changed
                    else "unchanged"
                    if dry_run
                    else "written"
                )
                _report(f"user:{uid} {verb}")
            return
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[users]:>12,} users  {task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False,
        ) as bar:  # fmt: skip
            task = bar.add_task("user-cache rebuild", total=1.0, users=0, rate="")

            def show(fraction: float, users: int, seconds: float) -> None:
                rate = f"{users / seconds:,.0f}/s" if seconds > 0 else ""
                bar.update(task, completed=fraction, users=users, rate=rate)

            res = job.run(dry_run=dry_run, restart=restart, limit=limit, progress=show)
            bar.update(task, completed=1.0 if limit is None else bar.tasks[0].completed)
        if res.resumed_from is not None:
            _report(f"resumed after token {res.resumed_from}")
        if dry_run:
            _print_rebuild_diffs(res.diffs)
            _report(f"dry run: {res.changed:,} of {res.users:,} users would change")
        else:
            rate = res.users / res.seconds if res.seconds else 0.0
            _report(f"{res.users:,} users written in {res.seconds:.1f}s ({rate:,.0f} users/s)")
    finally:
        job.close()


@cert_keys_app.command("init")
def cert_keys_init(
    alg: str = typer.Option("ES256", "--alg", help="ES256 (P-256) or EdDSA (Ed25519)."),
    kid: str = typer.Option(None, "--kid", help="Key id (default: the key's JWK thumbprint)."),
) -> None:
    """Generate a development signing key pair in LERNFLOW_CERT_KEYS_DIR (private key 0600).

    Production keys are made the same way (or by your PKI) and mounted there; the newest key
    signs unless LERNFLOW_CERT_SIGNING_KID names one.
    """

    settings = _settings()
    key = signing.generate_keys(settings.certificates.keys_dir, alg=alg, kid=kid)
    _report(f"{key.alg} key {key.kid} written to {settings.certificates.keys_dir}")


@cert_keys_app.command("export")
def cert_keys_export() -> None:
    """Print the public keys as a JWKS (publish it where verifiers can fetch it)."""

    settings = _settings()
    keys = signing.load_public_keys(settings.certificates.keys_dir)
    if not keys:
        console.print(
            f"[red]no public keys in {settings.certificates.keys_dir}; run 'lernflow cert keys init'[/red]"
        )
        raise typer.Exit(1)
    out.print_json(json.dumps(signing.jwks(keys)))


@cert_app.command("verify")
def cert_verify(
    target: str = typer.Argument(
        ..., help="A certificate PDF, a credential (JWT) file, or a certificate id."
    ),
) -> None:
    """Check a certificate's signature against the public keys and show its claims.

    Exits 1 when the signature does not verify (any tampering, an unknown key, alg none, …) or
    the certificate cannot be found.
    """
    from pathlib import Path

    settings = _settings()
    token: bytes | None
    path = Path(target)
    if path.is_file():
        data = path.read_bytes()
        token = render.extract_attachment(data) if data.startswith(b"%PDF") else data.strip()
        if token is None:
            console.print(f"[red]{target}: no embedded credential in this PDF[/red]")
            raise typer.Exit(1)
    else:
        found = sorted(settings.certificates.storage_dir.glob(f"*/{target}.jwt"))
        if not found:
            console.print(
                f"[red]certificate {target} not found in {settings.certificates.storage_dir}[/red]"
            )
            raise typer.Exit(1)
        token = found[0].read_bytes().strip()
    keys = signing.load_public_keys(settings.certificates.keys_dir)
    try:
        claims = signing.verify_credential(token.decode("utf-8", "replace"), keys)
    except signing.VerificationError as exc:
        console.print(f"[red]NOT VALID: {exc.reason}[/red]")
        raise typer.Exit(1) from None
    out.print_json(json.dumps(claims, default=str))
    _report("signature valid")


@cert_app.command("why")
def cert_why(
    user: str = typer.Option(..., "--user", help="The learner's user id."),
    course: str = typer.Option(..., "--course", help="The course id."),
    batch: str = typer.Option(..., "--batch", help="The batch id."),
) -> None:
    """Walk every rule the pre-processor and generator apply to this enrolment and name the
    one that blocks the certificate (templates, enrolment status, scores, user criteria,
    issuer/signatories, already issued, user cache)."""

    result = explain(_settings(), user, course, batch)
    table = Table("template", "check", "result", "detail")
    marks = {True: "[green]ok[/green]", False: "[red]BLOCKS[/red]", None: "[dim]-[/dim]"}
    for c in result.checks:
        table.add_row(c.template, title(c.step), marks[c.ok], c.detail)
    out.print(table)
    if result.eligible_templates:
        out.print(f"eligible for: {', '.join(result.eligible_templates)}")
    elif result.blocking is not None:
        out.print(f"blocked by: {title(result.blocking.step)} — {result.blocking.detail}")


@cert_app.command("preview")
def cert_preview(
    template: str = typer.Option(
        None, "--template", help="SVG template path or URL (default: the bundled sample)."
    ),
    out_path: str = typer.Option("certificate-preview.png", "--out", help="PNG file to write."),
    renderer: str = typer.Option(
        None, "--renderer", help="weasyprint or cairosvg (default: LERNFLOW_CERT_RENDERER)."
    ),
    name: str = typer.Option("Asha Learner", "--name", help="Recipient name to show."),
) -> None:
    """Render a template with sample values to a PNG (and the PDF beside it), for template authors."""
    from pathlib import Path

    settings = _settings()
    hosts = tuple(h.strip() for h in settings.certificates.template_hosts.split(",") if h.strip())
    cache = tpl.TemplateCache(allowed_hosts=hosts)
    svg = cache.get(template or str(tpl.bundled_template_path()))
    data = CertificateData(
        cert_id="00000000-0000-4000-8000-000000000000", recipient_id="preview-user",
        recipient_name=name, course_id="do_preview", course_name="Python basics",
        batch_id="preview_batch", certificate_name="Course Completion Certificate",
        template_id="preview", issued_date="2026-11-25", issuer_name="Lernflow Academy",
        issuer_url="https://example.org", signatories=(
            Signatory("A. Director", "director", "Director", ""),
            Signatory("B. Registrar", "registrar", "Registrar", ""),
        ),
    )  # fmt: skip
    qr = tpl.qr_data_uri(f"{data.verify_base_url}/{data.cert_id}")
    filled = tpl.fill_svg(svg, tpl.placeholder_values(data, qr))
    pdf = render.render_pdf(filled, renderer or settings.certificates.renderer, allowed_hosts=hosts)  # type: ignore[arg-type]
    Path(out_path).write_bytes(render.preview_png(pdf))
    Path(out_path).with_suffix(".pdf").write_bytes(pdf)
    _report(f"preview written to {out_path} (and {Path(out_path).with_suffix('.pdf')})")


def _report_command(
    job_id: str, batch_id: list[str], course_id: str | None, out_dir: str, explain: bool
) -> None:
    from pathlib import Path

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    settings = _settings()
    t0 = time.monotonic()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} batches"),
        TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task(job_id, total=len(batch_id), rows=0)
        results = run_batches(
            settings, job_id, batch_id, Path(out_dir), course_id=course_id,
            progress=lambda done, total, rows: bar.update(task, completed=done, total=total, rows=rows),
        )  # fmt: skip
    failed = False
    for r in results:
        if r.error:
            failed = True
            console.print(f"[red]{r.batch_id}: {r.error}[/red]")
            continue
        _report(f"{r.batch_id}: {r.rows:,} rows, {r.size:,} bytes -> {r.path}")
        if r.dropped:
            console.print(
                f"[yellow]{r.batch_id}: {len(r.dropped):,} enrolled learners left out: no user:<id> "
                "in the Redis user cache (fix: 'lernflow user-cache rebuild' or --user ID)[/yellow]"
            )
            if explain:
                for uid in r.dropped:
                    out.print(f"  missing user:{uid}", markup=False, highlight=False)
    _report(f"{job_id}: {sum(r.rows for r in results):,} rows in {time.monotonic() - t0:.1f}s")
    if failed:
        raise typer.Exit(1)


_BATCH_OPT = typer.Option(..., "--batch-id", help="Batch id (repeatable).")
_COURSE_OPT = typer.Option(None, "--course-id", help="Only batches of this collection.")
_OUT_OPT = typer.Option("reports-out", "--out", help="Directory the CSV files are written under.")
_EXPLAIN_OPT = typer.Option(
    False, "--explain", help="List the learners left out (no user-cache entry)."
)


@report_app.command("progress-exhaust")
def report_progress(
    batch_id: list[str] = _BATCH_OPT, course_id: str = _COURSE_OPT, out_dir: str = _OUT_OPT,
    explain: bool = _EXPLAIN_OPT,
) -> None:  # fmt: skip
    """Progress per learner: enrolment/completion dates, progress %, certificate, scores."""
    _report_command("progress-exhaust", batch_id, course_id, out_dir, explain)


@report_app.command("response-exhaust")
def report_response(
    batch_id: list[str] = _BATCH_OPT, course_id: str = _COURSE_OPT, out_dir: str = _OUT_OPT,
    explain: bool = _EXPLAIN_OPT,
) -> None:  # fmt: skip
    """Every question response of every assessment attempt."""
    _report_command("response-exhaust", batch_id, course_id, out_dir, explain)


@report_app.command("userinfo-exhaust")
def report_userinfo(
    batch_id: list[str] = _BATCH_OPT, course_id: str = _COURSE_OPT, out_dir: str = _OUT_OPT,
    explain: bool = _EXPLAIN_OPT,
) -> None:  # fmt: skip
    """Learner details (consent rules apply)."""
    _report_command("userinfo-exhaust", batch_id, course_id, out_dir, explain)


@app.command("run-job")
def run_job_command(
    job: str = typer.Argument(..., help="progress-exhaust | response-exhaust | userinfo-exhaust"),
    out_dir: str = typer.Option(
        None, "--out", help="Report root (default LERNFLOW_REPORTS_OUT_DIR)."
    ),
) -> None:
    """Process every pending request of one report in Sunbird's job_request table (PostgreSQL),
    like Sunbird's run-job.sh: statuses, duplicates, per-channel limits, zips and passwords."""
    from pathlib import Path

    settings = _settings()
    root = Path(out_dir) if out_dir else settings.reports.out_dir
    result = run_job(settings, job, root)
    table = Table("request_id", "tag", "status", "files", "error")
    for r in result.requests:
        table.add_row(
            r.request_id, r.tag, r.status, "\n".join(r.download_urls), r.err_message or ""
        )
    out.print(table)
    _report(
        f"{job}: {len(result.requests)} requests ({result.duplicates} duplicates) in "
        f"{result.seconds:.1f}s; files under {root}"
    )


@report_app.command("requests")
def report_requests(
    job: str = typer.Option(None, "--job", help="Only this report's requests."),
) -> None:
    """List the job_request rows and their status."""

    table = Table("request_id", "job", "tag", "status", "iteration", "submitted", "error")
    for r in load(_settings()):
        if job and r.job_id != job:
            continue
        table.add_row(r.request_id, r.job_id, r.tag, r.status, str(r.iteration),
                      str(r.dt_job_submitted or ""), r.err_message or "")  # fmt: skip
    out.print(table)


def _print_rebuild_diffs(lines: list[str]) -> None:
    for line in lines:
        out.print(line, markup=False, highlight=False)


@failed_app.command("show")
def failed_show(
    flow: str = typer.Argument(..., help="The flow whose failed topic to read."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many envelopes to print."),
) -> None:
    """Summarise the failed topic: counts by reason and the latest envelopes."""
    from collections import Counter

    settings = _settings()
    read = read_failed(settings, _flow_name(flow), group=None)
    reasons = Counter(e.reason for e in read.events)
    table = Table("count", "reason")
    for reason, n in reasons.most_common():
        table.add_row(str(n), reason)
    out.print(f"{read.topic}: {len(read.events)} failed events")
    out.print(table)
    for e in read.events[-limit:]:
        out.print(f"{e.topic}[{e.partition}]@{e.offset}  {e.reason}")


@failed_app.command("requeue")
def failed_requeue(
    flow: str = typer.Argument(..., help="The flow whose parked events to put back."),
    reason: str = typer.Option(
        None, "--reason", help="Only requeue events whose reason contains this text."
    ),
) -> None:
    """Put parked events back on their input topic, unchanged, once the cause is fixed.

    Each envelope is requeued once (progress is kept in the <env>-<flow>-group-requeue group).
    """

    requeue(_settings(), _flow_name(flow), _report, only_reason=reason)


@app.command("demo")
def demo() -> None:
    """Run the pipeline end to end on the local stack and print what happened.

    Needs the stack and the schema ('make demo' does both first).
    """

    demo_mod.run(_settings(), lambda m: out.print(m))


@config_app.command("show")
def config_show(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Print the effective settings (secrets hidden) and the env var for each."""

    settings = _settings()
    if as_json:
        out.print_json(json.dumps(settings.as_dict()))
        return
    table = Table("setting", "value", "env var")
    for name, group in settings.groups().items():
        values = settings.as_dict()[name]
        for field, value in values.items():
            table.add_row(f"{name}.{field}", str(value), env_var_for(type(group), field))
    out.print(table)


def main() -> None:
    """Entry point of the ``lernflow`` console script."""
    app(prog_name="lernflow")


if __name__ == "__main__":
    main()
