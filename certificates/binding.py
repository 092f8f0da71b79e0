"""The credential bound to the pages it was issued with: issuing such a PDF and verifying one.

A signature alone proves only that *some* learner's credential is genuine: attached to other
pages (another learner's, or edited ones) it still verifies. So the signed JWT also carries a
digest of the pages it was issued with (docs/flows/certificate-generator.md#6-credential-and-signature):

* :func:`issue_pdf` renders the pages without the credential, computes their digest
  (:func:`certificates.pdfpages.pages_digest`), signs the credential with the claim
  ``pdf_pages: {"form": "lernflow-pages-1", "sha256": "<hex>"}`` and appends the JWT in an
  incremental update, which leaves the pages as they were: the PDF/A-3 style associated file
  ``credential.jwt`` (``application/jwt``, ``/AFRelationship /Data``) and its decoded copy
  ``credential.json``, the same whatever the renderer.
* :func:`verify_pdf` reads ``credential.jwt`` (the embedded file, else the Keywords metadata
  where CairoSVG certificates issued before page digests carry it), checks the signature, then
  recomputes the digest of the pages in front of it and compares. A credential issued before the claim existed has no digest: the pages
  are then compared with the stored copy of the certificate when one is at hand, else the
  answer is *unchecked* — neither valid nor invalid.
* :func:`verify_token` checks a credential on its own: the signature only, so *unchecked*.

Not checked here, offline: revocation (``isrevoked`` in ``sunbird.cert_registry``) and whether
the signing key is still trusted beyond being in the key directory.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lernflow.certificates import render, signing
from lernflow.certificates.credential import cert_id_of
from lernflow.certificates.storage import InvalidKeyError, Storage, object_key

logger = logging.getLogger(__name__)

PAGES_CLAIM = "pdf_pages"
"""The JWT claim holding the page digest: ``{"form": ..., "sha256": ...}``."""

ATTACHMENT_NAME = "credential.jwt"
ATTACHMENT_DESCRIPTION = "Signed W3C Verifiable Credential (JWT)"
JSON_NAME = "credential.json"
JSON_DESCRIPTION = f"The credential of {ATTACHMENT_NAME}, decoded (unsigned: verify the JWT)"
NOT_CHECKED_OFFLINE = (
    "revocation (isrevoked in sunbird.cert_registry) and whether the signing key is still "
    "trusted are not checked offline"
)


@dataclass(frozen=True)
class IssuedPdf:
    """A certificate PDF and the JWT embedded in it, bound by ``pages_digest``."""

    token: str
    pdf: bytes
    pages_digest: str


def issue_pdf(
    svg: str,
    credential: dict[str, Any],
    key: signing.SigningKey,
    renderer: render.Renderer = "cairosvg",
    allowed_hosts: tuple[str, ...] = (),
) -> IssuedPdf:
    """Render ``svg``, sign ``credential`` with the digest of those pages, attach the JWT.

    Raises:
        TemplateError: the SVG is not acceptable (from :func:`certificates.render.render_pdf`).
        ValueError: unknown renderer, or the credential cannot be signed.
    """
    from lernflow.certificates import pdfpages  # pypdf takes ~75 ms to import: only where used

    pages = pdfpages.PdfPages(render.render_pdf(svg, renderer, allowed_hosts=allowed_hosts))
    digest = pages.digest()
    claim = {"form": pdfpages.PAGES_FORM, "sha256": digest}
    token = signing.sign_credential(credential, key, {PAGES_CLAIM: claim})
    decoded = json.dumps(credential, ensure_ascii=False, indent=2).encode("utf-8")
    files = [
        pdfpages.EmbeddedFile(
            ATTACHMENT_NAME,
            token.encode("ascii"),
            mime="application/jwt",
            description=ATTACHMENT_DESCRIPTION,
            relationship="Data",  # what the pages are drawn from
        ),
        pdfpages.EmbeddedFile(
            JSON_NAME,
            decoded,
            mime="application/json",
            description=JSON_DESCRIPTION,
            relationship="Supplement",
        ),
    ]
    pdf = pages.with_files(files, datetime.now(UTC))
    return IssuedPdf(token=token, pdf=pdf, pages_digest=digest)


# -- verification -----------------------------------------------------------------------------


class Verdict(StrEnum):
    """The answer of a verification."""

    VALID = "valid"
    INVALID = "invalid"
    UNCHECKED = "unchecked"  # the signature holds but the pages could not be checked
    REVOKED = "revoked"  # genuine, but revoked (lernflow.ops.cert_status adds this check)


@dataclass(frozen=True)
class Check:
    """One check of a verification: ``outcome`` is ``ok``, ``failed`` or ``not checked``."""

    name: str
    outcome: str
    detail: str


@dataclass(frozen=True)
class Verification:
    """The verdict, its reason, each check made or not, and the claims when the signature holds."""

    verdict: Verdict
    reason: str
    checks: tuple[Check, ...]
    claims: dict[str, Any] | None = None


def _invalid(reason: str, *checks: Check, claims: dict[str, Any] | None = None) -> Verification:
    return Verification(Verdict.INVALID, reason, checks, claims)


def _signature(token: bytes, public_keys: dict[str, object]) -> Check | dict[str, Any]:
    """The verified claims, or the failed signature check."""
    try:
        return signing.verify_credential(token.decode("ascii", "replace"), public_keys)
    except signing.VerificationError as exc:
        return Check("signature", "failed", str(exc))


def _signature_ok(claims: dict[str, Any]) -> Check:
    return Check("signature", "ok", f"signed by {claims.get('iss')}, credential {claims['jti']}")


def verify_token(token: bytes, public_keys: dict[str, object]) -> Verification:
    """Verify a credential on its own: its signature; the pages are not checked."""
    claims = _signature(token, public_keys)
    if isinstance(claims, Check):
        return _invalid(claims.detail, claims)
    return Verification(
        Verdict.UNCHECKED,
        "signature valid; a credential on its own: the pages were not checked",
        (_signature_ok(claims), Check("pages", "not checked", "no PDF given")),
        claims,
    )


def verify_pdf(
    pdf: bytes, public_keys: dict[str, object], storage: Storage | None = None
) -> Verification:
    """Verify a certificate PDF: its embedded credential's signature and that its pages are
    the ones issued with that credential.

    Args:
        pdf: the PDF's bytes.
        public_keys: kid → public key (:func:`certificates.signing.load_public_keys`).
        storage: the certificate store, to compare with the stored copy when the credential
            carries no page digest (issued before the digest existed); None: not at hand.

    Returns:
        VALID (signature and pages hold), INVALID (no credential, a bad signature, pages that
        differ or cannot be read) or UNCHECKED (signature valid, pages could not be checked).
    """
    found = render.find_attachment(pdf, ATTACHMENT_NAME)
    if found is None:
        reason = f"no embedded credential ({ATTACHMENT_NAME}) in this PDF"
        return _invalid(reason, Check("credential", "failed", reason))
    claims = _signature(found.data, public_keys)
    if isinstance(claims, Check):
        return _invalid(claims.detail, claims)
    if PAGES_CLAIM in claims:
        result = _check_digest(pdf, claims)
    else:
        result = _check_stored_copy(pdf, found.data, claims, storage)
    return dataclasses.replace(result, checks=(_where(found), *result.checks))


def _where(found: render.FoundAttachment) -> Check:
    """Where the credential was found: the embedded file, or the old Keywords form."""
    if found.where == render.EMBEDDED:
        return Check("credential", "ok", f"the embedded file {ATTACHMENT_NAME}")
    return Check(
        "credential",
        "ok",
        f"in the Keywords metadata ({ATTACHMENT_NAME}:…), as CairoSVG certificates were "
        "issued before page digests",
    )


def _check_digest(pdf: bytes, claims: dict[str, Any]) -> Verification:
    """Compare the pages' digest with the one the credential was signed with."""
    from lernflow.certificates import pdfpages

    signature = _signature_ok(claims)
    claimed = claims[PAGES_CLAIM]
    form = claimed.get("form") if isinstance(claimed, dict) else None
    expected = claimed.get("sha256") if isinstance(claimed, dict) else None
    if form != pdfpages.PAGES_FORM or not isinstance(expected, str):
        reason = f"the credential's page digest has a form this version does not know ({form!r})"
        pages = Check("pages", "not checked", reason)
        return Verification(
            Verdict.UNCHECKED, f"signature valid; {reason}", (signature, pages), claims
        )
    try:
        actual = pdfpages.pages_digest(pdf)
    except pdfpages.UnreadablePdfError as exc:
        return _invalid(
            f"pages cannot be read: {exc}", signature, Check("pages", "failed", str(exc))
        )
    if not hmac.compare_digest(actual, expected):
        reason = "pages differ from the issued certificate"
        detail = f"sha256 {actual} of these pages, {expected} signed"
        return _invalid(reason, signature, Check("pages", "failed", detail))
    pages = Check("pages", "ok", f"the pages' sha256 {actual} is the one signed")
    return Verification(
        Verdict.VALID, "signature valid; the pages are the ones issued", (signature, pages), claims
    )


