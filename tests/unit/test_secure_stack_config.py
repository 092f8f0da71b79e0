"""``lernflow stack up --secure`` without starting anything: the throwaway CA and certificates
verify as the clients will verify them, and each server's configuration requires TLS and the
settings' credentials (tests/integration/test_secure_stack.py starts the servers)."""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from lernflow.config import load_settings
from lernflow.devstack import secure
from lernflow.devstack.cassandra_server import CassandraServer
from lernflow.devstack.kafka_server import KafkaServer
from lernflow.devstack.redis_server import RedisServer
from lernflow.kernel.clients import tls_context


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    return secure.secure_settings(load_settings(), tmp_path_factory.mktemp("stack-secure"))


def test_secure_settings_point_every_client_at_the_stack_pki(secured):
    pki = secure.stack_pki(secured)
    assert secured.stack.secure and secured.stack.dir == pki.root.parent
    assert secured.kafka.security_protocol == "SASL_SSL"
    assert secured.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert secured.kafka.tls_ca_file == pki.ca == secured.cassandra.tls_ca_file
    assert secured.cassandra.tls and secured.redis.tls and secured.redis.username == "lernflow"
    assert secured.postgres.sslmode == "verify-full" and secured.postgres.sslrootcert == pki.ca
    assert secured.kafka.brokers == "127.0.0.1:29092" and secured.postgres.port == 29432
    passwords = {
        secured.kafka.sasl_password.get_secret_value(),
        secured.cassandra.password.get_secret_value(),
        secured.redis.password.get_secret_value(),
        secured.postgres.password.get_secret_value(),
    }
    assert len(passwords) == 4  # one per service
    for private in (secured.stack.dir / "secrets.json", pki.server_key, pki.client_key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    again = secure.secure_settings(load_settings(), secured.stack.dir)  # kept, not remade
    assert again.redis.password == secured.redis.password
    assert pki.ca.read_bytes() == secure.stack_pki(again).ca.read_bytes()


def test_env_file_has_the_connection_settings_only(secured):
    path = secure.write_env_file(secured)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "export LERNFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL" in text
    assert "export LERNFLOW_POSTGRES_SSLMODE=verify-full" in text
    assert "export LERNFLOW_STACK_SECURE=true" in text
    assert "USER_CACHE_DB" not in text and "LERNFLOW_KAFKA_PARTITIONS" not in text


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> str:
    """One TLS handshake over a socket pair; return the client's view of the peer's CN."""
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(b, server_hostname=host) as c:
            subject = dict(x[0] for x in c.getpeercert()["subject"])  # type: ignore[index,misc]
            c.send(b"x")
    finally:
        thread.join(5)
    return str(subject["commonName"])


def test_server_certificate_verifies_for_localhost_and_the_ip(secured, tmp_path):
    pki = secure.stack_pki(secured)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    for host in ("127.0.0.1", "localhost"):
        assert _handshake(server, tls_context(pki.ca), host) == "localhost"
    other = secure.make_ca(tmp_path, "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, tls_context(other), "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, tls_context(pki.ca), "example.org")  # the name is checked too
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca), str(pki.client_cert)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr


def test_servers_are_configured_to_require_tls_and_credentials(secured):
    kafka = KafkaServer(secured, lambda _m: None)
    props = "\n".join(kafka._listeners())
    assert "listeners=SASL_SSL://127.0.0.1:29092," in props
    assert "listener.name.sasl_ssl.ssl.client.auth=required" in props
    assert "PLAINTEXT://127.0.0.1:29092" not in props
    scram = kafka._scram_users()
    assert any(a.startswith("SCRAM-SHA-512=[name=lernflow,password=") for a in scram)
    assert any(a.startswith("SCRAM-SHA-256=[name=lernflow,password=") for a in scram)

    redis = RedisServer(secured, lambda _m: None)
    args = redis._ports()
    assert args[:2] == ["--port", "0"] and "--tls-port" in args
    acl = Path(args[args.index("--aclfile") + 1]).read_text()
    assert "user default off" in acl and "user lernflow on >" in acl

    cassandra = CassandraServer(secured, lambda _m: None)
    cassandra.home.mkdir(parents=True, exist_ok=True)
    yaml = cassandra._authenticator() + cassandra._secure_yaml()
    assert "authenticator: PasswordAuthenticator" in yaml
    assert "enabled: true\n  optional: false" in yaml


def test_the_open_stack_is_unchanged():
    base = load_settings()
    plain = base.with_overrides(stack=base.stack.model_copy(update={"secure": False}))
    kafka = KafkaServer(plain, lambda _m: None)
    assert "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" in (
        kafka._listeners()
    )
    assert kafka._scram_users() == []
    assert RedisServer(plain, lambda _m: None)._ports() == ["--port", str(plain.redis.port)]
