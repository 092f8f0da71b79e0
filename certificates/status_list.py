"""The revocation status list: a W3C Bitstring Status List credential, signed as a JWT.

Every certificate issued since the status list exists carries a ``credentialStatus`` entry
(:func:`certificates.credential.status_entry`) naming its bit, ``statusListIndex``, in the list
credential at ``{verify_base_url}/status/revocation``. The bit is 1 when the certificate is
revoked (docs/flows/certificate-generator.md#14-revocation-and-status-list).

The list (W3C Bitstring Status List v1.0): bit ``i`` is bit ``7 - i % 8`` of byte ``i // 8``
(index 0 is the most significant bit of the first byte); the bitstring is at least
:data:`MIN_BITS` (16 KiB) long — longer in 16 KiB steps once more indexes are allocated —
GZIP-compressed and written as multibase base64url without padding (``u…``) in
``credentialSubject.encodedList``. The list credential is a VC 2.0 credential signed with the
certificates' key (:func:`certificates.signing.sign_credential`), so a verifier checks it with
the same JWKS.

Pure functions: the revoked indexes come from the caller (the registry, read by
``lernflow.flows.certificate_generator.revocation``).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lernflow.certificates import signing
from lernflow.certificates.credential import (
    STATUS_PURPOSE,
    W3C_CREDENTIALS_V2,
    iso_utc,
    status_list_url,
)
from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

MIN_BITS = 16 * 1024 * 8
"""The spec's minimum bitstring length (16 KiB), which gives herd privacy."""

LIST_TYPE = "BitstringStatusListCredential"


class StatusListError(LernflowError):
    """A status list that cannot be read, or does not answer for a credential."""


def list_length(allocated: int) -> int:
    """Bits in a list holding indexes ``0 … allocated - 1``: a multiple of :data:`MIN_BITS`."""
    return max(MIN_BITS, -(-allocated // MIN_BITS) * MIN_BITS)


def encode_bits(revoked: Iterable[int], length: int = MIN_BITS) -> str:
    """The ``encodedList`` of a bitstring of ``length`` bits with ``revoked`` set.

    Raises:
        ValueError: ``length`` is under :data:`MIN_BITS` or not whole bytes, or an index is
            outside the list.
    """
    if length < MIN_BITS or length % 8:
        msg = f"a status list has at least {MIN_BITS} bits in whole bytes, got {length}"
        raise ValueError(msg)
    bits = bytearray(length // 8)
    for index in revoked:
        if not 0 <= index < length:
            msg = f"status index {index} is outside a list of {length} bits"
            raise ValueError(msg)
        bits[index // 8] |= 0x80 >> (index % 8)
    packed = gzip.compress(bytes(bits), mtime=0)  # no timestamp: same bits, same text
    return "u" + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")


def decode_bits(encoded: str) -> bytes:
    """The bitstring of an ``encodedList`` (multibase ``u`` base64url, GZIP).

    Raises:
        StatusListError: not multibase base64url, not GZIP, or shorter than :data:`MIN_BITS`.
    """
    text = encoded.removeprefix("u") if encoded.startswith("u") else None
    if text is None:
        msg = "encodedList is not multibase base64url (no 'u' prefix)"
        raise StatusListError(msg)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        bits = gzip.decompress(raw)
    except (binascii.Error, ValueError, OSError, EOFError, zlib.error) as exc:
        msg = f"encodedList cannot be decoded: {exc}"
        raise StatusListError(msg) from exc
    if len(bits) * 8 < MIN_BITS:
        msg = f"the bitstring has {len(bits) * 8} bits, fewer than the minimum {MIN_BITS}"
        raise StatusListError(msg)
    return bits


def bit_is_set(bits: bytes, index: int) -> bool:
    """Whether bit ``index`` (0 = most significant bit of the first byte) is 1.

    Raises:
        StatusListError: ``index`` is outside the list.
    """
    if not 0 <= index < len(bits) * 8:
        msg = f"status index {index} is outside a list of {len(bits) * 8} bits"
        raise StatusListError(msg)
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def status_list_credential(
    verify_base_url: str,
    issuer_id: str,
    revoked: Iterable[int],
    allocated: int,
    issued_at: datetime,
) -> dict[str, Any]:
    """The revocation status list credential (VC 2.0) with ``revoked`` set, for a list in
    which ``allocated`` indexes were handed out (its length: :func:`list_length`).

    Raises:
        ValueError: ``issued_at`` is naive, or an index is outside the list.
    """
    url = status_list_url(verify_base_url)
    return {
        "@context": [W3C_CREDENTIALS_V2],
        "id": url,
        "type": ["VerifiableCredential", LIST_TYPE],
        "issuer": issuer_id,
        "validFrom": iso_utc(issued_at),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": STATUS_PURPOSE,
            "encodedList": encode_bits(revoked, list_length(allocated)),
        },
    }


def sign_status_list(credential: dict[str, Any], key: signing.SigningKey) -> str:
    """The status list credential as a compact JWT, signed like the certificates."""
    return signing.sign_credential(credential, key)


@dataclass(frozen=True)
class StatusAnswer:
    """What a status list says of one credential: ``revoked``, and on which list and index."""

    revoked: bool
    list_url: str
    index: int


def credential_status(vc: dict[str, Any]) -> dict[str, Any] | None:
    """The credential's revocation ``credentialStatus`` entry, None when it has none (issued
    before status lists existed)."""
    entries = vc.get("credentialStatus")
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, dict) and entry.get("statusPurpose") == STATUS_PURPOSE:
            return entry
    return None


def check_status(
    vc: dict[str, Any], list_token: str, public_keys: dict[str, object]
) -> StatusAnswer | None:
    """Check a credential against a status list JWT, offline.

    The list's signature is verified with ``public_keys`` (the JWKS of the certificates), its
    id must be the ``statusListCredential`` the credential names and its purpose revocation.

    Returns:
        The answer, or None when the credential carries no revocation entry.

    Raises:
        StatusListError: the list is not signed by a known key, is another list, or cannot be
            read, or the credential's entry is malformed.
        signing.VerificationError: from the signature check (wrapped as StatusListError).
    """
    entry = credential_status(vc)
    if entry is None:
        return None
    try:
        index = int(str(entry["statusListIndex"]))
        list_url = str(entry["statusListCredential"])
    except (KeyError, ValueError) as exc:
        msg = f"the credential's credentialStatus is malformed: {exc}"
        raise StatusListError(msg) from exc
    try:
        claims = signing.verify_credential(list_token.strip(), public_keys)
    except signing.VerificationError as exc:
        msg = f"the status list does not verify: {exc}"
        raise StatusListError(msg) from exc
    listed = claims["vc"]
    subject = listed.get("credentialSubject")
    if listed.get("id") != list_url or not isinstance(subject, dict):
        msg = f"the status list is {listed.get('id')!r}, the credential names {list_url!r}"
        raise StatusListError(msg)
    if subject.get("statusPurpose") != STATUS_PURPOSE:
        msg = f"the status list's purpose is {subject.get('statusPurpose')!r}, not revocation"
        raise StatusListError(msg)
    bits = decode_bits(str(subject.get("encodedList", "")))
    return StatusAnswer(bit_is_set(bits, index), list_url, index)
