"""The secured local stack (``lernflow stack up --secure``): a throwaway CA, the servers'
certificates, per-service passwords, and the client settings that reach the servers.

Everything lives under its own stack dir (default ``.stack-secure``) with its own ports
(:data:`SECURE_PORTS`, 29xxx), so it never disturbs the open stack:

* ``pki/``: ``ca.pem``/``ca.key`` (the throwaway CA, made with ``openssl``), ``server.pem`` +
  ``server.key`` (SAN ``localhost`` and ``127.0.0.1``, server and client use), ``server.p12``
  (the same for the JVM servers), ``client.pem`` + ``client.key`` (CN ``lernflow``);
* ``secrets.json`` (mode 0600): the ``lernflow`` user's password on each server, Kafka's
  inter-broker ``admin`` password and the keystore password;
* ``env.sh`` (mode 0600): the ``LERNFLOW_*`` variables of a client of this stack.

With ``LERNFLOW_STACK_SECURE=true`` every server of ``lernflow.devstack.stack`` requires TLS
and the credentials of the settings (docs/runbook.md, "Secured servers").
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from lernflow.config import Settings

logger = logging.getLogger(__name__)

SECURE_DIR = Path(".stack-secure")
CERT_DAYS = 30


@dataclass(frozen=True)
class SecurePorts:
    """The ports of the secure stack (Kafka's KRaft controller takes ``kafka + 1``)."""

    kafka: int = 29092
    cassandra: int = 29042
    cassandra_storage: int = 29700
    cassandra_jmx: int = 29199
    redis: int = 29379
    postgres: int = 29432


SECURE_PORTS = SecurePorts()


@dataclass(frozen=True)
class Pki:
    """The files of a stack's throwaway CA (``pki/`` under the stack dir)."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def server_p12(self) -> Path:
        return self.root / "server.p12"

    @property
    def client_cert(self) -> Path:
        return self.root / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.root / "client.key"


@dataclass(frozen=True)
class Secrets:
    """Per-service passwords of the secure stack (``secrets.json``)."""

    kafka: str
    kafka_admin: str
    cassandra: str
    redis: str
    postgres: str
    keystore: str


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = f"openssl {args[0]} failed: {proc.stderr.strip()[-1000:]}"
        raise RuntimeError(msg)


def make_ca(root: Path, name: str = "ca", subject: str = "/CN=lernflow throwaway CA") -> Path:
    """A self-signed CA (``<name>.pem``, ``<name>.key``) under ``root``; return the cert."""
    root.mkdir(parents=True, exist_ok=True)
    cert, key = root / f"{name}.pem", root / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
        "-days", str(CERT_DAYS), "-subj", subject,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    key.chmod(0o600)
    return cert


def _issue(pki: Pki, name: str, subject: str, ext: str) -> None:
    csr, extfile = pki.root / f"{name}.csr", pki.root / f"{name}.ext"
    extfile.write_text(ext)
    key = pki.root / f"{name}.key"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", subject)  # fmt: skip
    key.chmod(0o600)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki.ca), "-CAkey", str(pki.root / "ca.key"),
        "-CAcreateserial", "-out", str(pki.root / f"{name}.pem"), "-days", str(CERT_DAYS),
        "-extfile", str(extfile),
    )  # fmt: skip
    csr.unlink()
    extfile.unlink()


def ensure_pki(root: Path, keystore_password: str) -> Pki:
    """The stack's CA and certificates, made on first use (kept until ``down --wipe``)."""
    pki = Pki(root)
    if pki.server_p12.exists() and pki.client_key.exists():
        return pki
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # the postgres user reads the server's copy made from here
    make_ca(root)
    _issue(
        pki, "server", "/CN=localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )  # fmt: skip
    _issue(
        pki, "client", "/CN=lernflow",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n",
    )  # fmt: skip
    _openssl(
        "pkcs12", "-export", "-in", str(pki.server_cert), "-inkey", str(pki.server_key),
        "-certfile", str(pki.ca), "-name", "server", "-out", str(pki.server_p12),
        "-passout", f"pass:{keystore_password}",
    )  # fmt: skip
    pki.server_p12.chmod(0o600)
    logger.info("secure stack: CA and certificates made in %s", root)
    return pki


def ensure_secrets(path: Path) -> Secrets:
    """The stack's passwords: read from ``path``, or made (hex, 32 chars) and written 0600."""
    if path.exists():
        return Secrets(**json.loads(path.read_text()))
    made = Secrets(*(secrets.token_hex(16) for _ in range(6)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(made.__dict__, out)
    return made


def stack_pki(settings: Settings) -> Pki:
    """The PKI of the stack ``settings`` describe (``<stack dir>/pki``)."""
    return Pki(settings.stack.dir.resolve() / "pki")


def stack_secrets(settings: Settings) -> Secrets:
    """The passwords of the stack ``settings`` describe (``<stack dir>/secrets.json``)."""
    return ensure_secrets(settings.stack.dir.resolve() / "secrets.json")


def secure_settings(
    base: Settings, stack_dir: Path | None = None, ports: SecurePorts = SECURE_PORTS
) -> Settings:
    """``base`` moved onto the secure stack under ``stack_dir``: its ports, TLS with its CA,
    SCRAM-SHA-512 on Kafka, the ``lernflow`` user with its password on every server."""
    root = (stack_dir or SECURE_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # PostgreSQL runs as the postgres user and must reach its data
    secret = ensure_secrets(root / "secrets.json")
    pki = ensure_pki(root / "pki", secret.keystore)
    host = "127.0.0.1"
    return base.with_overrides(
        stack=base.stack.model_copy(update={
            "dir": root, "lib_dir": (base.stack.lib_dir or base.stack.dir / "lib").resolve(),
            "secure": True, "cassandra_storage_port": ports.cassandra_storage,
            "cassandra_jmx_port": ports.cassandra_jmx, "kafka_heap": "512m",
            "cassandra_heap": "768M",
        }),
        kafka=base.kafka.model_copy(update={
            "brokers": f"{host}:{ports.kafka}", "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "lernflow",
            "sasl_password": SecretStr(secret.kafka), "tls_ca_file": pki.ca,
            "tls_cert_file": pki.client_cert, "tls_key_file": pki.client_key,
        }),
        cassandra=base.cassandra.model_copy(update={
            "hosts": host, "port": ports.cassandra, "username": "lernflow",
            "password": SecretStr(secret.cassandra), "tls": True, "tls_ca_file": pki.ca,
        }),
        redis=base.redis.model_copy(update={
            "host": host, "port": ports.redis, "username": "lernflow",
            "password": SecretStr(secret.redis), "tls": True, "tls_ca_file": pki.ca,
            "tls_cert_file": pki.client_cert, "tls_key_file": pki.client_key,
        }),
        run=base.run.model_copy(update={"recovery_dir": root / "recovery"}),
        postgres=base.postgres.model_copy(update={
            "host": host, "port": ports.postgres, "user": "lernflow",
            "password": SecretStr(secret.postgres), "sslmode": "verify-full",
            "sslrootcert": pki.ca,
        }),
    )  # fmt: skip


_CLIENT_PREFIXES = (
    "LERNFLOW_STACK_",
    "LERNFLOW_RUN_RECOVERY_DIR",
    "LERNFLOW_KAFKA_",
    "LERNFLOW_CASSANDRA_",
    "LERNFLOW_REDIS_",
    "LERNFLOW_POSTGRES_",
)
_CLIENT_FIELDS = frozenset({"BROKERS", "HOSTS", "HOST", "PORT", "USER", "USERNAME", "PASSWORD"})
_CLIENT_FIELD_GROUPS = ("SECURITY_PROTOCOL", "SASL_", "TLS", "SSL")
_WHOLE_GROUPS = ("LERNFLOW_STACK_", "LERNFLOW_RUN_RECOVERY_DIR")


def client_env(settings: Settings) -> dict[str, str]:
    """The connection variables (endpoints, TLS, credentials) of ``settings``, secrets in clear."""
    env = settings.to_env()
    out = {}
    for name, value in env.items():
        prefix = next((p for p in _CLIENT_PREFIXES if name.startswith(p)), None)
        rest = name[len(prefix) :] if prefix else ""
        if prefix in _WHOLE_GROUPS or (
            prefix and (rest in _CLIENT_FIELDS or rest.startswith(_CLIENT_FIELD_GROUPS))
        ):
            out[name] = value
    return out


def write_env_file(settings: Settings) -> Path:
    """``<stack dir>/env.sh`` (0600): ``source`` it to run lernflow against the secure stack."""
    path = settings.stack.dir.resolve() / "env.sh"
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(client_env(settings).items())]
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# lernflow against the secure local stack (lernflow stack up --secure)\n")
        out.write("\n".join(lines) + "\n")
    return path
