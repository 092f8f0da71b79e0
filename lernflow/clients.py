"""Connections to Cassandra, Redis and Kafka built from the settings models.

One place creates every client so timeouts, auth and retries are set the same way everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

from config import CassandraSettings, KafkaSettings, RedisSettings

logger = logging.getLogger(__name__)


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
    )
    cluster = Cluster(
        settings.host_list(),
        port=settings.port,
        auth_provider=auth,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=settings.connect_timeout_s,
        protocol_version=5,
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
    # One retry layer only: lernflow.retry (with backoff, logs and metrics) wraps every call.
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
