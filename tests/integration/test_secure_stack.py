"""The secured stack (issue 17 item 3): ``lernflow stack up --secure``'s servers — Kafka
SASL_SSL with SCRAM-SHA-512 and client certificates, Cassandra TLS + PasswordAuthenticator,
Redis TLS + an ACL user, PostgreSQL hostssl + scram-sha-256 — started for this module on ports
of their own (291xx-298xx) under ``.stack-secure/test`` and stopped (data wiped) at its end.

The activity flow and one certificate run end to end on it; a wrong password or a CA the
servers' certificates do not chain to fails within seconds with an error naming the setting.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from lernflow import cli
from lernflow.config import Settings
from lernflow.devstack import secure, stack
from lernflow.kernel.clients import (
    AccessRefused,
    cassandra_session,
    kafka_preflight,
    postgres_connect,
    redis_client,
)
from lernflow.kernel.errors import ExitCode
from lernflow.ops import schema
from tests.flowkit import create_topics, produce, read_json, run_to_end
from tests.integration.test_activity_flow import (
    MAYA,
    T_A1,
    _enrolment,
    _fixture,
    seed_cassandra,
    seed_relation_cache,
)
from tests.integration.test_certificates_flow import (
    BATCH,
    COURSE,
    GEN,
    ISSUER,
    PRE,
    SIGNATORIES,
    _course,
    _enrol,
    _issue_event,
    _issued,
    _registry,
    _user,
    cert_environment,
)
from tests.integration.test_certificates_flow import _topics as cert_topics
from tests.paths import DATA

REPO = DATA.parent.parent
STACK_DIR = REPO / ".stack-secure" / "test"
PORTS = secure.SecurePorts(
    kafka=29192, cassandra=29142, cassandra_storage=29800, cassandra_jmx=29299,
    redis=29479, postgres=29532,
)  # fmt: skip
REFUSED_WITHIN_S = 5.0


def _noop(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def secure_stack(base_settings: Settings) -> Iterator[Settings]:
    """The secure stack, up for this module (reused if already up, then left running)."""
    s = secure.secure_settings(base_settings, STACK_DIR, PORTS)
    servers = stack.servers(s, _noop)
    ours = not any(srv.is_listening() for srv in servers)
    stack.up(s, _noop)
    try:
        schema.apply_cassandra(s.cassandra)
        schema.apply_postgres(s.postgres)
        yield s
    finally:
        if ours:
            stack.down(s, _noop, wipe=True)


@pytest.fixture
def sec(secure_stack: Settings) -> Settings:
    """The secure stack with a topic environment of this test's own."""
    topics = secure_stack.topics.model_copy(update={"env": f"sec-{uuid.uuid4().hex[:10]}"})
    return secure_stack.with_overrides(topics=topics)


def test_the_activity_flow_runs_end_to_end_over_tls_and_scram(sec: Settings) -> None:
    s = sec
    create_topics(s)
    seed_cassandra(s)
    seed_relation_cache(s)
    for db in (s.redis.dedup_db,):
        redis_client(s.redis, db).flushdb()
    t = s.topics
    produce(s, t.full(t.course_batch_job_request), [_fixture(n) for n in T_A1], key=b"maya")
    run_to_end("activity-aggregate-updater", s)

    enrol = _enrolment(s, MAYA)
    assert (enrol.status, enrol.progress) == (2, 4)
    assert enrol.completedon is not None
    certs = read_json(s, t.full(t.issue_certificate_request))
    assert [c["edata"]["userIds"] for c in certs] == [["lf-user-maya"]]
    assert read_json(s, t.full(t.activity_agg_failed)) == []


