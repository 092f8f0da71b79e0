"""``lernflow run`` ends a stopped flow with one line naming the cause (lernflow.ops.stopped)."""

from __future__ import annotations

import errno
from pathlib import Path

import cassandra
import psycopg
import pytest
import redis.exceptions
from cassandra.cluster import NoHostAvailable
from confluent_kafka import KafkaError, KafkaException

from lernflow.config import (
    CassandraSettings,
    KafkaSettings,
    PostgresSettings,
    RedisSettings,
    RunSettings,
    Settings,
    SettingsError,
    StackSettings,
    TopicSettings,
)
from lernflow.kernel.clients import AccessRefused
from lernflow.kernel.errors import ConfigError, ExitCode, TransientError
from lernflow.kernel.retry import Backoff, retry
from lernflow.ops.stopped import RESUME, explain


def _wrapped(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            msg = "error writing output batch\nTraceback (most recent call last): ..."
            raise RuntimeError(msg) from inner
    except RuntimeError as outer:
        return outer


def test_a_full_disk_names_the_file_and_says_nothing_is_lost() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/certs/b1/.c1.pdf.tmp")
    line = explain(_wrapped(full), "certificate-generator", recovery_dir=Path("/rec")).line
    assert line == (
        "certificate-generator stopped: no space left on device writing /certs/b1/.c1.pdf.tmp;"
        " free space, then nothing is lost: run it again and it resumes from its last snapshot"
    )
    assert "\n" not in line


def test_the_recovery_store_full_names_its_folder() -> None:
    exc = RuntimeError('SqliteFailure(Error { code: DiskFull }, Some("database or disk is full"))')
    line = explain(exc, "activity-aggregate-updater", recovery_dir=Path("/rec/dev/activity")).line
    assert "no space left on device for the recovery store under /rec/dev/activity" in line


def test_another_cause_is_its_innermost_error_on_one_line() -> None:
    line = explain(_wrapped(ValueError("bad\nsecond line")), "user-cache-updater").line
    assert line.startswith("user-cache-updater stopped: ValueError: bad (")
    assert "\n" not in line and "Traceback" not in line


# -- explain: the server, the address, the settings, how long it tried, and the exit code -----

SETTINGS = Settings(
    kafka=KafkaSettings(brokers="10.0.0.9:1"),
    cassandra=CassandraSettings(hosts="10.0.0.8", port=2),
    redis=RedisSettings(host="10.0.0.7", port=3),
    topics=TopicSettings(),
    stack=StackSettings(),
    run=RunSettings(),
    postgres=PostgresSettings(host="10.0.0.6", port=4),
)


def _gave_up(exc: BaseException, attempts: int = 3) -> BaseException:
    calls = []

    def fail() -> None:
        calls.append(1)
        raise exc

    with pytest.raises(type(exc)) as raised:
        retry(fail, Backoff(attempts, 0.0, 0.0), "connect", sleep=lambda _s: None)
    assert len(calls) == attempts
    return raised.value


@pytest.mark.parametrize(
    ("cause", "server", "needles", "how"),
    [
        (KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata")), "Kafka",
         ["10.0.0.9:1", "LERNFLOW_KAFKA_BROKERS=10.0.0.9:1"], "kept reconnecting for 31 s"),
        (_gave_up(NoHostAvailable("Unable to connect", {"10.0.0.8:2": ConnectionRefusedError(111, "refused")})),
         "Cassandra", ["10.0.0.8:2", "LERNFLOW_CASSANDRA_HOSTS=10.0.0.8", "LERNFLOW_CASSANDRA_PORT=2"],
         "tried 3 times in"),
        (_gave_up(redis.exceptions.ConnectionError("Error 111 connecting")), "Redis",
         ["10.0.0.7:3", "LERNFLOW_REDIS_HOST=10.0.0.7", "LERNFLOW_REDIS_PORT=3"], "tried 3 times"),
        (psycopg.OperationalError("connection failed: Connection refused"), "PostgreSQL",
         ["10.0.0.6:4", "LERNFLOW_POSTGRES_HOST=10.0.0.6", "LERNFLOW_POSTGRES_PORT=4"],
         "tried once, not retried"),
    ],
)  # fmt: skip
def test_an_unreachable_server_is_named_with_its_address_settings_and_tries(
    cause: BaseException, server: str, needles: list[str], how: str
) -> None:
    stop = explain(_wrapped(cause), "user-cache-updater", SETTINGS, elapsed_s=31.0)
    assert stop.code == ExitCode.UNAVAILABLE
    assert int(ExitCode.UNAVAILABLE) == 69
    assert stop.line.startswith(f"user-cache-updater stopped: {server} unreachable at ")
    assert all(n in stop.line for n in needles), stop.line
    assert how in stop.line and stop.line.endswith(RESUME)
    assert "\n" not in stop.line
    assert stop.fields["server"] == server and stop.fields["stop_kind"] == "unreachable"


@pytest.mark.parametrize(
    "cause",
    [
        AccessRefused("Redis at h:1 refused the credentials: check LERNFLOW_REDIS_PASSWORD"),
        SettingsError("LERNFLOW_KAFKA_PARTITIONS: must be >= 1"),
        ConfigError("the signing key is missing"),
        cassandra.InvalidRequest("Undefined column name offsets in table ks.t"),
        KafkaException(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED, "bad password")),
    ],
)
def test_a_fault_only_a_setting_fixes_exits_78(cause: BaseException) -> None:
    stop = explain(_wrapped(cause), "assessment-aggregator", SETTINGS)
    assert stop.code == ExitCode.CONFIG
    assert int(ExitCode.CONFIG) == 78
    assert "\n" not in stop.line and "assessment-aggregator stopped: " in stop.line


def test_a_full_disk_exits_74_and_anything_else_70() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/rec/x")
    assert explain(_wrapped(full), "f", SETTINGS).code == ExitCode.IOERR
    assert int(ExitCode.IOERR) == 74
    internal = explain(_wrapped(KeyError("k")), "f", SETTINGS)
    assert internal.code == ExitCode.SOFTWARE
    assert int(ExitCode.SOFTWARE) == 70
    assert internal.line.startswith("f stopped: KeyError: 'k' (")


def test_another_transient_error_exits_69_with_its_tries() -> None:
    undelivered = _gave_up(TransientError("3 Kafka messages still undelivered after 120s"))
    stop = explain(_wrapped(undelivered), "f", SETTINGS)
    assert stop.code == ExitCode.UNAVAILABLE
    assert stop.line.startswith("f stopped: TransientError: 3 Kafka messages still undelivered")
    assert "tried 3 times" in stop.line and stop.line.endswith(RESUME)
