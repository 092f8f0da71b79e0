"""``lernflow cert``: signing keys, verification, revocation and the status list, previews,
and why a certificate is missing."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from rich.table import Table

from lernflow.certificates import binding, render, signing
from lernflow.certificates.fetch import TemplateCache, bundled_template_path
from lernflow.certificates.model import CertificateData, Signatory
from lernflow.certificates.qr import qr_data_uri
from lernflow.certificates.storage import InvalidKeyError, LocalStorage, validate_key
from lernflow.certificates.template import fill_svg
from lernflow.certificates.values import placeholder_values
from lernflow.cli.common import console, get_settings, out, report
from lernflow.config import Settings
from lernflow.ops.cert_status import (
    revocation_check,
    revoke,
    signed_status_list,
    with_revocation,
)
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


EXIT_VALID, EXIT_INVALID, EXIT_USAGE, EXIT_UNCHECKED, EXIT_REVOKED = 0, 1, 2, 3, 4
_EXIT = {
    binding.Verdict.VALID: EXIT_VALID,
    binding.Verdict.INVALID: EXIT_INVALID,
    binding.Verdict.UNCHECKED: EXIT_UNCHECKED,
    binding.Verdict.REVOKED: EXIT_REVOKED,
}
_OUTCOME = {
    "ok": "[green]ok[/green]",
    "failed": "[red]FAILED[/red]",
    "not checked": "[yellow]not checked[/yellow]",
}


def _verify_target(settings: Settings, target: str) -> binding.Verification:
    """Verify a PDF file, a JWT file, or a stored certificate by id; exit 2 when none."""
    keys = signing.load_public_keys(settings.certificates.keys_dir)
    root = settings.certificates.storage_dir
    path = Path(target)
    if path.is_file():
        data = path.read_bytes()
        if data.startswith(b"%PDF"):
            return binding.verify_pdf(data, keys, LocalStorage(root) if root.is_dir() else None)
        return binding.verify_token(data.strip(), keys)
    try:
        validate_key(target)  # a certificate id: one safe path segment
        if "/" in target:
            raise InvalidKeyError(target)
    except InvalidKeyError:
        found = []
    else:
        found = sorted(root.glob(f"*/{target}.pdf")) or sorted(root.glob(f"*/{target}.jwt"))
    if not found:
        console.print(f"[red]{target}: no such file, nor a certificate stored in {root}[/red]")
        raise typer.Exit(EXIT_USAGE)
    if found[0].suffix == ".pdf":  # our own copy: its digest, not itself, is the reference
        return binding.verify_pdf(found[0].read_bytes(), keys)
    return binding.verify_token(found[0].read_bytes().strip(), keys)


@cert_app.command("verify")
def cert_verify(
    target: str = typer.Argument(
        ..., help="A certificate PDF, a credential (JWT) file, or a stored certificate id."
    ),
    status_list_file: str = typer.Option(
        None, "--status-list", help="A status list JWT (offline revocation check)."
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Do not ask the registry whether it was revoked."
    ),
) -> None:
    """Check a certificate: the credential's signature, that the PDF's pages are the ones
    issued with it (the credential carries their digest), and whether it was revoked (the
    status list given with --status-list, else the registry, sunbird.cert_registry).

    Exit codes:
    0 valid: signature and pages hold, not revoked (or revocation not checked: see the line).
    1 NOT VALID: no credential, a bad signature (tampered, unknown key, alg none, expired …) or pages that differ from the issued ones.
    2 usage error: no such file or stored certificate.
    3 unchecked: the signature is valid but the pages were not checked (a credential on its own, or one issued before page digests with no stored copy to compare).
    4 REVOKED: genuine, but revoked (the reason is shown when the registry is at hand).
    """

    settings = get_settings()
    result = _verify_target(settings, target)
    if result.verdict is not binding.Verdict.INVALID and result.claims is not None:
        keys = signing.load_public_keys(settings.certificates.keys_dir)
        token = Path(status_list_file).read_text().strip() if status_list_file else None
        status = revocation_check(settings, result.claims, keys, token, offline)
        result = with_revocation(result, status)
    for check in result.checks:
        console.print(f"  {check.name:<10} {_OUTCOME[check.outcome]}  {check.detail}")
    if result.verdict is binding.Verdict.INVALID:
        console.print(f"[red]NOT VALID: {result.reason}[/red]")
        raise typer.Exit(EXIT_INVALID)
    out.print_json(json.dumps(result.claims, default=str))
    if result.verdict is binding.Verdict.REVOKED:
        console.print(f"[red]REVOKED: {result.reason.removeprefix('REVOKED')}[/red]")
        raise typer.Exit(EXIT_REVOKED)
    if result.verdict is binding.Verdict.UNCHECKED:
        console.print(f"[yellow]UNCHECKED: {result.reason}[/yellow]")
    else:
        console.print(f"[green]VALID: {result.reason}[/green]")
    raise typer.Exit(_EXIT[result.verdict])


@cert_app.command("revoke")
def cert_revoke(
    cert_id: str = typer.Argument(..., help="The certificate id (cert_registry.id)."),
    reason: str = typer.Option(..., "--reason", help="Why (shown by cert verify)."),
    by: str = typer.Option(None, "--by", help="Who revokes (default: the login name)."),
) -> None:
    """Revoke a certificate: sunbird.cert_registry isrevoked=true with the reason, who and
    when, and its bit in the revocation status list. Revoking again changes nothing.

    Exit codes: 0 revoked, or already revoked (nothing changed); 1 no such certificate.
    """

    settings = get_settings()
    who = by or getpass.getuser() or "operator"
    try:
        outcome = revoke(settings, cert_id, reason, who)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_USAGE) from None
    bit = f" (status list index {outcome.index})" if outcome.index is not None else ""
    when = outcome.at.isoformat() if outcome.at is not None else "?"
    if outcome.status == "unknown":
        console.print(
            f"[red]no certificate {outcome.cert_id} in cert_registry; nothing revoked[/red]"
        )
        raise typer.Exit(1)
    if outcome.status == "already":
        report(
            f"{outcome.cert_id} was already revoked on {when} by {outcome.by or '?'}: "
            f"{outcome.reason or '(no reason)'}; nothing changed{bit}"
        )
        return
    report(f"{outcome.cert_id} revoked{bit}: {outcome.reason}")


@cert_app.command("status-list")
def cert_status_list(
    out_path: str = typer.Option(None, "--out", help="Write the JWT to this file."),
) -> None:
    """Print (or write) the revocation status list: a W3C Bitstring Status List credential
    built from the registry and signed with the certificate key (a JWT; publish it at
    {cert_domain_url}/certs/status/revocation)."""

    token = signed_status_list(get_settings())
    if out_path is None:
        out.print(token, soft_wrap=True)
        return
    Path(out_path).write_text(token + "\n")
    report(f"status list written to {out_path}")


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
