"""An operator's mistyped setting (issue 19): the real command stops with a short stderr whose
last line names the server, the address, the setting's env var and what a restart does, and
exits with the documented code (docs/runbook.md, "exit codes for orchestrators").

Each case runs ``python -m lernflow.cli`` in a subprocess with short retries
(``LERNFLOW_RUN_RETRY_*``); the Kafka case waits for the client's own 30 s metadata timeout.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lernflow.config import KafkaSettings, Settings
from lernflow.config.settings import KAFKA_CLIENT_LOGGER
from lernflow.kernel import logs
from lernflow.kernel.clients import kafka_consumer
from lernflow.kernel.errors import ExitCode
from lernflow.ops.runner import input_topic
from tests.flowkit import create_topics, produce
from tests.paths import DATA

FLOW = "activity-aggregate-updater"
EVENT = (DATA / "activity" / "events" / "d_a1_one_completed_no_enrolment.json").read_bytes()
SHORT_RETRIES = {
    "LERNFLOW_RUN_RETRY_MAX_ATTEMPTS": "3",
    "LERNFLOW_RUN_RETRY_BASE_DELAY_S": "0.1",
    "LERNFLOW_RUN_RETRY_MAX_DELAY_S": "0.3",
}
MAX_LINES = 40


@dataclass(frozen=True)
class Ran:
    code: int
    lines: list[str]
    seconds: float

    @property
    def last(self) -> str:
        return self.lines[-1] if self.lines else ""


def _run(settings: Settings, tmp_path: Path, args: list[str], **env: str) -> Ran:
    full = {**os.environ, **settings.to_env(), **SHORT_RETRIES,
            "LERNFLOW_RUN_RECOVERY_DIR": str(tmp_path / "recovery"), **env}  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lernflow.cli", *args], env=full,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    ran = Ran(done.returncode, lines, time.monotonic() - t0)
    print(f"{args[0]} {env}: exit {ran.code}, {len(lines)} lines, {ran.seconds:.1f} s")
    return ran


def _assert_operator_grade(ran: Ran, code: ExitCode, *needles: str) -> None:
    text = "\n".join(ran.lines)
    assert ran.code == code, text[-3000:]
    assert all(n in ran.last for n in needles), ran.last
    assert len(ran.lines) < MAX_LINES, text[-3000:]
    assert "Traceback" not in text and "stack backtrace" not in text, text[-3000:]


def test_kafka_unreachable(settings: Settings, tmp_path: Path) -> None:
    # RUST_BACKTRACE set as a developer's shell may have it: still no Rust backtrace without -v
    ran = _run(settings, tmp_path, ["run", FLOW, "--until-caught-up"],
               LERNFLOW_KAFKA_BROKERS="127.0.0.1:1", RUST_BACKTRACE="1")  # fmt: skip
    _assert_operator_grade(ran, ExitCode.UNAVAILABLE, "LERNFLOW_KAFKA_BROKERS=127.0.0.1:1",
                           "Kafka unreachable at 127.0.0.1:1", "nothing is lost")  # fmt: skip


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cassandra_unreachable(settings: Settings, tmp_path: Path, fmt: str) -> None:
    create_topics(settings)
    ran = _run(settings, tmp_path, ["run", FLOW, "--until-caught-up"],
               LERNFLOW_CASSANDRA_PORT="1", LERNFLOW_LOG_FORMAT=fmt)  # fmt: skip
    _assert_operator_grade(ran, ExitCode.UNAVAILABLE, "LERNFLOW_CASSANDRA_PORT=1",
                           "127.0.0.1:1", "tried 3 times")  # fmt: skip
    if fmt == "json":
        record = json.loads(ran.last)
        assert (record["level"], record["exit_code"], record["server"]) == (
            "ERROR",
            69,
            "Cassandra",
        )
        assert "LERNFLOW_CASSANDRA_PORT" in record["settings"]
    assert sum("cassandra.cluster" in line for line in ran.lines) <= 2  # once per host and error


def test_redis_unreachable_with_an_event_waiting(settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    produce(settings, input_topic(settings, FLOW), [EVENT], key=b"k")
    ran = _run(settings, tmp_path, ["run", FLOW, "--until-caught-up"], LERNFLOW_REDIS_PORT="1")
    _assert_operator_grade(ran, ExitCode.UNAVAILABLE, "LERNFLOW_REDIS_PORT=1",
                           "Redis unreachable at 127.0.0.1:1", "tried 3 times")  # fmt: skip


def test_postgres_unreachable_for_a_report_job(settings: Settings, tmp_path: Path) -> None:
    ran = _run(settings, tmp_path, ["run-job", "progress-exhaust", "--out", str(tmp_path)],
               LERNFLOW_POSTGRES_PORT="1")  # fmt: skip
    _assert_operator_grade(ran, ExitCode.UNAVAILABLE, "LERNFLOW_POSTGRES_PORT=1",
                           "PostgreSQL unreachable at 127.0.0.1:1")  # fmt: skip


def test_a_replay_with_cassandra_unreachable(settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    topic = input_topic(settings, FLOW)
    produce(settings, topic, [EVENT], key=b"k")
    ran = _run(settings, tmp_path, ["replay", FLOW, "--from", f"{topic}:0:0", "--to", f"{topic}:0:1"],
               LERNFLOW_CASSANDRA_PORT="1")  # fmt: skip
    _assert_operator_grade(ran, ExitCode.UNAVAILABLE, "LERNFLOW_CASSANDRA_PORT=1", "replay")


def test_an_invalid_setting_exits_78_naming_it(settings: Settings, tmp_path: Path) -> None:
    ran = _run(settings, tmp_path, ["run", FLOW], LERNFLOW_KAFKA_PARTITIONS="0")
    _assert_operator_grade(ran, ExitCode.CONFIG, "LERNFLOW_KAFKA_PARTITIONS")


def test_with_v_the_traceback_is_shown_and_the_exit_code_kept(
    settings: Settings, tmp_path: Path
) -> None:
    ran = _run(settings, tmp_path, ["-v", "run-job", "progress-exhaust", "--out", str(tmp_path)],
               LERNFLOW_POSTGRES_PORT="1")  # fmt: skip
    assert ran.code == ExitCode.UNAVAILABLE
    assert any(line.startswith("Traceback") for line in ran.lines)
    assert "LERNFLOW_POSTGRES_PORT=1" in ran.last


def _poll_unreachable_broker(seconds: float) -> list[logging.LogRecord]:
    """librdkafka's ERROR lines while a consumer polls a broker that refuses connections."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name == KAFKA_CLIENT_LOGGER and record.levelno >= logging.ERROR:
                records.append(record)

    handler = Keep()
    logging.getLogger().addHandler(handler)
    try:
        consumer = kafka_consumer(KafkaSettings(brokers="127.0.0.1:1"), "lernflow-test")
        consumer.subscribe(["lernflow-unreachable"])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            consumer.poll(0.1)
        consumer.close()
    finally:
        logging.getLogger().removeHandler(handler)
    return records


