"""``lernflow stack``, ``schema``, ``config`` and ``demo``: the local stack and its setup."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from lernflow.cli.common import console, get_settings, out, report
from lernflow.config import Settings
from lernflow.config.settings import env_var_for
from lernflow.devstack import demo as demo_mod
from lernflow.devstack import secure as secure_mod
from lernflow.devstack import stack
from lernflow.ops import schema

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


_SECURE_HELP = (
    "The secured stack instead: TLS and passwords required on every server, its own ports "
    "(29xxx) and dir (.stack-secure); see docs/runbook.md."
)


def _stack_settings(secure: bool) -> Settings:
    settings = get_settings()
    return secure_mod.secure_settings(settings) if secure else settings


@stack_app.command("up")
def stack_up(secure: bool = typer.Option(False, "--secure", help=_SECURE_HELP)) -> None:
    """Start Redis, Kafka, Cassandra and PostgreSQL unless already running, then wait until
    each answers.

    Idempotent: a running server is left alone. First start fetches the Kafka and Cassandra
    jars with Maven into the stack dir (LERNFLOW_STACK_DIR, default .stack/). With --secure,
    a throwaway CA and certificates are made first, and the client settings are written to
    .stack-secure/env.sh (source it to run lernflow against that stack).
    """

    settings = _stack_settings(secure)
    try:
        stack.up(settings, report)
    except stack.StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    if secure:
        env = secure_mod.write_env_file(settings)
        report(f"secure stack: the client settings are in {env}; 'source {env}' to use it")


@stack_app.command("down")
def stack_down(
    wipe: bool = typer.Option(False, "--wipe", help="Also delete the servers' data."),
    secure: bool = typer.Option(False, "--secure", help=_SECURE_HELP),
) -> None:
    """Stop the servers this stack started (by pid file); data is kept unless --wipe."""

    stack.down(_stack_settings(secure), report, wipe=wipe)


def _status_json(rows: list[stack.ServerStatus]) -> str:
    return json.dumps(
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


def _status_table(rows: list[stack.ServerStatus]) -> Table:
    table = Table("server", "state", "pid", "port", "RSS MiB", "data dir", "log")
    for r in rows:
        state = "[green]up[/green]" if r.up else "[red]down[/red]"
        if r.up and not r.owned:
            state += " (external)"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb else "-"
        table.add_row(
            r.name, state, str(r.pid or "-"), str(r.port), rss, str(r.data_dir), str(r.log_file)
        )
    return table


@stack_app.command("status")
def stack_status(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    secure: bool = typer.Option(False, "--secure", help=_SECURE_HELP),
) -> None:
    """Show each server: up/down, pid, port, RSS, data and log location."""

    rows = stack.status(_stack_settings(secure))
    if as_json:
        out.print_json(_status_json(rows))
        return
    out.print(_status_table(rows))
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

    settings = get_settings()
    if partitions:
        settings = settings.with_overrides(
            kafka=settings.kafka.model_copy(update={"partitions": partitions})
        )
    if not skip_cassandra:
        t0 = time.monotonic()
        n = schema.apply_cassandra(settings.cassandra, report)
        report(f"cassandra: {n} statements applied in {time.monotonic() - t0:.1f}s")
    if not skip_kafka:
        t0 = time.monotonic()
        created = schema.apply_topics(settings.kafka, settings.topics)
        report(
            f"kafka: {len(created)} topics created, "
            f"{len(settings.topics.all_topics()) - len(created)} already present "
            f"[{time.monotonic() - t0:.1f}s]"
        )
    if not skip_postgres and not (skip_cassandra and skip_kafka):
        t0 = time.monotonic()
        done = schema.apply_postgres(settings.postgres)
        report(f"postgres: {', '.join(done)} [{time.monotonic() - t0:.1f}s]")


def demo() -> None:
    """Run the pipeline end to end on the local stack and print what happened.

    Needs the stack and the schema ('make demo' does both first).
    """

    demo_mod.run(get_settings(), lambda m: out.print(m))


@dataclass(frozen=True)
class ConfigRow:
    """One setting as ``config show`` prints it (``value`` with secrets masked)."""

    setting: str
    env_var: str
    value: Any


def config_rows(settings: Settings) -> list[ConfigRow]:
    """Every setting, its env var and its effective value (SecretStr fields masked)."""
    values = settings.as_dict()
    return [
        ConfigRow(f"{name}.{field}", env_var_for(type(group), field), value)
        for name, group in settings.groups().items()
        for field, value in values[name].items()
    ]


def _shown(value: Any) -> Text:
    return Text("(not set)" if value is None else str(value))  # Text: no markup in values


def config_table(rows: list[ConfigRow], width: int) -> Table:
    """The settings as a table ``width`` columns wide whose names are never cut: setting, env
    var, value side by side when they fit, else the env var above its setting in one column;
    values wrap."""
    env_w = max(len(r.env_var) for r in rows)
    set_w = max(len(r.setting) for r in rows)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    if width >= set_w + env_w + 30:
        table.add_column("setting", no_wrap=True, min_width=set_w)
        table.add_column("env var", no_wrap=True, min_width=env_w)
        table.add_column("value", overflow="fold")
        for r in rows:
            table.add_row(Text(r.setting), Text(r.env_var), _shown(r.value))
        return table
    table.add_column("env var / setting", no_wrap=True, min_width=max(env_w, set_w + 2))
    table.add_column("value", overflow="fold")
    for r in rows:
        table.add_row(Text.assemble(r.env_var, "\n", ("  " + r.setting, "dim")), _shown(r.value))
    return table


@config_app.command("show")
def config_show(
    as_json: bool = typer.Option(
        False, "--json", help="A JSON list of {setting, env_var, value}, for scripts."
    ),
) -> None:
    """Print every effective setting with its env var (secrets hidden).

    The env var names are never cut: at 80 columns each env var is printed above its setting
    and long values wrap.
    """

    rows = config_rows(get_settings())
    if as_json:
        out.print_json(json.dumps([asdict(r) for r in rows]))
        return
    out.print(config_table(rows, out.width))
