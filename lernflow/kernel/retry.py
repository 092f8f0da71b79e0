"""The one retry: capped exponential backoff with jitter, for faults a later attempt may fix.

Which exceptions are transient is decided by a typed classifier (no class-name strings):
:func:`is_transient` is the default — our own errors say so with ``retryable``
(:class:`~lernflow.kernel.errors.TransientError`), and the server drivers' timeout and
unavailability classes are listed by type. Kafka calls that only mean "not ready yet" use
:func:`kafka_not_ready` with :data:`KAFKA_NOT_READY`. Anything else is raised at once. After the
last attempt the error is raised: the flow stops and, restarted, resumes from its last
snapshot, so nothing is skipped. An error that is not transient and may come from the events
themselves (:func:`is_event_fault`) makes the processor shell find and park those events.
"""

from __future__ import annotations

import errno
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import cassandra
import redis.exceptions
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.protocol import OverloadedErrorMessage
from confluent_kafka import KafkaException

from lernflow.config import RunSettings
from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Classifier = Callable[[BaseException], bool]

_DRIVER_TRANSIENT: tuple[type[BaseException], ...] = (
    # cassandra-driver
    cassandra.OperationTimedOut, NoHostAvailable, cassandra.Unavailable, cassandra.ReadTimeout,
    cassandra.WriteTimeout, cassandra.CoordinationFailure, ConnectionException,
    OverloadedErrorMessage,
    # redis-py (its ConnectionError and TimeoutError are its own classes)
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError, redis.exceptions.TryAgainError,
    # sockets
    ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
)  # fmt: skip

# Faults of the machine or the servers' setup, not of the events in the call: neither retried
# nor isolated — the flow stops, and resumes from its snapshot once they are fixed
_ENVIRONMENT: tuple[type[BaseException], ...] = (
    MemoryError, ConnectionError, TimeoutError,
    cassandra.Unauthorized, cassandra.AuthenticationFailed,
    redis.exceptions.ReadOnlyError, redis.exceptions.NoPermissionError,
    redis.exceptions.OutOfMemoryError,
)  # fmt: skip
_ENVIRONMENT_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM,
    errno.EMFILE, errno.ENFILE, errno.ENOMEM,
})  # fmt: skip

# Cassandra's answers when the schema lacks what a statement names (`lernflow schema apply` not
# run, or an older schema): every event would fail the same way, so the flow stops
_CASSANDRA_SCHEMA_FAULT = re.compile(
    r"(table|keyspace) \S+ does not exist|unconfigured table|Undefined column name"
)

# Kafka error codes that only mean "not ready yet" (a topic created a moment ago has no leader,
# a group coordinator is still loading, a broker is briefly unreachable)
_KAFKA_NOT_READY = frozenset({
    "NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART", "_TIMED_OUT",
    "_TRANSPORT", "REQUEST_TIMED_OUT", "COORDINATOR_LOAD_IN_PROGRESS", "NOT_COORDINATOR",
    "COORDINATOR_NOT_AVAILABLE",
})  # fmt: skip


@dataclass(frozen=True)
class GaveUp:
    """How long and how often :func:`retry` tried before it raised (on the raised exception)."""

    what: str
    attempts: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.what}: {self.attempts} attempts in {self.seconds:.1f} s"


_GAVE_UP = "lernflow_gave_up"


def gave_up(exc: BaseException) -> GaveUp | None:
    """The retries behind ``exc`` when :func:`retry` raised it after its last attempt."""
    found = getattr(exc, _GAVE_UP, None)
    return found if isinstance(found, GaveUp) else None


@dataclass(frozen=True)
class Backoff:
    """How often and how long to retry: ``attempts`` calls, delays ``base_s`` doubling to ``cap_s``."""

    attempts: int
    base_s: float
    cap_s: float

    @classmethod
    def of(cls, run: RunSettings) -> Backoff:
        """The flows' policy from ``LERNFLOW_RUN_RETRY_*``."""
        return cls(run.retry_max_attempts, run.retry_base_delay_s, run.retry_max_delay_s)

    def delay(self, attempt: int) -> float:
        """The sleep after failed attempt ``attempt`` (1-based): full jitter in the upper half."""
        cap = min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)


#: Kafka metadata and offset calls while a topic or coordinator is not ready (~30 s in all)
KAFKA_NOT_READY = Backoff(attempts=20, base_s=0.1, cap_s=3.0)


def is_transient(exc: BaseException) -> bool:
    """True for errors that a later retry may fix (ours by ``retryable``, drivers' by type)."""
    if isinstance(exc, LernflowError):
        return exc.retryable
    return isinstance(exc, _DRIVER_TRANSIENT)


def is_event_fault(exc: BaseException) -> bool:
    """True for an error a retry will not fix and that the events of the call may have caused.

    The processor shell isolates the events behind such an error and parks them
    (docs/architecture.md#the-processor-shell): a server rejecting a value (Cassandra
    ``InvalidRequest``, a Kafka message too large), a ``ValueError`` in a rule. Not: transient
    errors (:func:`is_transient`), Kafka errors librdkafka calls retriable or fatal, faults of
    the environment (a full or read-only disk, permissions, no memory, a server refusing our
    credentials or in read-only mode, a Cassandra table, keyspace or column missing from the
    schema) — those stop the flow, which resumes from its snapshot.
    """
    if is_transient(exc) or isinstance(exc, _ENVIRONMENT):
        return False
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        return False
    if is_schema_fault(exc):
        return False
    if isinstance(exc, KafkaException):
        err = exc.args[0] if exc.args else None
        if err is None or not hasattr(err, "retriable"):
            return False
        return not (kafka_not_ready(exc) or err.retriable() or err.fatal())
    return True


def is_schema_fault(exc: BaseException) -> bool:
    """True for Cassandra's answer that a table, keyspace or column the statement names is
    missing (``lernflow schema apply`` not run, or an older schema)."""
    return isinstance(exc, cassandra.InvalidRequest) and bool(
        _CASSANDRA_SCHEMA_FAULT.search(str(exc))
    )


def kafka_not_ready(exc: BaseException) -> bool:
    """True for a Kafka error whose code only means "not ready yet"."""
    if not isinstance(exc, KafkaException) or not exc.args:
        return False
    return bool(exc.args[0].name() in _KAFKA_NOT_READY)


def retry(
    fn: Callable[[], T],
    policy: RunSettings | Backoff,
    what: str,
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    transient: Classifier = is_transient,
) -> T:
    """Call ``fn`` until it succeeds, retrying errors ``transient`` accepts, up to the policy."""
    backoff = policy if isinstance(policy, Backoff) else Backoff.of(policy)
    attempt = 0
    started = time.monotonic()
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not transient(exc):
                raise
            if attempt >= backoff.attempts:
                setattr(exc, _GAVE_UP, GaveUp(what, attempt, time.monotonic() - started))
                raise
            delay = backoff.delay(attempt)
            logger.warning(
                "%s failed (attempt %d/%d, retrying in %.2fs): %s: %s",
                what, attempt, backoff.attempts, delay, type(exc).__name__, exc,
            )  # fmt: skip
            if on_retry is not None:
                on_retry(exc)
            sleep(delay)
