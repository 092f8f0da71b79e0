"""The stack's Redis server: Debian's ``redis-server`` on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

from lernflow.config import Settings
from lernflow.devstack.base import Reporter, Server, StackError
from lernflow.devstack.secure import stack_pki
from lernflow.kernel.clients import redis_client


class RedisServer(Server):
    """Redis from Debian's ``redis-server`` binary, persisted to its data dir."""

    name = "redis"

    def __init__(self, settings: Settings, report: Reporter) -> None:
        super().__init__(settings, report)
        self.port = settings.redis.port

    def command(self) -> list[str]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            msg = "redis-server is missing. Fix: 'apt-get install redis-server' (make setup)."
            raise StackError(msg)
        return [
            binary, "--bind", "127.0.0.1", *self._ports(),
            "--dir", str(self.data_dir), "--daemonize", "no", "--protected-mode", "yes",
            "--save", "60 1", "--appendonly", "yes", "--databases", "64",
            "--logfile", "",
        ]  # fmt: skip

    def _ports(self) -> list[str]:
        """The plain port, or (``--secure``) TLS only with the settings' ACL user and the
        ``default`` user off; a client certificate is checked when one is presented."""
        if not self.settings.stack.secure:
            return ["--port", str(self.port)]
        pki = stack_pki(self.settings)
        redis = self.settings.redis
        password = redis.password.get_secret_value() if redis.password else ""
        self.home.mkdir(parents=True, exist_ok=True)
        acl = self.home / "users.acl"
        acl.write_text(
            f"user default off\nuser {redis.username or 'lernflow'} on >{password} ~* &* +@all\n"
        )
        acl.chmod(0o600)
        return [
            "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
            "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "optional",
            "--tls-protocols", "TLSv1.2 TLSv1.3", "--aclfile", str(acl),
        ]  # fmt: skip

    def ready(self) -> bool:
        client = redis_client(
            self.settings.redis.model_copy(update={"host": "127.0.0.1", "port": self.port}), 0
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
