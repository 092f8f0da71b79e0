"""The ``lernflow serve`` ASGI app: its route table and how it is put together.

Routes (docs/serve.md):

====================================  ==========================================================
``GET /certs/{cert_id}``              the QR code's URL: the verification page (JSON with
                                      ``Accept: application/json``); unknown or malformed: 404
``GET /certs/{cert_id}/pdf``          the stored PDF, as a download
``POST /verify``                      the upload form: a PDF or a credential JWT (multipart)
``GET /.well-known/jwks.json``        the public keys (as ``lernflow cert keys export``)
``GET /certs/v1/context.json`` …       what credentials point to: JSON-LD contexts, issuer
                                      profile, revocation status list (:mod:`.documents`)
``GET /``                             the upload form
``GET /assets/serve.css``             the one stylesheet
====================================  ==========================================================

To add routes, write a :data:`RouteGroup` (``ServeContext -> list of routes``) and put it in
:data:`ROUTE_GROUPS` *before* :func:`certificate_routes`: ``/certs/{cert_id}`` takes any one
path segment after ``/certs/``. Answer with :func:`respond` / :func:`message` so pages and JSON
look alike; every answer gets the security headers and the body bound of :func:`create_app`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from lernflow.certificates import signing
from lernflow.config import Settings
from lernflow.ops.serve import lookup, pages
from lernflow.ops.serve.documents import StatusListCache, document_routes, with_revocation
from lernflow.ops.serve.security import BodyLimit, SecurityHeaders

logger = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
CERTS_PREFIX = "/certs"  # the generator's QR codes: {cert_domain_url}/certs/<id>


def certificate_url(settings: Settings, cert_id: str) -> str:
    """The page of ``cert_id`` as its QR code has it: ``{cert_domain_url}/certs/<id>``."""
    return f"{settings.certificates.cert_domain_url}{CERTS_PREFIX}/{cert_id}"


@dataclass(frozen=True)
class ServeContext:
    """What the routes read: the settings (keys and storage folders, limits)."""

    settings: Settings
    status_list: StatusListCache = field(default_factory=StatusListCache, compare=False)

    @property
    def storage_root(self) -> Path:
        return self.settings.certificates.storage_dir

    @property
    def max_upload_bytes(self) -> int:
        return self.settings.serve.max_upload_bytes

    def public_keys(self) -> dict[str, object]:
        """The verification keys, read again for each request (a rotated key counts at once)."""
        keys_dir = self.settings.certificates.keys_dir
        return signing.load_public_keys(keys_dir) if keys_dir.is_dir() else {}


RouteGroup = Callable[[ServeContext], list[BaseRoute]]


# -- answering --------------------------------------------------------------------------------


def wants_json(request: Request) -> bool:
    """Whether the client asked for JSON: ``application/json`` in ``Accept``, ranked above
    ``text/html`` (a browser's ``Accept`` lists HTML first)."""
    ranked: dict[str, float] = {}
    for part in request.headers.get("accept", "").split(","):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked[media.strip().lower()] = max(quality, ranked.get(media.strip().lower(), 0.0))
    json_q = ranked.get("application/json", 0.0)
    return json_q > 0 and json_q >= max(ranked.get("text/html", 0.0), ranked.get("*/*", 0.0))


def respond(request: Request, outcome: pages.Outcome, ctx: ServeContext) -> Response:
    """A verification as a page or JSON (200 whatever the verdict: the answer is the verdict)."""
    if wants_json(request):
        return JSONResponse(pages.as_json(outcome))
    return HTMLResponse(pages.verification_html(outcome, ctx.max_upload_bytes))


@dataclass(frozen=True)
class Message:
    """An answer that is not a verification: its status, short title and explanation."""

    status: int
    error: str
    title: str
    detail: str


NOT_FOUND = Message(404, "not found", pages.NOT_FOUND, pages.NOT_FOUND_HELP)


def message(request: Request, msg: Message, ctx: ServeContext) -> Response:
    """``msg`` as a page or JSON, with its status."""
    if wants_json(request):
        return JSONResponse({"error": msg.error, "detail": msg.detail}, status_code=msg.status)
    page = pages.message_html(msg.error, msg.title, msg.detail, ctx.max_upload_bytes)
    return HTMLResponse(page, status_code=msg.status)


# -- routes -----------------------------------------------------------------------------------


def base_routes(ctx: ServeContext) -> list[BaseRoute]:
    """The start page, the stylesheet, the public keys and the upload form's target."""

    async def index(request: Request) -> Response:
        return HTMLResponse(pages.index_html(ctx.max_upload_bytes))

    async def stylesheet(request: Request) -> Response:
        headers = {"cache-control": "public, max-age=3600"}
        return Response(pages.STYLESHEET, media_type="text/css", headers=headers)

    async def jwks(request: Request) -> Response:
        keys = await run_in_threadpool(ctx.public_keys)
        headers = {"cache-control": "public, max-age=300", "access-control-allow-origin": "*"}
        return JSONResponse(
            signing.jwks(keys), headers=headers, media_type="application/jwk-set+json"
        )

    async def verify(request: Request) -> Response:
        data = await _uploaded(request, ctx.max_upload_bytes)
        if not data:
            detail = "Choose a certificate PDF or a credential file, or paste a credential."
            return message(
                request, Message(400, "nothing to verify", "Nothing to verify.", detail), ctx
            )
        keys = await run_in_threadpool(ctx.public_keys)
        result = await run_in_threadpool(lookup.verify_upload, data, keys, ctx.storage_root)
        result = await run_in_threadpool(with_revocation, ctx, result)
        return respond(request, pages.Outcome(result), ctx)

    return [
        Route("/", index, methods=["GET"]),
        Route(pages.STYLESHEET_PATH, stylesheet, methods=["GET"]),
        Route(JWKS_PATH, jwks, methods=["GET"]),
        Route(pages.VERIFY_PATH, verify, methods=["POST"]),
    ]


async def _uploaded(request: Request, max_bytes: int) -> bytes:
    """The uploaded file's bytes, else the pasted credential's; empty when neither.

    Raises:
        HTTPException: 400, the form cannot be parsed (Starlette's own).
    """
    form = await request.form(max_files=1, max_fields=4, max_part_size=max_bytes)
    try:
        upload = form.get("file")
        if isinstance(upload, UploadFile):
            data = await upload.read()
            if data:
                return data
        token = form.get("token")
        return token.strip().encode("utf-8") if isinstance(token, str) else b""
    finally:
        await form.close()


def certificate_routes(ctx: ServeContext) -> list[BaseRoute]:
    """The QR code's page of a stored certificate and its PDF."""

    async def certificate(request: Request) -> Response:
        cert_id = request.path_params["cert_id"]
        stored = await run_in_threadpool(lookup.find_stored, ctx.storage_root, cert_id)
        if stored is None:
            return message(request, NOT_FOUND, ctx)
        keys = await run_in_threadpool(ctx.public_keys)
        result = await run_in_threadpool(lookup.verify_stored, stored, keys)
        result = await run_in_threadpool(with_revocation, ctx, result)
        pdf_url = f"{CERTS_PREFIX}/{cert_id}/pdf" if stored.pdf is not None else None
        return respond(request, pages.Outcome(result, cert_id, pdf_url), ctx)

    async def pdf(request: Request) -> Response:
        cert_id = request.path_params["cert_id"]
        stored = await run_in_threadpool(lookup.find_stored, ctx.storage_root, cert_id)
        if stored is None or stored.pdf is None:
            return message(request, NOT_FOUND, ctx)
        data = await run_in_threadpool(stored.pdf.read_bytes)
        disposition = f'attachment; filename="certificate-{cert_id}.pdf"'
        return Response(
            data, media_type="application/pdf", headers={"content-disposition": disposition}
        )

    return [
        Route(f"{CERTS_PREFIX}/{{cert_id}}", certificate, methods=["GET"]),
        Route(f"{CERTS_PREFIX}/{{cert_id}}/pdf", pdf, methods=["GET"]),
    ]


ROUTE_GROUPS: tuple[RouteGroup, ...] = (base_routes, document_routes, certificate_routes)
"""Every route group, in matching order; add a group before :func:`certificate_routes`."""


# -- the app ----------------------------------------------------------------------------------


def _error_handlers(ctx: ServeContext) -> dict[Any, Any]:
    """Starlette's own 4xx answers (no route, wrong method, a form it cannot parse) in our form."""

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return message(request, NOT_FOUND, ctx)
        title = "Method not allowed." if status == 405 else "This request cannot be answered."
        detail = "Use the upload form below." if status == 405 else str(getattr(exc, "detail", ""))
        return message(request, Message(status, title.lower().rstrip("."), title, detail), ctx)

    return {HTTPException: http_error}


def too_large_app(ctx: ServeContext) -> ASGIApp:
    """The 413 answer :class:`~lernflow.ops.serve.security.BodyLimit` gives."""
    mib = ctx.max_upload_bytes / (1024 * 1024)
    msg = Message(
        413, "request body too large", "This file is too large.",
        f"A certificate upload is at most {mib:g} MiB (LERNFLOW_SERVE_MAX_UPLOAD_BYTES).",
    )  # fmt: skip

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        response = message(Request(scope), msg, ctx)
        response.headers["connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)

    return answer


def create_app(settings: Settings, extra_routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    """The whole app: ``extra_routes`` (first), then :data:`ROUTE_GROUPS`; every answer with
    the security headers; request bodies over ``LERNFLOW_SERVE_MAX_UPLOAD_BYTES`` refused (413)."""
    ctx = ServeContext(settings)
    routes = [*extra_routes, *(route for group in ROUTE_GROUPS for route in group(ctx))]
    starlette = Starlette(routes=routes, exception_handlers=_error_handlers(ctx))
    return SecurityHeaders(BodyLimit(starlette, ctx.max_upload_bytes, too_large_app(ctx)))
