"""The stack's Redis server: Debian's ``redis-server`` on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

from lernflow.config import Settings
from lernflow.devstack.base import Reporter, Server, StackError


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
            binary, "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.data_dir), "--daemonize", "no", "--protected-mode", "yes",
            "--save", "60 1", "--appendonly", "yes", "--databases", "64",
            "--logfile", "",
        ]  # fmt: skip

    def ready(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
