"""What every answer of ``lernflow serve`` gets: security headers, and bounded request bodies.

Both are plain ASGI wrappers placed *outside* the Starlette app, so they also cover the
answers Starlette's own error middleware makes (a 500 page) and requests no route matches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "style-src 'self'",  # the one stylesheet, /assets/serve.css
        "img-src 'self' data:",
        "form-action 'self'",  # the upload form posts to /verify
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)
SECURITY_HEADERS_RAW = tuple(
    (k.encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS
)
_NAMES = frozenset(k.encode("latin-1") for k, _ in SECURITY_HEADERS)
DEFAULT_CACHE_CONTROL = "no-store"  # a verification is answered now; a route may say otherwise


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` (replacing any of the same name) to every HTTP answer,
    and ``Cache-Control: no-store`` unless the route set one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                if not any(k.lower() == b"cache-control" for k, _ in kept):
                    kept.append((b"cache-control", DEFAULT_CACHE_CONTROL.encode()))
                message = {**message, "headers": [*kept, *SECURITY_HEADERS_RAW]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class _Body:
    """A request body read in full (at most the limit), replayed to the app."""

    data: bytes


class BodyTooLarge(LernflowError):
    """A request body over the limit (caught here: the client gets a 413)."""


class BodyLimit:
    """Answers 413 to a request whose body is over ``max_bytes``, before the app sees it.

    A declared ``Content-Length`` over the limit is refused without reading; otherwise the body
    is read (at most ``max_bytes`` + 1 bytes kept) and handed to the app from memory, so a
    chunked upload cannot go over either. ``too_large`` makes the 413 answer.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, too_large: ASGIApp) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if _declared_length(scope) > self.max_bytes:
                raise BodyTooLarge
            body = await self._read(receive)
        except BodyTooLarge:
            method, path = scope["method"], scope["path"]
            logger.info("413: a %s %s body over %d bytes", method, path, self.max_bytes)
            await self.too_large(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> _Body:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return _Body(b"".join(chunks))


def _declared_length(scope: Scope) -> int:
    """The request's ``Content-Length`` (0 when absent; the server refuses a malformed one)."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def _replay(body: _Body, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then waits on the real one (for a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body.data, "more_body": False}
        return await receive()

    return replay
