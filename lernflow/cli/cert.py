"""``lernflow cert``: signing keys, verification, previews, and why a certificate is missing."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from certificates import render, signing
from certificates.fetch import TemplateCache, bundled_template_path
from certificates.model import CertificateData, Signatory
from certificates.qr import qr_data_uri
from certificates.template import fill_svg
from certificates.values import placeholder_values
from config import Settings
from lernflow.cli.common import console, get_settings, out, report
from lernflow.ops.cert_why import explain, title

cert_app = typer.Typer(
    help="Certificates: signing keys, verification, previews, and why one is missing.",
    no_args_is_help=True,
)
cert_keys_app = typer.Typer(help="The certificate signing keys.", no_args_is_help=True)
cert_app.add_typer(cert_keys_app, name="keys")


@cert_keys_app.command("init")
def cert_keys_init(
    alg: str = typer.Option("ES256", "--alg", help="ES256 (P-256) or EdDSA (Ed25519)."),
    kid: str = typer.Option(None, "--kid", help="Key id (default: the key's JWK thumbprint)."),
) -> None:
    """Generate a development signing key pair in LERNFLOW_CERT_KEYS_DIR (private key 0600).

    Production keys are made the same way (or by your PKI) and mounted there; the newest key
    signs unless LERNFLOW_CERT_SIGNING_KID names one.
    """

    settings = get_settings()
    key = signing.generate_keys(settings.certificates.keys_dir, alg=alg, kid=kid)
    report(f"{key.alg} key {key.kid} written to {settings.certificates.keys_dir}")


@cert_keys_app.command("export")
def cert_keys_export() -> None:
    """Print the public keys as a JWKS (publish it where verifiers can fetch it)."""

    settings = get_settings()
    keys = signing.load_public_keys(settings.certificates.keys_dir)
    if not keys:
        console.print(
            f"[red]no public keys in {settings.certificates.keys_dir}; run 'lernflow cert keys init'[/red]"
        )
        raise typer.Exit(1)
    out.print_json(json.dumps(signing.jwks(keys)))


def _credential(settings: Settings, target: str) -> bytes:
    """The credential (JWT) of a PDF, a JWT file or a stored certificate id; exit 1 if none."""
    path = Path(target)
    if path.is_file():
        data = path.read_bytes()
        token = render.extract_attachment(data) if data.startswith(b"%PDF") else data.strip()
        if token is None:
            console.print(f"[red]{target}: no embedded credential in this PDF[/red]")
            raise typer.Exit(1)
        return token
    found = sorted(settings.certificates.storage_dir.glob(f"*/{target}.jwt"))
    if not found:
        console.print(
            f"[red]certificate {target} not found in {settings.certificates.storage_dir}[/red]"
        )
        raise typer.Exit(1)
    return found[0].read_bytes().strip()


@cert_app.command("verify")
def cert_verify(
    target: str = typer.Argument(
        ..., help="A certificate PDF, a credential (JWT) file, or a certificate id."
    ),
) -> None:
    """Check a certificate's signature against the public keys and show its claims.

    Exits 1 when the signature does not verify (any tampering, an unknown key, alg none, …) or
    the certificate cannot be found.
    """

    settings = get_settings()
    token = _credential(settings, target)
    keys = signing.load_public_keys(settings.certificates.keys_dir)
    try:
        claims = signing.verify_credential(token.decode("utf-8", "replace"), keys)
    except signing.VerificationError as exc:
        console.print(f"[red]NOT VALID: {exc.reason}[/red]")
        raise typer.Exit(1) from None
    out.print_json(json.dumps(claims, default=str))
    report("signature valid")


@cert_app.command("why")
def cert_why(
    user: str = typer.Option(..., "--user", help="The learner's user id."),
    course: str = typer.Option(..., "--course", help="The course id."),
    batch: str = typer.Option(..., "--batch", help="The batch id."),
) -> None:
    """Walk every rule the pre-processor and generator apply to this enrolment and name the
    one that blocks the certificate (templates, enrolment status, scores, user criteria,
    issuer/signatories, already issued, user cache)."""

    result = explain(get_settings(), user, course, batch)
    table = Table("template", "check", "result", "detail")
    marks = {True: "[green]ok[/green]", False: "[red]BLOCKS[/red]", None: "[dim]-[/dim]"}
    for c in result.checks:
        table.add_row(c.template, title(c.step), marks[c.ok], c.detail)
    out.print(table)
    if result.eligible_templates:
        out.print(f"eligible for: {', '.join(result.eligible_templates)}")
    elif result.blocking is not None:
        out.print(f"blocked by: {title(result.blocking.step)} — {result.blocking.detail}")


def _sample_data(name: str) -> CertificateData:
    return CertificateData(
        cert_id="00000000-0000-4000-8000-000000000000", recipient_id="preview-user",
        recipient_name=name, course_id="do_preview", course_name="Python basics",
        batch_id="preview_batch", certificate_name="Course Completion Certificate",
        template_id="preview", issued_date="2026-11-25", issuer_name="Lernflow Academy",
        issuer_url="https://example.org", signatories=(
            Signatory("A. Director", "director", "Director", ""),
            Signatory("B. Registrar", "registrar", "Registrar", ""),
        ),
    )  # fmt: skip


@cert_app.command("preview")
def cert_preview(
    template: str = typer.Option(
        None, "--template", help="SVG template path or URL (default: the bundled sample)."
    ),
    out_path: str = typer.Option("certificate-preview.png", "--out", help="PNG file to write."),
    renderer: str = typer.Option(
        None, "--renderer", help="weasyprint or cairosvg (default: LERNFLOW_CERT_RENDERER)."
    ),
    name: str = typer.Option("Asha Learner", "--name", help="Recipient name to show."),
) -> None:
    """Render a template with sample values to a PNG (and the PDF beside it), for template authors."""

    settings = get_settings()
    hosts = tuple(h.strip() for h in settings.certificates.template_hosts.split(",") if h.strip())
    cache = TemplateCache(allowed_hosts=hosts)
    svg = cache.get(template or str(bundled_template_path()))
    data = _sample_data(name)
    qr = qr_data_uri(f"{data.verify_base_url}/{data.cert_id}")
    filled = fill_svg(svg, placeholder_values(data, qr))
    pdf = render.render_pdf(filled, renderer or settings.certificates.renderer, allowed_hosts=hosts)  # type: ignore[arg-type]
    Path(out_path).write_bytes(render.preview_png(pdf))
    Path(out_path).with_suffix(".pdf").write_bytes(pdf)
    report(f"preview written to {out_path} (and {Path(out_path).with_suffix('.pdf')})")
