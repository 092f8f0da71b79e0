"""Running the app: uvicorn, bound to ``LERNFLOW_SERVE_HOST``/``PORT``, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn

from lernflow.config import Settings
from lernflow.ops.serve.app import create_app

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listening:
    """Where the server listens (the port the system chose when 0 was asked for)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class CertificateServer(uvicorn.Server):
    """uvicorn's server, telling ``on_ready`` where it listens once its socket is bound."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[Listening], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self.listening: Listening | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Stop gracefully (a second Ctrl-C: at once), and do not raise the signal again once
        stopped, as uvicorn would: the command ends with exit 0, not a KeyboardInterrupt."""
        super().handle_exit(sig, frame)
        self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                address = sock.getsockname()
                self.listening = Listening(str(address[0]), int(address[1]))
                self._on_ready(self.listening)
                return


def make_server(
    settings: Settings, on_ready: Callable[[Listening], None] = lambda _: None
) -> CertificateServer:
    """A server for :func:`lernflow.ops.serve.app.create_app` on the settings' host and port.

    No ``Server`` header, short keep-alive, a bounded number of open connections; logging is
    the process's own (``lernflow -v`` shows uvicorn's access lines).
    """
    config = uvicorn.Config(
        create_app(settings),
        host=settings.serve.host,
        port=settings.serve.port,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # nothing is built from the client's address or scheme
        timeout_keep_alive=5,
        limit_concurrency=100,
    )
    return CertificateServer(config, on_ready)
