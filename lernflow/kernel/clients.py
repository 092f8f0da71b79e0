"""Connections to Cassandra, Redis and Kafka built from the settings models.

One place creates every client so timeouts, auth and retries are set the same way everywhere.
"""

from __future__ import annotations

import collections
import functools
import logging
import re
import ssl
import time
from pathlib import Path
from typing import Any

from lernflow.config import CassandraSettings, KafkaSettings, PostgresSettings, RedisSettings
from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)


class AccessRefused(LernflowError):
    """A server refused our credentials, or we refused its certificate.

    Never retried (a retry cannot fix a wrong password or an untrusted CA): the command or flow
    stops at once with a message naming the settings to check (docs/runbook.md, secured servers).
    """

    retryable = False


def _credentials_refused(service: str, where: str, user_var: str, password_var: str) -> str:
    return f"{service} at {where} refused the credentials: check {user_var} and {password_var}"


def _untrusted(service: str, where: str, ca_var: str, detail: str) -> str:
    return (
        f"{service} at {where}: its TLS certificate is not trusted ({detail}): check {ca_var} "
        "(the CA that signed the server's certificate) and that the certificate names the host"
    )


def _cert_failure(exc: BaseException | None) -> str | None:
    """The verification failure in an exception chain (ssl or a driver's text), else None."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return getattr(exc, "verify_message", None) or str(exc)
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return text.split("certificate verify failed", 1)[-1].strip(" :()") or text
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def tls_context(
    ca_file: Path | None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    key_password: str | None = None,
    verify_hostname: bool = True,
) -> ssl.SSLContext:
    """A client TLS context: the server's certificate verified against ``ca_file`` (else the
    system's CAs), the host name checked unless ``verify_hostname`` is off, TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = verify_hostname
    if cert_file is not None:
        context.load_cert_chain(
            str(cert_file), str(key_file) if key_file else None, password=key_password
        )
    return context


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
    context = None
    if settings.tls:
        key_password = settings.tls_key_password
        context = tls_context(
            settings.tls_ca_file,
            settings.tls_cert_file,
            settings.tls_key_file,
            key_password.get_secret_value() if key_password else None,
            settings.tls_verify_hostname,
        )
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
        ssl_context=context,
    )
    try:
        session = cluster.connect(keyspace)
    except Exception as exc:
        cluster.shutdown()
        refused = _cassandra_refusal(settings, exc)
        if refused is not None:
            raise refused from exc
        raise
    return cluster, session


def _cassandra_refusal(settings: CassandraSettings, exc: Exception) -> AccessRefused | None:
    """An ``AccessRefused`` when every contact point refused us for credentials or TLS."""
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    where = f"{settings.hosts}:{settings.port}"
    errors = list(exc.errors.values()) if isinstance(exc, NoHostAvailable) else [exc]
    if errors and all(isinstance(e, AuthenticationFailed) for e in errors):
        return AccessRefused(
            _credentials_refused(
                "Cassandra", where, "LERNFLOW_CASSANDRA_USERNAME", "LERNFLOW_CASSANDRA_PASSWORD"
            )
        )
    for error in errors:
        detail = _cert_failure(error)
        if detail is not None:
            return AccessRefused(
                _untrusted("Cassandra", where, "LERNFLOW_CASSANDRA_TLS_CA_FILE", detail)
            )
    return None


