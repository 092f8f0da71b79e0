"""A certificate id, or an uploaded file, to its verification.

The checks are those of ``lernflow cert verify``: :func:`lernflow.certificates.binding.verify_pdf`
and :func:`~lernflow.certificates.binding.verify_token`, nothing of their own. What this module
adds is finding the stored file of an id without letting the id be guessed or walked:

* an id is one storage-key segment of at most :data:`MAX_ID_CHARS` characters (the generator's
  ids are UUIDs); anything else is *not found*, after the same directory scan a well-formed
  unknown id costs, so a malformed id and an unknown one answer alike and in about the same time;
* there is no listing: the only way to a certificate is its id.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from lernflow.certificates import binding
from lernflow.certificates.storage import LocalStorage

logger = logging.getLogger(__name__)

MAX_ID_CHARS = 128
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a subset of a storage-key segment: no dots
_NO_SUCH_ID = "00000000-0000-0000-0000-000000000000-none"  # scanned for a malformed id
UNREADABLE = "this file cannot be read as a certificate (a PDF or a credential JWT)"


@dataclass(frozen=True)
class StoredCertificate:
    """The stored files of one certificate id (either may be missing, not both)."""

    cert_id: str
    pdf: Path | None
    jwt: Path | None


def well_formed(cert_id: str) -> bool:
    """Whether ``cert_id`` could be a certificate id (see the module docstring)."""
    return len(cert_id) <= MAX_ID_CHARS and _ID.fullmatch(cert_id) is not None


def find_stored(root: Path, cert_id: str) -> StoredCertificate | None:
    """The stored files of ``cert_id`` below ``root`` (``<batchId>/<certId>.pdf|.jwt``).

    None for an unknown or malformed id; both cost one scan of ``root``'s batch folders.
    """
    name = cert_id if well_formed(cert_id) else _NO_SUCH_ID
    pdfs = sorted(root.glob(f"*/{name}.pdf")) if root.is_dir() else []
    jwts = sorted(root.glob(f"*/{name}.jwt")) if root.is_dir() else []
    if name != cert_id or not (pdfs or jwts):
        return None
    if len(pdfs) > 1 or len(jwts) > 1:
        logger.warning("certificate %s is stored in more than one batch folder", cert_id)
    return StoredCertificate(cert_id, pdfs[0] if pdfs else None, jwts[0] if jwts else None)


def verify_stored(
    stored: StoredCertificate, public_keys: dict[str, object]
) -> binding.Verification:
    """Verify our own copy: the PDF when there is one (its signed page digest is the reference),
    else the credential on its own (*unchecked*)."""
    if stored.pdf is not None:
        return binding.verify_pdf(stored.pdf.read_bytes(), public_keys)
    assert stored.jwt is not None
    return binding.verify_token(stored.jwt.read_bytes().strip(), public_keys)


def verify_upload(
    data: bytes, public_keys: dict[str, object], storage_root: Path
) -> binding.Verification:
    """Verify an uploaded PDF (compared with the stored copy when its credential has no page
    digest) or credential JWT, as ``lernflow cert verify <file>`` does.

    A file the PDF reader cannot cope with is *not valid* (:data:`UNREADABLE`), never an error.
    """
    try:
        if data.startswith(b"%PDF"):
            storage = LocalStorage(storage_root) if storage_root.is_dir() else None
            return binding.verify_pdf(data, public_keys, storage)
        return binding.verify_token(data.strip(), public_keys)
    except Exception as exc:  # whatever a hostile file makes a reader raise: a verdict, not a 500
        logger.warning("upload not readable: %s: %s", type(exc).__name__, str(exc)[:200])
        check = binding.Check("file", "failed", UNREADABLE)
        return binding.Verification(binding.Verdict.INVALID, UNREADABLE, (check,))
