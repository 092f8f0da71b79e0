"""The server clients' own log lines, cut to what an operator reads (lernflow.kernel.logs)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lernflow.config.settings import KAFKA_CLIENT_LOGGER, KafkaSettings
from lernflow.kernel import logs
from lernflow.kernel.logs import ClientRepeats, DriverOnce

FAIL = "[thrd:{b}/bootstrap]: {b}/bootstrap: Connect to ipv4#{b} failed: Connection refused ({n})"


def _rdkafka(
    broker: str, client: str = "rdkafka#producer-1", n: str = "after 0ms in state CONNECT"
) -> logging.LogRecord:
    text = FAIL.format(b=broker, n=n)
    return logging.LogRecord(KAFKA_CLIENT_LOGGER, logging.ERROR, "", 0, "%s [%s] %s",
                             ("FAIL", client, text), None)  # fmt: skip


def test_librdkafka_repeats_show_once_per_broker_and_error_per_interval_with_a_count() -> None:
    now = [0.0]
    limit = ClientRepeats(interval_s=60.0, clock=lambda: now[0])
    shown = []
    for i in range(600):  # a refused connect every 50 ms for 30 s, from two clients
        now[0] = i * 0.05
        client = f"rdkafka#consumer-{i % 2}"
        timing = f"after {i % 7}ms in state CONNECT, {i} identical error(s) suppressed"
        if limit.filter(record := _rdkafka("127.0.0.1:1", client, timing)):
            shown.append(record.getMessage())
    assert len(shown) == 1
    assert limit.filter(_rdkafka("10.0.0.2:9092"))  # another broker: its own line
    now[0] = 61.0
    record = _rdkafka("127.0.0.1:1")
    assert limit.filter(record)
    assert record.getMessage().endswith("(599 more like it in the last 61 s not shown)")
    assert not limit.filter(_rdkafka("127.0.0.1:1"))


def _driver_error(host: str, error: Exception) -> logging.LogRecord:
    try:
        raise error
    except Exception as exc:
        info = (type(exc), exc, exc.__traceback__)
    return logging.LogRecord("cassandra.cluster", logging.ERROR, "", 0,
                             "[control connection] Error connecting to %s:", (host,), info)  # fmt: skip


def test_cassandra_connection_errors_once_per_host_and_error_at_warning_without_traceback() -> None:
    once = DriverOnce()
    first = _driver_error("127.0.0.1:1", ConnectionRefusedError(111, "Connection refused"))
    assert once.filter(first)
    assert (first.levelno, first.levelname, first.exc_info) == (logging.WARNING, "WARNING", None)
    assert first.getMessage() == (
        "[control connection] Error connecting to 127.0.0.1:1: "
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    again = _driver_error("127.0.0.1:1", ConnectionRefusedError(111, "Connection refused"))
    assert not once.filter(again)
    assert once.filter(
        _driver_error("127.0.0.2:1", ConnectionRefusedError(111, "Connection refused"))
    )
    assert once.filter(_driver_error("127.0.0.1:1", TimeoutError("timed out")))
    info = logging.LogRecord("cassandra.pool", logging.INFO, "", 0, "pool of %s", ("h",), None)
    assert once.filter(info) and once.filter(info)  # below WARNING: untouched


@pytest.fixture
def configured() -> Iterator[None]:
    yield
    logs.configure(logging.WARNING)  # back to the default filters


def test_configure_installs_the_filters_once_and_none_with_debug(configured: None) -> None:
    logs.configure(logging.WARNING)
    logs.configure(logging.INFO)
    kafka, pool = logging.getLogger(KAFKA_CLIENT_LOGGER), logging.getLogger("cassandra.pool")
    assert [type(f) for f in kafka.filters] == [ClientRepeats]
    assert [type(f) for f in pool.filters] == [DriverOnce]
    logs.configure(logging.DEBUG)  # -v: every line as the client wrote it
    assert not kafka.filters and not pool.filters


def test_every_kafka_client_logs_through_python_logging() -> None:
    assert KafkaSettings().client_config()["logger"] is logging.getLogger(KAFKA_CLIENT_LOGGER)


def test_the_last_line_follows_the_log_format(configured: None) -> None:
    logs.configure(logging.WARNING, "text")
    assert logs.last_line("f stopped: x", exit_code=69) == "f stopped: x"
    logs.configure(logging.WARNING, "json")
    line = logs.last_line("f stopped: x", exit_code=69, server="Kafka")
    assert '"level": "ERROR"' in line and '"exit_code": 69' in line and '"server": "Kafka"' in line
