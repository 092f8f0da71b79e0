"""Connections to Cassandra, Redis and Kafka built from the settings models.

One place creates every client so timeouts, auth and retries are set the same way everywhere.
"""

from __future__ import annotations

import collections
import functools
import logging
import re
from typing import Any

from lernflow.config import CassandraSettings, KafkaSettings, RedisSettings

logger = logging.getLogger(__name__)


_BAD_START = re.compile(r"^[^a-zA-Z0-9]*")
_BAD_END = re.compile(r"[^a-zA-Z0-9_]*$")
_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]")


@functools.lru_cache(maxsize=4096)
def _row_class(colnames: tuple[str, ...]) -> Any:
    names = [_NON_ALNUM.sub("_", _BAD_START.sub("", _BAD_END.sub("", c))) for c in colnames]
    return collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]


def row_factory(colnames: list[str], rows: list[Any]) -> list[Any]:
    """Rows as named tuples, like the driver's default, with one class per column list.

    The driver's ``named_tuple_factory`` builds a new namedtuple class for every result; with
    thousands of small reads per batch that was a fifth of a flow's CPU (py-spy, activity).
    Column names are cleaned the same way (``writetime(x)`` → ``writetime_x``).
    """
    cls = _row_class(tuple(colnames))
    return [cls(*r) for r in rows]


def cassandra_session(settings: CassandraSettings, keyspace: str | None = None) -> tuple[Any, Any]:
    """Return a connected ``(Cluster, Session)``; call ``cluster.shutdown()`` when done."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy

    auth = None
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else ""
        auth = PlainTextAuthProvider(username=settings.username, password=password)
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(),
        retry_policy=RetryPolicy(),
        request_timeout=settings.request_timeout_s,
        row_factory=row_factory,
    )
    cluster = Cluster(
        settings.host_list(),
        port=settings.port,
        auth_provider=auth,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=settings.connect_timeout_s,
        protocol_version=settings.protocol_version,
    )
    try:
        session = cluster.connect(keyspace)
    except Exception:
        cluster.shutdown()
        raise
    return cluster, session


def redis_client(settings: RedisSettings, db: int) -> Any:
    """Return a ``redis.Redis`` client for one DB index (decoded str responses)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    password = settings.password.get_secret_value() if settings.password else None
    # One retry layer only: lernflow.kernel.retry (with backoff, logs and metrics) wraps every call.
    return redis.Redis(
        retry=Retry(NoBackoff(), 0),
        host=settings.host,
        port=settings.port,
        db=db,
        password=password,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.socket_timeout_s,
        decode_responses=True,
        health_check_interval=30,
    )


def kafka_admin(settings: KafkaSettings) -> Any:
    """Return a ``confluent_kafka.admin.AdminClient``."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(settings.client_config())


def kafka_consumer(settings: KafkaSettings, group_id: str, **extra: str) -> Any:
    """Return a ``confluent_kafka.Consumer`` that never auto-commits."""
    from confluent_kafka import Consumer

    conf: dict[str, Any] = settings.client_config()
    conf.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    conf.update(extra)
    return Consumer(conf)
