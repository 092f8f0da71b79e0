"""A second, isolated stack: its own directory and ports, for tests that stop, pause or kill
servers (tests/integration/test_stack_lifecycle.py, the fault suite in tests/faults).

The servers are the project's own (``lernflow.devstack.stack``); only the settings differ: the
stack dir, every port, smaller heaps, and the jar cache shared with the main stack so nothing
is downloaded again.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lernflow.config import (
    CassandraSettings,
    PostgresSettings,
    RedisSettings,
    Settings,
    StackSettings,
)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(pairs: bool = False) -> int:
    """A free loopback port (with ``pairs``, the next port is free too: Kafka's controller).

    Chosen below the kernel's ephemeral range (32768+): a port the OS hands out for outgoing
    connections can be taken again between this check and the server's bind.
    """
    for _ in range(200):
        port = random.randint(20_000, 32_000)
        if _bindable(port) and (not pairs or _bindable(port + 1)):
            return port
    raise RuntimeError("no free port")


@dataclass(frozen=True)
class StackPorts:
    """Every port a stack binds (Kafka's KRaft controller takes ``kafka + 1``)."""

    kafka: int
    cassandra: int
    cassandra_storage: int
    cassandra_jmx: int
    redis: int
    postgres: int

    @classmethod
    def free(cls) -> StackPorts:
        """Random free ports (20000-32000)."""
        return cls(
            kafka=free_port(pairs=True), cassandra=free_port(), cassandra_storage=free_port(),
            cassandra_jmx=free_port(), redis=free_port(), postgres=free_port(),
        )  # fmt: skip

    def taken(self) -> list[int]:
        """The ports something else listens on now (a stack of ours already up counts too)."""
        ports = [*vars(self).values(), self.kafka + 1]
        return [p for p in ports if not _bindable(p)]


#: the fault suite's stack (tests/faults): 19xxx, next to the main stack's defaults
FAULTS_PORTS = StackPorts(
    kafka=19092, cassandra=19042, cassandra_storage=19700, cassandra_jmx=19199,
    redis=19379, postgres=19432,
)  # fmt: skip


def second_stack_settings(
    base: Settings, stack_dir: Path, ports: StackPorts, **stack: Any
) -> Settings:
    """``base`` moved onto a stack under ``stack_dir`` with ``ports`` (jars shared with ``base``).

    ``stack`` overrides further ``StackSettings`` fields (default heaps: Kafka 256m,
    Cassandra 512M).
    """
    lib = (base.stack.lib_dir or base.stack.dir / "lib").resolve()
    fields: dict[str, Any] = {"kafka_heap": "256m", "cassandra_heap": "512M", **stack}
    return base.with_overrides(
        stack=StackSettings(
            dir=stack_dir,
            lib_dir=lib,
            cassandra_storage_port=ports.cassandra_storage,
            cassandra_jmx_port=ports.cassandra_jmx,
            **fields,
        ),
        redis=RedisSettings(port=ports.redis),
        kafka=base.kafka.model_copy(update={"brokers": f"127.0.0.1:{ports.kafka}"}),
        cassandra=CassandraSettings(port=ports.cassandra),
        postgres=PostgresSettings(port=ports.postgres),
    )