def redis_client(settings: RedisSettings, db: int) -> Any:
    """Return a ``redis.Redis`` client for one DB index (decoded str responses)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # One retry layer only: lernflow.kernel.retry (with backoff, logs and metrics) wraps every call.
    pool = redis.ConnectionPool(
        connection_class=_CheckedSSLConnection if settings.tls else _CheckedConnection,
        **redis_connection_kwargs(settings, db),
        retry=Retry(NoBackoff(), 0),
    )
    return redis.Redis(connection_pool=pool)


def redis_connection_kwargs(settings: RedisSettings, db: int) -> dict[str, Any]:
    """The redis-py connection arguments for ``settings`` (TLS ones when ``tls`` is on)."""
    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "db": db,
        "username": settings.username,
        "password": settings.password.get_secret_value() if settings.password else None,
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": settings.socket_timeout_s,
        "decode_responses": True,
        "health_check_interval": 30,
    }
    if settings.tls:
        kwargs.update(
            {
                "ssl_ca_certs": str(settings.tls_ca_file) if settings.tls_ca_file else None,
                "ssl_certfile": str(settings.tls_cert_file) if settings.tls_cert_file else None,
                "ssl_keyfile": str(settings.tls_key_file) if settings.tls_key_file else None,
                "ssl_cert_reqs": "required",
                "ssl_check_hostname": settings.tls_verify_hostname,
                "ssl_min_version": ssl.TLSVersion.TLSv1_2,
            }
        )
    return kwargs


def _redis_refusal(host: str, port: int, exc: Exception) -> AccessRefused | None:
    import redis

    where = f"{host}:{port}"
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.NoPermissionError):
        return AccessRefused(
            _credentials_refused(
                "Redis", where, "LERNFLOW_REDIS_USERNAME", "LERNFLOW_REDIS_PASSWORD"
            )
        )
    detail = _cert_failure(exc)
    if detail is not None:
        return AccessRefused(_untrusted("Redis", where, "LERNFLOW_REDIS_TLS_CA_FILE", detail))
    return None


def _checked(base: Any) -> Any:
    class Checked(base):  # type: ignore[misc,valid-type]
        """A connection whose refused credentials or certificate raise ``AccessRefused``."""

        def connect(self) -> None:
            try:
                super().connect()
            except Exception as exc:
                refused = _redis_refusal(self.host, self.port, exc)
                if refused is not None:
                    raise refused from exc
                raise

    Checked.__name__ = f"Checked{base.__name__}"
    return Checked


def _redis_connection_classes() -> tuple[Any, Any]:
    import redis

    return _checked(redis.Connection), _checked(redis.SSLConnection)


_CheckedConnection, _CheckedSSLConnection = _redis_connection_classes()


def postgres_connect(
    settings: PostgresSettings, database: str | None = None, autocommit: bool = True
) -> Any:
    """A ``psycopg`` connection; refused credentials or an untrusted certificate raise
    ``AccessRefused`` naming the settings."""
    import psycopg

    try:
        return psycopg.connect(settings.conninfo(database), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        where = f"{settings.host}:{settings.port}"
        text = str(exc)
        if "password authentication failed" in text or "no pg_hba.conf entry" in text:
            msg = _credentials_refused(
                "PostgreSQL", where, "LERNFLOW_POSTGRES_USER", "LERNFLOW_POSTGRES_PASSWORD"
            )
            if "no pg_hba.conf entry" in text:
                msg += " (and LERNFLOW_POSTGRES_SSLMODE: the server may accept TLS only)"
            raise AccessRefused(msg) from exc
        detail = _cert_failure(exc)
        if detail is not None:
            msg = _untrusted("PostgreSQL", where, "LERNFLOW_POSTGRES_SSLROOTCERT", detail)
            raise AccessRefused(msg) from exc
        raise


def kafka_admin(settings: KafkaSettings) -> Any:
    """Return a ``confluent_kafka.admin.AdminClient`` (after :func:`kafka_preflight`)."""
    from confluent_kafka.admin import AdminClient

    kafka_preflight(settings)
    return AdminClient(settings.client_config())


# librdkafka error names meaning the broker refused our credentials
_KAFKA_CREDENTIALS = frozenset(
    {"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "UNSUPPORTED_SASL_MECHANISM"}
)


def kafka_preflight(settings: KafkaSettings, timeout_s: float = 10.0) -> None:
    """With TLS or SASL on, one metadata request before anything else: ``AccessRefused``
    naming the settings when a broker refuses our credentials or client certificate, or we
    refuse its certificate (librdkafka would only retry and time out). A broker that is down
    or slow is left to the callers' own waits and retries. Plaintext: nothing to check."""
    if settings.security_protocol == "PLAINTEXT":
        return
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    conf: dict[str, Any] = {**settings.client_config(), "error_cb": errors.append}
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=0.5)
            return
        except KafkaException:
            admin.poll(0)  # serves error_cb
        refused = _kafka_refusal(settings, [(e.name(), e.str()) for e in errors])
        if refused is not None:
            raise refused


def _kafka_refusal(settings: KafkaSettings, errors: list[tuple[str, str]]) -> AccessRefused | None:
    """The first refusal among librdkafka errors ``(name, text)``, as ``AccessRefused``."""
    where = settings.brokers
    for name, text in errors:
        lowered = text.lower()
        if name in _KAFKA_CREDENTIALS or "authentication failed" in lowered:
            msg = _credentials_refused(
                "Kafka", where, "LERNFLOW_KAFKA_SASL_USERNAME", "LERNFLOW_KAFKA_SASL_PASSWORD"
            )
            return AccessRefused(f"{msg} (and LERNFLOW_KAFKA_SASL_MECHANISM): {text}")
        if "certificate verify failed" in lowered:
            return AccessRefused(_untrusted("Kafka", where, "LERNFLOW_KAFKA_TLS_CA_FILE", text))
        if "alert bad certificate" in lowered or "alert certificate required" in lowered:
            return AccessRefused(
                f"Kafka at {where} refused the TLS handshake ({text}): it may require a client "
                "certificate: check LERNFLOW_KAFKA_TLS_CERT_FILE and LERNFLOW_KAFKA_TLS_KEY_FILE"
            )
    return None


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
