"""Create the Sunbird-compatible Cassandra schema and the Kafka topics, idempotently.

The CQL lives in ``resources/schema.cql`` with ``$courses``/``$sunbird``/``$hierarchy``
placeholders for the keyspace settings. For tables that already exist (an adopter's Sunbird
cluster) any column our schema has and the table lacks is added with ``ALTER TABLE``; nothing
is ever dropped or retyped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from string import Template

from lernflow.config import CassandraSettings, KafkaSettings, PostgresSettings, TopicSettings
from lernflow.flows.registry import FLOWS
from lernflow.kernel.clients import cassandra_session, kafka_admin, postgres_connect

logger = logging.getLogger(__name__)

_CREATE_TABLE = re.compile(
    r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*\((.*?)\)\s*(?:WITH\b.*)?$",
    re.IGNORECASE | re.DOTALL,
)


def cql_statements(settings: CassandraSettings, keyspace_prefix: str = "") -> list[str]:
    """Return the schema as a list of CQL statements for these keyspace settings.

    ``keyspace_prefix`` is prepended to every keyspace name (tests use it for isolation).
    """
    text = resources.files("lernflow").joinpath("resources/schema.cql").read_text()
    replication = (
        f"{{'class': 'SimpleStrategy', 'replication_factor': {settings.replication_factor}}}"
    )
    text = Template(text).substitute(
        courses=keyspace_prefix + settings.courses_keyspace,
        sunbird=keyspace_prefix + settings.sunbird_keyspace,
        hierarchy=keyspace_prefix + settings.hierarchy_keyspace,
        replication=replication,
    )
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _columns(body: str) -> dict[str, str]:
    """Parse ``name type`` pairs of a CREATE TABLE body (ignoring PRIMARY KEY clauses)."""
    cols: dict[str, str] = {}
    depth, current, parts = 0, "", []
    for ch in body:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    for part in parts:
        words = part.split()
        if len(words) < 2 or words[0].upper() == "PRIMARY":
            continue
        cols[words[0]] = " ".join(w for w in words[1:] if w.upper() not in ("PRIMARY", "KEY"))
    return cols


@dataclass(frozen=True)
class TableDef:
    """One table our schema creates: its keyspace, name, and column → CQL type."""

    keyspace: str
    table: str
    columns: dict[str, str]


def table_defs(settings: CassandraSettings, keyspace_prefix: str = "") -> list[TableDef]:
    """Every table of the schema for these keyspace settings (``lernflow doctor`` compares
    them with ``system_schema``)."""
    out = []
    for stmt in cql_statements(settings, keyspace_prefix):
        match = _CREATE_TABLE.match(stmt)
        if match:
            keyspace, table, body = match.groups()
            out.append(TableDef(keyspace, table, _columns(body)))
    return out


def apply_cassandra(
    settings: CassandraSettings,
    report: Callable[[str], None] = lambda _m: None,
    keyspace_prefix: str = "",
) -> int:
    """Apply the schema; return the number of statements executed (DDL and ALTERs)."""
    cluster, session = cassandra_session(settings)
    executed = 0
    try:
        for stmt in cql_statements(settings, keyspace_prefix):
            session.execute(stmt, timeout=120)
            executed += 1
            match = _CREATE_TABLE.match(stmt)
            if match:
                keyspace, table, body = match.groups()
                executed += _add_missing_columns(session, keyspace, table, _columns(body), report)
        cluster.control_connection.wait_for_schema_agreement()
    finally:
        cluster.shutdown()
    return executed


def _add_missing_columns(
    session: object, keyspace: str, table: str, wanted: dict[str, str],
    report: Callable[[str], None],
) -> int:  # fmt: skip
    rows = session.execute(  # type: ignore[attr-defined]
        "SELECT column_name FROM system_schema.columns WHERE keyspace_name=%s AND table_name=%s",
        (keyspace, table),
    )
    present = {r.column_name for r in rows}
    added = 0
    for name, ctype in wanted.items():
        if name not in present:
            session.execute(  # type: ignore[attr-defined]
                f"ALTER TABLE {keyspace}.{table} ADD {name} {ctype}", timeout=120
            )
            report(f"cassandra: added missing column {keyspace}.{table}.{name} {ctype}")
            added += 1
    return added


def _flow_topics(topics: TopicSettings) -> list[str]:
    """Every topic a flow reads or writes (from the flows' specs) and the other named topics."""
    of_flows = [name for spec in FLOWS.values() for name in spec.topic_names(topics)]
    return list(dict.fromkeys([*of_flows, *topics.all_topics()]))


def apply_topics(
    kafka: KafkaSettings, topics: TopicSettings, names: list[str] | None = None
) -> list[str]:
    """Create the missing topics (``<env>.<name>``); return the names created."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = kafka_admin(kafka)
    wanted = names if names is not None else _flow_topics(topics)
    existing = set(admin.list_topics(timeout=10).topics)
    new = [
        NewTopic(
            name,
            num_partitions=kafka.partitions,
            replication_factor=kafka.replication_factor,
            config={"retention.ms": str(kafka.retention_ms)},
        )
        for name in wanted
        if name not in existing
    ]
    created: list[str] = []
    if not new:
        return created
    for name, future in admin.create_topics(new, operation_timeout=30).items():
        try:
            future.result()
            created.append(name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            raise
    return created


JOB_REQUEST_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    tag TEXT,
    request_id TEXT PRIMARY KEY,
    job_id TEXT,
    status TEXT,
    request_data JSON,
    requested_by TEXT,
    requested_channel TEXT,
    dt_job_submitted TIMESTAMP,
    download_urls TEXT[],
    dt_file_created TIMESTAMP,
    dt_job_completed TIMESTAMP,
    execution_time BIGINT,
    err_message TEXT,
    iteration INT,
    encryption_key TEXT,
    processed_batches TEXT,
    batch_number INT
)"""


def apply_postgres(settings: PostgresSettings, table: str | None = None) -> list[str]:
    """Create the database (if missing) and Sunbird's ``job_request`` table; return what was done."""
    from psycopg import sql

    done = []
    with postgres_connect(settings, database="postgres") as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (settings.database,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.database)))
            done.append(f"database {settings.database} created")
    name = table or settings.job_request_table
    with postgres_connect(settings) as conn:
        conn.execute(sql.SQL(JOB_REQUEST_DDL).format(table=sql.Identifier(name)))
        # an older table (the test harness's) lacks batch_number: add it
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS batch_number INT").format(
                sql.Identifier(name)
            )
        )
        done.append(f"table {name} ready")
    return done
