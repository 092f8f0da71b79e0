"""The documents credentials point to, served by ``lernflow serve``
(docs/flows/certificate-generator.md#6-credential-and-signature):

==========================================  ====================================================
``GET /certs/v1/context.json``              our JSON-LD context for VC 1.1 credentials
``GET /certs/v2/context.json``              the same for VC 2.0 credentials
``GET /certs/issuer``                       the issuer profile (name, url, key ids, JWKS URL)
``GET /certs/status/revocation``            the revocation status list (a signed JWT), built
                                            from the registry, cached :data:`LIST_TTL_S` seconds
==========================================  ====================================================

:func:`with_revocation` adds the revocation check to a verification page (REVOKED with the
registry's reason when the certificate's bit is set in the cached list).

The group goes before the certificate routes (``/certs/{cert_id}`` takes any one segment).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from lernflow.certificates import documents
from lernflow.certificates.binding import Verification
from lernflow.certificates.credential import VcVersion
from lernflow.config import Settings
from lernflow.ops import cert_status
from lernflow.ops.cert_status import served_revocation, signed_status_list, verify_base_url

logger = logging.getLogger(__name__)

LIST_TTL_S = 30.0
"""How long a built status list is served before it is built again from the registry."""

_PUBLIC = {"access-control-allow-origin": "*"}
CERTS_PREFIX = "/certs"  # as the app's: {cert_domain_url}/certs


class Context(Protocol):
    """What these routes read of the app's ``ServeContext``."""

    @property
    def settings(self) -> Settings: ...

    def public_keys(self) -> dict[str, object]: ...

    @property
    def status_list(self) -> StatusListCache: ...


@dataclass
class StatusListCache:
    """The signed status list, built from the registry at most every :data:`LIST_TTL_S`
    seconds; shared by the list's route and the verification pages."""

    token_text: str = ""
    built: float = field(default=-1e18)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, settings: Settings) -> str:
        """The list JWT (built again when stale; blocking: call it in a thread).

        Raises:
            Exception: the registry or the signing key is out of reach (whatever they raise).
        """
        with self.lock:
            if time.monotonic() - self.built > LIST_TTL_S:
                self.token_text = signed_status_list(settings)
                self.built = time.monotonic()
            return self.token_text


def with_revocation(ctx: Context, result: Verification) -> Verification:
    """A verification page's result with its revocation check (blocking): the cached status
    list, and the registry's reason when the bit is set (``lernflow.ops.cert_status``)."""
    if result.claims is None:
        return result
    keys = ctx.public_keys()
    check = served_revocation(
        ctx.settings, result.claims, keys, lambda: ctx.status_list.token(ctx.settings)
    )
    return cert_status.with_revocation(result, check)


def document_routes(ctx: Context) -> list[BaseRoute]:
    """The contexts, the issuer profile and the status list."""

    def context(version: VcVersion) -> Route:
        major = "v2" if version == "2.0" else "v1"

        async def answer(request: Request) -> Response:
            headers = {**_PUBLIC, "cache-control": "public, max-age=86400"}
            return JSONResponse(
                documents.context_document(version), headers=headers,
                media_type="application/ld+json",
            )  # fmt: skip

        return Route(f"{CERTS_PREFIX}/{major}/context.json", answer, methods=["GET"])

    async def issuer(request: Request) -> Response:
        keys = await run_in_threadpool(ctx.public_keys)
        c = ctx.settings.certificates
        profile = documents.issuer_profile(
            verify_base_url(ctx.settings), c.issuer_name, c.issuer_url, list(keys)
        )
        headers = {**_PUBLIC, "cache-control": "public, max-age=300"}
        return JSONResponse(profile, headers=headers, media_type="application/ld+json")

    async def status(request: Request) -> Response:
        try:
            token = await run_in_threadpool(ctx.status_list.token, ctx.settings)
        except Exception as exc:  # the registry or the key is out of reach
            logger.warning("status list not built: %s: %s", type(exc).__name__, exc)
            return Response("status list unavailable\n", 503, media_type="text/plain")
        headers = {**_PUBLIC, "cache-control": f"public, max-age={int(LIST_TTL_S)}"}
        return Response(token, headers=headers, media_type="application/vc+jwt")

    return [
        context("1.1"),
        context("2.0"),
        Route(f"{CERTS_PREFIX}/issuer", issuer, methods=["GET"]),
        Route(f"{CERTS_PREFIX}/status/revocation", status, methods=["GET"]),
    ]