def _stored_copy(claims: dict[str, Any], storage: Storage | None) -> bytes | None:
    """The stored PDF of the credential's certificate, None when not at hand."""
    if storage is None:
        return None
    try:
        batch_id = claims["vc"]["credentialSubject"]["badge"]["batchId"]
        return storage.get(object_key(str(batch_id), cert_id_of(str(claims["jti"]))))
    except (KeyError, TypeError, InvalidKeyError, OSError):
        return None


def _check_stored_copy(
    pdf: bytes, token: bytes, claims: dict[str, Any], storage: Storage | None
) -> Verification:
    """No page digest: compare the pages with the stored copy issued with the same credential."""
    from lernflow.certificates import pdfpages

    signature = _signature_ok(claims)
    no_digest = "this credential carries no page digest"
    stored = _stored_copy(claims, storage)
    if stored is None or render.extract_attachment(stored, ATTACHMENT_NAME) != token:
        why = "no stored copy at hand" if stored is None else "the stored copy is another issuance"
        pages = Check("pages", "not checked", f"{no_digest}; {why}")
        return Verification(
            Verdict.UNCHECKED, f"signature valid; {no_digest}", (signature, pages), claims
        )
    try:
        expected = pdfpages.pages_digest(stored)
        actual = pdfpages.pages_digest(pdf)
    except pdfpages.UnreadablePdfError as exc:
        return _invalid(
            f"pages cannot be read: {exc}", signature, Check("pages", "failed", str(exc))
        )
    if actual != expected:
        reason = "pages differ from the stored copy issued with this credential"
        return _invalid(reason, signature, Check("pages", "failed", f"{no_digest}; {reason}"))
    pages = Check("pages", "ok", f"{no_digest}; the pages are those of the stored copy")
    return Verification(
        Verdict.VALID,
        "signature valid; the pages match the stored copy",
        (signature, pages),
        claims,
    )
