"""The answers of ``lernflow serve``: a verification as an HTML page a person reads, or as JSON.

Plain strings with every value escaped (:func:`html.escape`); no script, no inline style (the
Content-Security-Policy allows only the stylesheet at :data:`STYLESHEET_PATH`). The learner,
course, issuer and signatories are shown only from claims whose signature verified.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from typing import Any

from lernflow.certificates import binding

STYLESHEET_PATH = "/assets/serve.css"
VERIFY_PATH = "/verify"
TITLE = "Certificate verification"
VERDICT_LABELS = {
    binding.Verdict.VALID: "VALID",
    binding.Verdict.INVALID: "NOT VALID",
    binding.Verdict.UNCHECKED: "UNCHECKED",
    binding.Verdict.REVOKED: "REVOKED",
}
VERDICT_MEANING = {
    binding.Verdict.VALID: "This certificate was issued as shown: the signature and the pages hold.",
    binding.Verdict.INVALID: "Do not rely on this certificate.",
    binding.Verdict.UNCHECKED: (
        "The credential's signature holds, but the certificate's pages could not be checked."
    ),
    binding.Verdict.REVOKED: "The issuer has revoked this certificate: do not rely on it.",
}
KEY_NOT_CHECKED = (
    "whether the signing key is still trusted, beyond being one of the keys this site publishes"
)
NOT_FOUND = "No certificate has this address."
NOT_FOUND_HELP = (
    "Check the address (a certificate's QR code opens it), or upload the certificate's PDF below."
)

STYLESHEET = """\
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b;line-height:1.5}
h1{font-size:1.4rem}
.verdict{padding:1rem 1.25rem;border-radius:.5rem;border:2px solid;margin:1rem 0}
.verdict strong{font-size:1.6rem;display:block}
.verdict-valid{background:#e8f5e9;border-color:#2e7d32}
.verdict-invalid,.verdict-revoked,.verdict-not-found{background:#ffebee;border-color:#c62828}
.verdict-unchecked{background:#fff8e1;border-color:#f9a825}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #ddd;overflow-wrap:anywhere}
th{width:11rem;color:#555;font-weight:600}
.checks td:first-child{white-space:nowrap}
.ok{color:#2e7d32}.failed{color:#c62828}.not-checked{color:#8d6e00}
.note{color:#555;font-size:.9rem}
form{margin-top:1.5rem;padding:1rem;border:1px solid #ccc;border-radius:.5rem}
textarea{width:100%;font-family:monospace}
"""


@dataclass(frozen=True)
class SignatoryLine:
    """A signatory as shown: name and designation."""

    name: str
    designation: str


@dataclass(frozen=True)
class Summary:
    """What a person reads off a certificate, from its verified credential."""

    learner: str
    course: str
    certificate: str
    issued: str
    expires: str | None
    issuer: str
    issuer_url: str
    signatories: tuple[SignatoryLine, ...]
    credential_id: str


@dataclass(frozen=True)
class Outcome:
    """A verification and where it came from: a stored id (with its PDF link) or an upload."""

    verification: binding.Verification
    cert_id: str | None = None
    pdf_url: str | None = None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _day(value: Any) -> str:
    """``2024-09-30T00:00:00Z`` → ``2024-09-30`` (a date is what a certificate shows)."""
    return _text(value)[:10]


def summary(claims: dict[str, Any] | None) -> Summary | None:
    """The :class:`Summary` of verified ``claims`` (None without them or without a ``vc``)."""
    vc = claims.get("vc") if claims else None
    if not isinstance(vc, dict):
        return None
    subject = _object(vc.get("credentialSubject"))
    badge = _object(subject.get("badge"))
    issuer = _object(vc.get("issuer"))
    signatories = vc.get("signatory")
    signatories = signatories if isinstance(signatories, list) else []
    return Summary(
        learner=_text(subject.get("name")),
        course=_text(badge.get("courseName")) or _text(badge.get("name")),
        certificate=_text(badge.get("certificateName")),
        issued=_day(vc.get("issuanceDate") or vc.get("validFrom")),
        expires=_day(vc.get("expirationDate") or vc.get("validUntil")) or None,
        issuer=_text(issuer.get("name")) or _text(vc.get("issuer")),
        issuer_url=_text(issuer.get("url")),
        signatories=tuple(
            SignatoryLine(_text(s.get("name")), _text(s.get("designation")))
            for s in signatories
            if isinstance(s, dict)
        ),
        credential_id=_text(vc.get("id")),
    )


def label(verdict: binding.Verdict) -> str:
    """The verdict as the page shows it (``NOT VALID`` …; a verdict added later: its value)."""
    return VERDICT_LABELS.get(verdict, str(verdict.value).upper())


def not_checked(result: binding.Verification) -> str:
    """What the verification did not check: revocation too unless it has a revocation check
    (a credential naming a status list: :mod:`lernflow.ops.serve.documents`)."""
    if any(check.name == "revocation" for check in result.checks):
        return KEY_NOT_CHECKED
    return binding.NOT_CHECKED_OFFLINE


# -- JSON -------------------------------------------------------------------------------------


def as_json(outcome: Outcome) -> dict[str, Any]:
    """The verification as JSON: what the page shows, plus the credential itself."""
    result = outcome.verification
    found = summary(result.claims)
    return {
        "id": outcome.cert_id,
        "verdict": str(result.verdict.value),
        "valid": result.verdict is binding.Verdict.VALID,
        "reason": result.reason,
        "checks": [asdict(check) for check in result.checks],
        "certificate": asdict(found) if found else None,
        "credential": (result.claims or {}).get("vc"),
        "pdf": outcome.pdf_url,
        "not_checked": not_checked(result),
    }


# -- HTML -------------------------------------------------------------------------------------


def e(value: object) -> str:
    """``value`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def document(title: str, body: str) -> str:
    """A whole page around ``body`` (already HTML)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f'<title>{e(title)}</title><link rel="stylesheet" href="{STYLESHEET_PATH}"></head>'
        f"<body><main>{body}</main></body></html>\n"
    )


def _safe_url(url: str) -> str | None:
    return url if url.startswith(("https://", "http://")) else None


def _details(found: Summary) -> str:
    issuer = e(found.issuer)
    url = _safe_url(found.issuer_url)
    if url:
        issuer += f' (<a href="{e(url)}" rel="noopener noreferrer">{e(url)}</a>)'
    signatories = "<br>".join(
        e(s.name) + (f", {e(s.designation)}" if s.designation else "") for s in found.signatories
    )
    rows = [
        ("Learner", "learner", e(found.learner)),
        ("Course", "course", e(found.course)),
        ("Certificate", "certificate", e(found.certificate)),
        ("Issued on", "issued", e(found.issued)),
        ("Expires on", "expires", e(found.expires) if found.expires else ""),
        ("Issuer", "issuer", issuer),
        ("Signatories", "signatories", signatories or "none"),
        ("Credential", "credential-id", e(found.credential_id)),
    ]
    cells = "".join(
        f'<tr><th>{name}</th><td id="{key}">{value}</td></tr>' for name, key, value in rows if value
    )
    return f'<table class="details">{cells}</table>'


def _checks(result: binding.Verification) -> str:
    rows = "".join(
        f'<tr><td>{e(c.name)}</td><td class="{e(c.outcome.replace(" ", "-"))}">{e(c.outcome)}'
        f"</td><td>{e(c.detail)}</td></tr>"
        for c in result.checks
    )
    return f'<h2>Checks</h2><table class="checks" id="checks">{rows}</table>'


def verification_html(outcome: Outcome, max_upload_bytes: int) -> str:
    """The page of one verification: the verdict and why, what the certificate says, the
    checks, the PDF link (stored certificates), and the upload form."""
    result = outcome.verification
    verdict = str(result.verdict.value)
    meaning = VERDICT_MEANING.get(result.verdict, "")
    banner = (
        f'<div class="verdict verdict-{e(verdict)}" id="verdict" data-verdict="{e(verdict)}">'
        f"<strong>{e(label(result.verdict))}</strong>"
        f'<span id="reason">{e(result.reason)}</span>'
        f"{f'<p>{e(meaning)}</p>' if meaning else ''}</div>"
    )
    found = summary(result.claims)
    parts = [f"<h1>{e(TITLE)}</h1>", banner]
    if found is not None:
        parts.append(_details(found))
    if outcome.pdf_url:
        parts.append(
            f'<p><a id="pdf" href="{e(outcome.pdf_url)}" download>Download the certificate (PDF)</a></p>'
        )
    parts += [
        _checks(result),
        f'<p class="note">Not checked here: {e(not_checked(result))}.</p>',
    ]
    parts.append(upload_form(max_upload_bytes))
    return document(f"{label(result.verdict)} — {TITLE}", "".join(parts))


def upload_form(max_upload_bytes: int) -> str:
    """The form that verifies a PDF or a credential (multipart POST to :data:`VERIFY_PATH`)."""
    mib = max_upload_bytes / (1024 * 1024)
    return (
        f'<form method="post" action="{VERIFY_PATH}" enctype="multipart/form-data" id="upload">'
        "<h2>Verify a certificate file</h2>"
        f"<p><label>Certificate PDF or credential file (at most {mib:g} MiB): "
        '<input type="file" name="file" id="file" accept=".pdf,.jwt,application/pdf"></label></p>'
        "<p><label>or paste a credential (JWT):<br>"
        '<textarea name="token" id="token" rows="3"></textarea></label></p>'
        '<p><button type="submit" id="submit">Verify</button></p></form>'
    )


def index_html(max_upload_bytes: int) -> str:
    """The start page: what this is, and the upload form."""
    body = (
        f"<h1>{e(TITLE)}</h1><p>Scan the QR code on a certificate to see whether it is genuine, "
        "or upload the certificate's PDF here.</p>" + upload_form(max_upload_bytes)
    )
    return document(TITLE, body)


def message_html(title: str, message: str, detail: str, max_upload_bytes: int) -> str:
    """A page for an answer that is not a verification (not found, too large, bad request)."""
    body = (
        f"<h1>{e(TITLE)}</h1>"
        f'<div class="verdict verdict-not-found" id="verdict" data-verdict="{e(title)}">'
        f'<strong>{e(message)}</strong><span id="reason">{e(detail)}</span></div>'
        + upload_form(max_upload_bytes)
    )
    return document(f"{message} — {TITLE}", body)
