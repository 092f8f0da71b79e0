"""Why a flow or job stopped, in one line an operator can act on, and the exit code it means.

A flow stops on faults of its environment (docs/architecture.md: a full disk, a server that
stays unreachable, refused credentials, a missing table): the exception reaching the command is
Bytewax's wrapper around the cause, with the whole traceback in its text. :func:`explain` finds
the cause in the ``__cause__``/``__context__`` chain and says what it is — for a server: which
one, the address tried, the settings and their env vars, how long and how often it was tried —
and what a restart does. This module is the one place that decides the exit code
(:class:`~lernflow.kernel.errors.ExitCode`; the table is in docs/runbook.md).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cassandra
import psycopg
import redis.exceptions
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from confluent_kafka import KafkaException

from lernflow.config import Settings, SettingsError
from lernflow.kernel.clients import AccessRefused
from lernflow.kernel.errors import ConfigError, ExitCode
from lernflow.kernel.retry import gave_up, is_schema_fault, is_transient

_DISK_FULL = re.compile(r"no space left on device|database or disk is full", re.IGNORECASE)
#: what a restart of a flow does (docs/runbook.md)
RESUME = "nothing is lost: run it again and it resumes from its last snapshot"

# librdkafka's codes for "no broker answered" and for refused credentials or TLS
_KAFKA_UNREACHABLE = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT",
                                "_MSG_TIMED_OUT", "REQUEST_TIMED_OUT"})  # fmt: skip
_KAFKA_REFUSED = frozenset({
    "_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL", "TOPIC_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
})  # fmt: skip


# faults only a change of the settings (or of the servers' accounts) fixes; lernflow's clients
# turn the drivers' refusals into AccessRefused, the raw ones are here for other callers
_CONFIG_FAULTS: tuple[type[BaseException], ...] = (
    AccessRefused, SettingsError, ConfigError, cassandra.AuthenticationFailed,
    cassandra.Unauthorized, redis.exceptions.AuthenticationError,
    redis.exceptions.NoPermissionError,
)  # fmt: skip


# a peer that refused or did not answer (a template host, a user-read API): unavailable too
_UNAVAILABLE: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Stop:
    """The last line a stopped command prints, its exit code, and the same facts as fields
    (for JSON logs)."""

    line: str
    code: ExitCode
    fields: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class _Server:
    """A server as the settings name it: what, where, and the env vars that say where."""

    name: str
    address: str
    settings: tuple[str, ...]  # "LERNFLOW_X=value", what to check


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__


def _kafka_code(exc: BaseException) -> str | None:
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "name"):
        return str(exc.args[0].name())
    return None


def _server_of(exc: BaseException, s: Settings) -> _Server | None:
    """The server an unreachable-server error is about (None: not such an error)."""
    if _kafka_code(exc) in _KAFKA_UNREACHABLE | _KAFKA_REFUSED:
        return _Server("Kafka", s.kafka.brokers, (f"LERNFLOW_KAFKA_BROKERS={s.kafka.brokers}",))
    if isinstance(exc, NoHostAvailable | cassandra.OperationTimedOut | ConnectionException):
        c = s.cassandra
        return _Server("Cassandra", ",".join(f"{h}:{c.port}" for h in c.host_list()),
                       (f"LERNFLOW_CASSANDRA_HOSTS={c.hosts}", f"LERNFLOW_CASSANDRA_PORT={c.port}"))  # fmt: skip
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        r = s.redis
        return _Server("Redis", f"{r.host}:{r.port}",
                       (f"LERNFLOW_REDIS_HOST={r.host}", f"LERNFLOW_REDIS_PORT={r.port}"))  # fmt: skip
    if isinstance(exc, psycopg.OperationalError):
        p = s.postgres
        return _Server("PostgreSQL", f"{p.host}:{p.port}",
                       (f"LERNFLOW_POSTGRES_HOST={p.host}", f"LERNFLOW_POSTGRES_PORT={p.port}"))  # fmt: skip
    return None


def _how_long(chain: list[BaseException], server: _Server | None, elapsed_s: float | None) -> str:
    """How long and how often the server was tried: the retries' record; else, for Kafka (whose
    client reconnects by itself), the time until it gave up; else one attempt."""
    for e in chain:
        tried = gave_up(e)
        if tried is not None:
            return f"tried {tried.attempts} times in {tried.seconds:.1f} s ({tried.what})"
    if server is not None and server.name == "Kafka" and elapsed_s is not None:
        return f"the Kafka client kept reconnecting for {elapsed_s:.0f} s"
    return "tried once, not retried"


def _cause(exc: BaseException) -> str:
    """The error in a few words (the first host's error of a ``NoHostAvailable``)."""
    if isinstance(exc, NoHostAvailable) and exc.errors:
        exc = next(iter(exc.errors.values()))
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _unreachable(
    what: str, chain: list[BaseException], s: Settings, elapsed_s: float | None, resume: str
) -> Stop | None:
    for e in chain:
        server = _server_of(e, s)
        if server is None:
            continue
        if _kafka_code(e) in _KAFKA_REFUSED:
            line = (f"{what} stopped: Kafka at {server.address} refused the connection "
                    f"({_first_line(e)}): check LERNFLOW_KAFKA_SECURITY_PROTOCOL, "
                    f"LERNFLOW_KAFKA_SASL_USERNAME and LERNFLOW_KAFKA_SASL_PASSWORD; {resume}")  # fmt: skip
            return Stop(line, ExitCode.CONFIG, _fields("refused", server))
        line = (f"{what} stopped: {server.name} unreachable at {server.address} ({_cause(e)}); "
                f"{_how_long(chain, server, elapsed_s)}; check {', '.join(server.settings)} "
                f"and that {server.name} is up; {resume}")  # fmt: skip
        return Stop(line, ExitCode.UNAVAILABLE, _fields("unreachable", server))
    return None


def _fields(kind: str, server: _Server | None = None) -> dict[str, object]:
    if server is None:
        return {"stop_kind": kind}
    settings = [v.split("=", 1)[0] for v in server.settings]
    return {"stop_kind": kind, "server": server.name, "address": server.address,
            "settings": settings}  # fmt: skip


def _disk_full(what: str, chain: list[BaseException], recovery_dir: Path | None) -> Stop | None:
    for e in chain:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            where = f" writing {e.filename}" if e.filename else ""
            line = f"{what} stopped: no space left on device{where}; free space, then {RESUME}"
            return Stop(line, ExitCode.IOERR, _fields("disk-full"))
    if any(_DISK_FULL.search(str(e)) for e in chain):
        where = f" under {recovery_dir}" if recovery_dir is not None else ""
        line = (f"{what} stopped: no space left on device for the recovery store{where}; "
                f"free space, then {RESUME}")  # fmt: skip
        return Stop(line, ExitCode.IOERR, _fields("disk-full"))
    return None


def _configuration(what: str, chain: list[BaseException], resume: str) -> Stop | None:
    for e in chain:
        if isinstance(e, _CONFIG_FAULTS):
            line = f"{what} stopped: {_first_line(e)}; once fixed, {resume}"
            return Stop(line, ExitCode.CONFIG, _fields("config"))
        if is_schema_fault(e):
            line = (f"{what} stopped: the Cassandra schema lacks what a statement names "
                    f"({_first_line(e)}): run 'lernflow schema apply' (check the "
                    f"LERNFLOW_CASSANDRA_*_KEYSPACE settings); once fixed, {resume}")  # fmt: skip
            return Stop(line, ExitCode.CONFIG, _fields("schema"))
    return None


def explain(
    exc: BaseException,
    what: str,
    settings: Settings | None = None,
    recovery_dir: Path | None = None,
    elapsed_s: float | None = None,
    resume: str = RESUME,
) -> Stop:
    """Why ``what`` (a flow, a job) stopped: one line, its exit code and the facts as fields.

    In order: a full disk, a setting or credentials refused, a server unreachable (when the
    ``settings`` are known), else an internal error named by the innermost exception.
    """
    chain = list(_chain(exc))
    found = _disk_full(what, chain, recovery_dir) or _configuration(what, chain, resume)
    if found is None and settings is not None:
        found = _unreachable(what, chain, settings, elapsed_s, resume)
    if found is not None:
        return found
    unavailable = next((e for e in chain if is_transient(e) or isinstance(e, _UNAVAILABLE)), None)
    if unavailable is not None:  # transient, but not one of the four servers by type
        line = (f"{what} stopped: {_cause(unavailable)}; {_how_long(chain, None, elapsed_s)}; "
                f"{resume}")  # fmt: skip
        return Stop(line, ExitCode.UNAVAILABLE, _fields("unreachable"))
    root = chain[-1]
    line = (f"{what} stopped: {type(root).__name__}: {_first_line(root)} "
            f"({resume}; -v shows the traceback)")  # fmt: skip
    return Stop(line, ExitCode.SOFTWARE, _fields("internal"))
