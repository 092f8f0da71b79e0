"""Course certificates: model, W3C credential, JWT signing, SVG templates, PDF rendering, storage.

The pieces, in the order a certificate is made:

1. :class:`CertificateData` (what is certified) → :func:`build_credential` (W3C VC) →
   :func:`sign_credential` (compact ES256/EdDSA JWT; :func:`verify_credential` checks it).
2. :class:`TemplateCache` (fetch + sanitise a Sunbird ``${name}`` SVG template) →
   :func:`placeholder_values` + :func:`qr_data_uri` → :func:`fill_svg` (XML-escaped values).
3. :func:`render_pdf` (WeasyPrint or CairoSVG: the pages only) →
   :class:`LocalStorage` (atomic writes under ``<batchId>/<certId>.pdf``).
4. :func:`issue_pdf` does 1 and 3 bound together: it renders the pages, signs the credential
   with their digest (``pdf_pages`` claim) and attaches it as the associated file
   ``credential.jwt`` (and ``credential.json``); :func:`verify_pdf` checks both the
   signature and that the pages are the ones issued (:func:`verify_token`: a JWT on its own).

The rendering names are imported lazily (WeasyPrint takes about half a second to import), so
``import certificates`` stays cheap for code that only signs or verifies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lernflow.certificates.credential import build_credential
from lernflow.certificates.fetch import TemplateCache, bundled_template_path
from lernflow.certificates.model import CertificateData, Signatory, normalize_issued_date
from lernflow.certificates.qr import qr_data_uri
from lernflow.certificates.sanitize import TemplateError, sanitize_svg
from lernflow.certificates.signing import (
    SigningKey,
    VerificationError,
    generate_keys,
    jwks,
    load_public_keys,
    load_signing_key,
    sign_credential,
    verify_credential,
)
from lernflow.certificates.storage import InvalidKeyError, LocalStorage, Storage, object_key
from lernflow.certificates.template import fill_svg
from lernflow.certificates.values import PLACEHOLDERS, placeholder_values

if TYPE_CHECKING:
    from lernflow.certificates.binding import (
        IssuedPdf,
        Verdict,
        Verification,
        issue_pdf,
        verify_pdf,
        verify_token,
    )
    from lernflow.certificates.render import extract_attachment, preview_png, render_pdf

_LAZY = {
    "IssuedPdf": "certificates.binding",
    "Verdict": "certificates.binding",
    "Verification": "certificates.binding",
    "issue_pdf": "certificates.binding",
    "verify_pdf": "certificates.binding",
    "verify_token": "certificates.binding",
    "render_pdf": "lernflow.certificates.render",
    "extract_attachment": "lernflow.certificates.render",
    "preview_png": "lernflow.certificates.render",
}

__all__ = [
    "PLACEHOLDERS",
    "CertificateData",
    "InvalidKeyError",
    "IssuedPdf",
    "LocalStorage",
    "Signatory",
    "SigningKey",
    "Storage",
    "TemplateCache",
    "TemplateError",
    "Verdict",
    "Verification",
    "VerificationError",
    "build_credential",
    "bundled_template_path",
    "extract_attachment",
    "fill_svg",
    "generate_keys",
    "issue_pdf",
    "jwks",
    "load_public_keys",
    "load_signing_key",
    "normalize_issued_date",
    "object_key",
    "placeholder_values",
    "preview_png",
    "qr_data_uri",
    "render_pdf",
    "sanitize_svg",
    "sign_credential",
    "verify_credential",
    "verify_pdf",
    "verify_token",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'certificates' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
