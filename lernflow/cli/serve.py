"""``lernflow serve``: the certificate verification page behind every QR code."""

from __future__ import annotations

import typer

from lernflow.cli.common import get_settings, report
from lernflow.ops.serve.server import Listening, make_server


def serve(
    host: str = typer.Option(None, "--host", help="Address to listen on (LERNFLOW_SERVE_HOST)."),
    port: int = typer.Option(None, "--port", help="Port (LERNFLOW_SERVE_PORT; 0: any free one)."),
) -> None:
    """Serve the page a certificate's QR code opens, until Ctrl-C (or SIGTERM).

    GET /certs/<id>: whether the stored certificate is valid and why; learner, course, issue date, issuer, signatories; its PDF. JSON with 'Accept: application/json'.

    POST /verify: the checks of 'lernflow cert verify' on an uploaded PDF or credential (JWT).

    GET /.well-known/jwks.json: the public keys.

    The QR codes point at LERNFLOW_CERT_CERT_DOMAIN_URL/certs/<id>: make that URL reach this server (docs/serve.md).

    Exit codes: 0 stopped (Ctrl-C, SIGTERM); 1 it could not start (the address is in use …); 2 invalid settings.
    """
    settings = get_settings()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        settings = settings.with_overrides(serve=settings.serve.model_copy(update=overrides))
    domain = settings.certificates.cert_domain_url

    def ready(at: Listening) -> None:
        report(f"serving certificate pages on {at.url} (the QR codes point at {domain}/certs/<id>)")

    server = make_server(settings, ready)
    try:
        server.run()
    except SystemExit:  # uvicorn's own exit when it cannot start; it has logged why
        raise typer.Exit(1) from None
    if not server.started:
        raise typer.Exit(1)