def test_one_certificate_is_issued_and_verified_on_the_secure_stack(
    sec: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cert_environment(sec, tmp_path) as s:
        topics = cert_topics(s)
        _course(s, ISSUER, SIGNATORIES)
        _user(s, "learner-sec", "Asha", "Rao")
        _enrol(s, "learner-sec")
        produce(s, topics["issue"], [_issue_event("learner-sec", COURSE, BATCH)], key=b"l")
        run_to_end(PRE, s)
        run_to_end(GEN, s)
        issued = _issued(s, "learner-sec")
        assert len(issued) == 1
        rows = _registry(s)
        assert [r.id for r in rows] == [issued[0]["identifier"]]
        for key, value in s.to_env().items():
            monkeypatch.setenv(key, value)
        res = CliRunner().invoke(cli.app, ["cert", "verify", issued[0]["identifier"]])
        assert res.exit_code == 0, res.output


def _refusal_seconds(call: Callable[[], Any], needle: str) -> float:
    """Run ``call``; it must raise AccessRefused naming ``needle``; return how long it took."""
    t0 = time.monotonic()
    with pytest.raises(AccessRefused) as err:
        call()
    took = time.monotonic() - t0
    assert needle in str(err.value)
    return took


def _untrusted_ca(tmp_path: Path) -> Path:
    return secure.make_ca(tmp_path, "stranger", "/CN=a CA the servers do not use")


def test_a_wrong_password_fails_within_seconds_naming_the_setting(
    secure_stack: Settings, record_property: Callable[[str, object], None]
) -> None:
    s, wrong = secure_stack, SecretStr("not-the-password")

    def redis_ping() -> None:
        redis_client(s.redis.model_copy(update={"password": wrong}), 0).ping()

    def cassandra() -> None:
        cassandra_session(s.cassandra.model_copy(update={"password": wrong}))

    def postgres() -> None:
        postgres_connect(s.postgres.model_copy(update={"password": wrong}))

    took = {
        "kafka": _refusal_seconds(
            lambda: kafka_preflight(s.kafka.model_copy(update={"sasl_password": wrong})),
            "LERNFLOW_KAFKA_SASL_PASSWORD",
        ),
        "cassandra": _refusal_seconds(cassandra, "LERNFLOW_CASSANDRA_PASSWORD"),
        "redis": _refusal_seconds(redis_ping, "LERNFLOW_REDIS_PASSWORD"),
        "postgres": _refusal_seconds(postgres, "LERNFLOW_POSTGRES_PASSWORD"),
    }
    record_property("wrong_password_seconds", took)
    print(f"wrong password refused after (s): {took}")
    assert max(took.values()) < REFUSED_WITHIN_S, took


def test_an_untrusted_server_certificate_fails_within_seconds_naming_the_setting(
    secure_stack: Settings, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    s, stranger = secure_stack, _untrusted_ca(tmp_path)

    def redis_ping() -> None:
        redis_client(s.redis.model_copy(update={"tls_ca_file": stranger}), 0).ping()

    def cassandra() -> None:
        cassandra_session(s.cassandra.model_copy(update={"tls_ca_file": stranger}))

    def postgres() -> None:
        postgres_connect(s.postgres.model_copy(update={"sslrootcert": stranger}))

    took = {
        "kafka": _refusal_seconds(
            lambda: kafka_preflight(s.kafka.model_copy(update={"tls_ca_file": stranger})),
            "LERNFLOW_KAFKA_TLS_CA_FILE",
        ),
        "cassandra": _refusal_seconds(cassandra, "LERNFLOW_CASSANDRA_TLS_CA_FILE"),
        "redis": _refusal_seconds(redis_ping, "LERNFLOW_REDIS_TLS_CA_FILE"),
        "postgres": _refusal_seconds(postgres, "LERNFLOW_POSTGRES_SSLROOTCERT"),
    }
    record_property("untrusted_ca_seconds", took)
    print(f"untrusted CA refused after (s): {took}")
    assert max(took.values()) < REFUSED_WITHIN_S, took


def test_plaintext_clients_and_missing_client_certificates_are_refused(
    secure_stack: Settings,
) -> None:
    s = secure_stack
    no_cert = s.kafka.model_copy(update={"tls_cert_file": None, "tls_key_file": None})
    _refusal_seconds(lambda: kafka_preflight(no_cert), "LERNFLOW_KAFKA_TLS_CERT_FILE")
    import redis

    with pytest.raises(redis.exceptions.ConnectionError):  # TLS port: a plain client gets nothing
        redis_client(s.redis.model_copy(update={"tls": False, "tls_ca_file": None,
                                                "tls_cert_file": None, "tls_key_file": None}),
                     0).ping()  # fmt: skip
    with pytest.raises(AccessRefused, match="LERNFLOW_POSTGRES_SSLMODE"):  # hostssl only
        postgres_connect(s.postgres.model_copy(update={"sslmode": "disable"}))


@pytest.mark.parametrize("setting", ["LERNFLOW_KAFKA_SASL_PASSWORD", "LERNFLOW_CASSANDRA_PASSWORD"])
def test_lernflow_run_with_a_wrong_password_stops_with_one_line_naming_it(
    secure_stack: Settings, setting: str
) -> None:
    """Issue 19's acceptance on the secured stack: the last stderr line names the setting,
    fewer than 40 lines without ``-v``, the documented exit code (78, docs/runbook.md)."""
    schema.apply_topics(secure_stack.kafka, secure_stack.topics)  # so Cassandra is reached
    env = {**os.environ, **secure_stack.to_env(), setting: "wrong"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "lernflow"), "run", "activity-aggregate-updater",
         "--until-caught-up"],
        capture_output=True, text=True, env=env, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    took = time.monotonic() - t0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == ExitCode.CONFIG, proc.stderr[-3000:]
    assert lines and setting in lines[-1], proc.stderr[-3000:]
    assert len(lines) < 40, proc.stderr[-3000:]
    assert took < 30, took  # the process start included; librdkafka alone would wait 30 s