def test_librdkafka_lines_come_through_logging_once_per_broker_and_error() -> None:
    try:
        logs.configure(logging.DEBUG)  # -v: every line as librdkafka writes it
        every = _poll_unreachable_broker(3.0)
        logs.configure(logging.WARNING)  # the default
        shown = _poll_unreachable_broker(3.0)
    finally:
        logs.configure(logging.WARNING)
    assert len(every) > 5, [r.getMessage() for r in every]
    assert len(shown) == 1, [r.getMessage() for r in shown]
    assert "127.0.0.1:1" in shown[0].getMessage()


def test_a_wrong_postgres_password_exits_78_naming_the_settings(
    settings: Settings, tmp_path: Path
) -> None:
    ran = _run(settings, tmp_path, ["run-job", "progress-exhaust", "--out", str(tmp_path)],
               LERNFLOW_POSTGRES_PASSWORD="not-the-password")  # fmt: skip
    _assert_operator_grade(ran, ExitCode.CONFIG, "LERNFLOW_POSTGRES_PASSWORD", "127.0.0.1:5432",
                           "refused the credentials")  # fmt: skip


def test_a_missing_input_topic_exits_78_naming_the_setting(
    settings: Settings, tmp_path: Path
) -> None:
    ran = _run(settings, tmp_path, ["run", FLOW, "--until-caught-up"])  # no topics created
    _assert_operator_grade(ran, ExitCode.CONFIG, "does not exist", "lernflow schema apply",
                           "LERNFLOW_ENV")  # fmt: skip


def test_any_other_command_ends_the_same_way(settings: Settings, tmp_path: Path) -> None:
    ran = _run(settings, tmp_path, ["report", "requests"], LERNFLOW_POSTGRES_PORT="1")
    _assert_operator_grade(ran, ExitCode.UNAVAILABLE, "lernflow report requests stopped",
                           "LERNFLOW_POSTGRES_PORT=1", "PostgreSQL unreachable at 127.0.0.1:1")  # fmt: skip


def test_kafka_refusing_the_login_exits_78_naming_the_credentials(
    settings: Settings, tmp_path: Path
) -> None:
    # the plain stack's listener speaks no SASL: the login is refused as a wrong password is
    ran = _run(settings, tmp_path, ["run", FLOW, "--until-caught-up"],
               LERNFLOW_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", LERNFLOW_KAFKA_SASL_USERNAME="u",
               LERNFLOW_KAFKA_SASL_PASSWORD="not-the-password")  # fmt: skip
    _assert_operator_grade(ran, ExitCode.CONFIG, "LERNFLOW_KAFKA_SASL_PASSWORD",
                           f"{settings.kafka.brokers} refused the credentials")  # fmt: skip
