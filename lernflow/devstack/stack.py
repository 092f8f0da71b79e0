"""The local stack: real Kafka (KRaft), Cassandra and Redis servers started by the project.

Kafka and Cassandra run from Maven Central jars on OpenJDK 17, Redis from Debian's
``redis-server``. Everything binds to 127.0.0.1 and lives under ``StackSettings.dir``
(jars in ``lib/``, each server's data, logs and pid file in its own folder).

``up`` is idempotent: a server whose port already answers is left alone (and reported as
"external" when this stack did not start it). ``down`` stops only processes whose pid files
this stack wrote.

The servers live in their own modules (``redis_server``, ``kafka_server``,
``cassandra_server``, ``postgres_server``) on the shared ``base.Server``.
"""

from __future__ import annotations

import time

from lernflow.config import Settings
from lernflow.devstack.base import (
    Reporter,
    Server,
    ServerStatus,
    StackError,
    find_java17,
    listening_pid,
    port_open,
    rss_mb,
)
from lernflow.devstack.cassandra_server import CassandraServer
from lernflow.devstack.kafka_server import KafkaServer
from lernflow.devstack.postgres_server import PostgresServer
from lernflow.devstack.redis_server import RedisServer

__all__ = [
    "CassandraServer",
    "KafkaServer",
    "PostgresServer",
    "RedisServer",
    "Reporter",
    "Server",
    "ServerStatus",
    "StackError",
    "down",
    "find_java17",
    "listening_pid",
    "port_open",
    "rss_mb",
    "servers",
    "status",
    "up",
]


def servers(settings: Settings, report: Reporter) -> list[Server]:
    """Return the stack's servers in start order."""
    return [
        RedisServer(settings, report),
        KafkaServer(settings, report),
        CassandraServer(settings, report),
        PostgresServer(settings, report),
    ]


def up(settings: Settings, report: Reporter) -> dict[str, str]:
    """Start every server that is not running and wait until each really answers.

    All servers are launched before waiting on any, so the JVM boots overlap.
    """
    t_all = time.monotonic()
    launched: list[tuple[Server, int | None, float]] = []
    for server in servers(settings, report):
        t0 = time.monotonic()
        pid = server.launch()
        state = f"launched pid {pid}" if pid else "port answers"
        report(f"{server.name}: {state} on 127.0.0.1:{server.port} [{time.monotonic() - t0:.1f}s]")
        launched.append((server, pid, t0))
    results: dict[str, str] = {}
    for server, pid, t0 in launched:
        results[server.name] = server.await_ready(pid)
        report(
            f"{server.name}: {results[server.name]}, answering after {time.monotonic() - t0:.1f}s"
        )
    report(f"stack up in {time.monotonic() - t_all:.1f}s")
    return results


def down(settings: Settings, report: Reporter, wipe: bool = False) -> dict[str, str]:
    """Stop the servers this stack started (pid files); keep data unless ``wipe``."""
    results: dict[str, str] = {}
    for server in reversed(servers(settings, report)):
        results[server.name] = server.stop()
        if wipe:
            server.wipe()
            results[server.name] += ", data wiped"
        report(f"{server.name}: {results[server.name]}")
    return results


def status(settings: Settings) -> list[ServerStatus]:
    """Return the state of each server."""
    return [s.status() for s in servers(settings, lambda _m: None)]
