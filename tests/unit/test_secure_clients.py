"""Secured servers (issue 17 item 3): the settings for TLS and credentials, what each client is
given for them, and refusals turned into one error naming the settings (no server here)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from lernflow.config import (
    CassandraSettings,
    KafkaSettings,
    PostgresSettings,
    RedisSettings,
    SettingsError,
    load_settings,
)
from lernflow.kernel import clients
from lernflow.kernel.clients import AccessRefused
from lernflow.kernel.retry import is_transient


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("LERNFLOW_"):
            monkeypatch.delenv(name)


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, Path]:
    """Three readable files standing in for a CA, a client certificate and its key."""
    files = {}
    for name in ("ca", "cert", "key"):
        files[name] = tmp_path / f"{name} file.pem"  # a space: conninfo must quote it
        files[name].write_text("-----BEGIN-----\n")
    return files


def test_kafka_scram_over_tls_gives_librdkafka_every_setting(pem):
    kafka = KafkaSettings(
        brokers="broker:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="lernflow",
        sasl_password="s3cret",
        tls_ca_file=pem["ca"],
        tls_cert_file=pem["cert"],
        tls_key_file=pem["key"],
        tls_key_password="kp",
    )
    conf = kafka.client_config()
    conf.pop("logger", None)  # where librdkafka logs (lernflow.kernel.logs), not security
    assert conf == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "lernflow",
        "sasl.password": "s3cret",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(pem["ca"]),
        "ssl.certificate.location": str(pem["cert"]),
        "ssl.key.location": str(pem["key"]),
        "ssl.key.password": "kp",
    }


def test_kafka_plaintext_and_tls_only_configs():
    plain = KafkaSettings().client_config()
    plain.pop("logger", None)
    assert plain == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}
    conf = KafkaSettings(security_protocol="SSL", tls_verify_hostname=False).client_config()
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert "sasl.mechanism" not in conf and "ssl.ca.location" not in conf


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        (
            {"LERNFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "LERNFLOW_KAFKA_SASL_USERNAME": "u"},
            ["LERNFLOW_KAFKA_SASL_USERNAME and LERNFLOW_KAFKA_SASL_PASSWORD"],
        ),
        (
            {"LERNFLOW_KAFKA_SASL_USERNAME": "u", "LERNFLOW_KAFKA_SASL_PASSWORD": "p"},
            ["LERNFLOW_KAFKA_SECURITY_PROTOCOL=PLAINTEXT sends no credentials"],
        ),
        (
            {"LERNFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"},
            ["KafkaSettings.sasl_mechanism (env LERNFLOW_KAFKA_SASL_MECHANISM)"],
        ),
        (
            {"LERNFLOW_KAFKA_SECURITY_PROTOCOL": "SSL", "LERNFLOW_KAFKA_TLS_CA_FILE": "/nope.pem"},
            ["LERNFLOW_KAFKA_TLS_CA_FILE", "'/nope.pem' is not a readable file"],
        ),
        (
            {"LERNFLOW_CASSANDRA_USERNAME": "lernflow"},
            ["LERNFLOW_CASSANDRA_USERNAME is set but LERNFLOW_CASSANDRA_PASSWORD is not"],
        ),
        (
            {"LERNFLOW_REDIS_USERNAME": "lernflow"},
            ["LERNFLOW_REDIS_USERNAME is set but LERNFLOW_REDIS_PASSWORD is not"],
        ),
        (
            {"LERNFLOW_POSTGRES_SSLMODE": "on"},
            ["PostgresSettings.sslmode (env LERNFLOW_POSTGRES_SSLMODE)"],
        ),
    ],
)
def test_inconsistent_security_settings_name_the_env_vars(clean_env, monkeypatch, env, needles):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    for needle in needles:
        assert needle in str(err.value)
    assert "'p'" not in str(err.value)  # a model-level error does not print the values


def test_tls_files_without_tls_and_a_cert_without_key_are_refused(clean_env, monkeypatch, pem):
    monkeypatch.setenv("LERNFLOW_REDIS_TLS_CA_FILE", str(pem["ca"]))
    with pytest.raises(SettingsError, match="LERNFLOW_REDIS_TLS_CA_FILE is set but TLS is off"):
        load_settings()
    monkeypatch.setenv("LERNFLOW_REDIS_TLS", "true")
    monkeypatch.setenv("LERNFLOW_REDIS_TLS_CERT_FILE", str(pem["cert"]))
    with pytest.raises(SettingsError, match="LERNFLOW_REDIS_TLS_KEY_FILE is not"):
        load_settings()
    monkeypatch.setenv("LERNFLOW_REDIS_TLS_KEY_FILE", str(pem["key"]))
    assert load_settings().redis.tls_key_file == pem["key"]


def test_secrets_are_masked_and_survive_to_env(clean_env, monkeypatch, pem):
    monkeypatch.setenv("LERNFLOW_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("LERNFLOW_KAFKA_TLS_CERT_FILE", str(pem["cert"]))
    monkeypatch.setenv("LERNFLOW_KAFKA_TLS_KEY_FILE", str(pem["key"]))
    monkeypatch.setenv("LERNFLOW_KAFKA_TLS_KEY_PASSWORD", "hunter2")
    s = load_settings()
    assert "hunter2" not in str(s.as_dict())
    env = s.to_env()
    assert env["LERNFLOW_KAFKA_TLS_KEY_PASSWORD"] == "hunter2"
    assert env["LERNFLOW_KAFKA_TLS_CERT_FILE"] == str(pem["cert"])


def test_postgres_conninfo_carries_sslmode_and_quoted_paths(pem):
    pg = PostgresSettings(password="it's a secret", sslmode="verify-full", sslrootcert=pem["ca"])
    parsed = conninfo_to_dict(pg.conninfo())
    assert parsed["sslmode"] == "verify-full"
    assert parsed["sslrootcert"] == str(pem["ca"])
    assert parsed["password"] == "it's a secret"
    assert conninfo_to_dict(pg.conninfo("postgres"))["dbname"] == "postgres"
    assert "sslrootcert" not in conninfo_to_dict(PostgresSettings().conninfo())


def test_redis_connection_arguments(pem):
    plain = clients.redis_connection_kwargs(RedisSettings(), 3)
    assert not any(k.startswith("ssl_") for k in plain) and plain["username"] is None
    secured = RedisSettings(
        username="lernflow", password="p", tls=True, tls_ca_file=pem["ca"], port=6380
    )
    kwargs = clients.redis_connection_kwargs(secured, 3)
    assert kwargs["username"] == "lernflow" and kwargs["password"] == "p"
    assert kwargs["ssl_ca_certs"] == str(pem["ca"]) and kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True
    import redis

    client = clients.redis_client(secured, 3)
    assert issubclass(client.connection_pool.connection_class, redis.SSLConnection)
    assert not issubclass(
        clients.redis_client(RedisSettings(), 3).connection_pool.connection_class,
        redis.SSLConnection,
    )


def test_redis_refusals_become_access_refused():
    import redis

    refused = clients._redis_refusal("h", 1, redis.exceptions.AuthenticationError("WRONGPASS"))
    assert isinstance(refused, AccessRefused)
    assert "LERNFLOW_REDIS_PASSWORD" in str(refused) and not is_transient(refused)
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    cause.verify_message = "unable to get local issuer certificate"
    wrapped = redis.exceptions.ConnectionError("Error 1 connecting")
    wrapped.__cause__ = cause
    untrusted = clients._redis_refusal("h", 1, wrapped)
    assert untrusted is not None and "LERNFLOW_REDIS_TLS_CA_FILE" in str(untrusted)
    assert "unable to get local issuer certificate" in str(untrusted)
    assert clients._redis_refusal("h", 1, redis.exceptions.ConnectionError("refused")) is None


class _FakeCluster:
    seen: dict[str, object] = {}
    error: Exception | None = None

    def __init__(self, hosts: list[str], **kwargs: object) -> None:
        _FakeCluster.seen = kwargs

    def connect(self, keyspace: str | None) -> object:
        if _FakeCluster.error is not None:
            raise _FakeCluster.error
        return object()

    def shutdown(self) -> None:
        pass


def test_cassandra_gets_a_verifying_tls_context_and_names_refusals(monkeypatch, tmp_path):
    import cassandra.cluster
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    ca = _self_signed_ca(tmp_path)
    monkeypatch.setattr(cassandra.cluster, "Cluster", _FakeCluster)
    settings = CassandraSettings(username="lernflow", password="p", tls=True, tls_ca_file=ca)
    _FakeCluster.error = None
    clients.cassandra_session(settings)
    context = _FakeCluster.seen["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert _FakeCluster.seen["auth_provider"].username == "lernflow"  # type: ignore[attr-defined]
    clients.cassandra_session(CassandraSettings())
    assert _FakeCluster.seen["ssl_context"] is None

    _FakeCluster.error = NoHostAvailable("x", {"127.0.0.1:9042": AuthenticationFailed("bad")})
    with pytest.raises(AccessRefused, match="LERNFLOW_CASSANDRA_PASSWORD"):
        clients.cassandra_session(settings)
    bad_cert = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed")
    _FakeCluster.error = NoHostAvailable("x", {"127.0.0.1:9042": bad_cert})
    with pytest.raises(AccessRefused, match="LERNFLOW_CASSANDRA_TLS_CA_FILE"):
        clients.cassandra_session(settings)
    _FakeCluster.error = NoHostAvailable("x", {"127.0.0.1:9042": ConnectionRefusedError()})
    with pytest.raises(NoHostAvailable):  # down, not refused: stays transient
        clients.cassandra_session(settings)


def _self_signed_ca(tmp_path: Path) -> Path:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_kafka_refusals_name_the_settings():
    kafka = KafkaSettings()
    wrong = clients._kafka_refusal(
        kafka, [("_TRANSPORT", "down"), ("_AUTHENTICATION", "SASL authentication error: ...")]
    )
    assert wrong is not None and "LERNFLOW_KAFKA_SASL_PASSWORD" in str(wrong)
    untrusted = clients._kafka_refusal(
        kafka, [("_SSL", "SSL handshake failed: ...: certificate verify failed: broker ...")]
    )
    assert untrusted is not None and "LERNFLOW_KAFKA_TLS_CA_FILE" in str(untrusted)
    no_cert = clients._kafka_refusal(
        kafka, [("_TRANSPORT", "Receive failed: ...:ssl/tls alert bad certificate: ...")]
    )
    assert no_cert is not None and "LERNFLOW_KAFKA_TLS_CERT_FILE" in str(no_cert)
    assert clients._kafka_refusal(kafka, [("_TRANSPORT", "Connection refused")]) is None


def test_kafka_preflight_is_skipped_for_plaintext(monkeypatch):
    import confluent_kafka.admin

    def no_admin(conf):  # pragma: no cover - must not be called
        raise AssertionError("no client for a plaintext cluster")

    monkeypatch.setattr(confluent_kafka.admin, "AdminClient", no_admin)
    clients.kafka_preflight(KafkaSettings(brokers="127.0.0.1:1"))
