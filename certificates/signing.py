"""Signing keys and VC-JWT signing/verification (ES256 by default, EdDSA/Ed25519 optional).

Sunbird's legacy path never signs a certificate; this module goes beyond it
(docs/flows/certificate-generator.md#6-credential-and-signature): the credential of
:mod:`certificates.credential` is signed as a compact JWT whose ``vc`` claim holds it.

Key files live in one directory: ``<kid>.private.pem`` (PKCS#8, mode 0600) and
``<kid>.public.pem`` (SubjectPublicKeyInfo). The default kid is the RFC 7638 JWK thumbprint of
the public key, so a kid names exactly one key.

Verification is strict: only ``ES256`` and ``EdDSA`` are accepted, the ``kid`` must name a
known key of the matching type, every segment must be canonical base64url, and the signature
must verify. Any failure raises :class:`VerificationError` with a short machine-readable
``reason``:

* ``malformed``: not a compact JWS of three canonical base64url segments, or undecodable;
* ``algorithm``: ``alg`` missing or not ES256/EdDSA (``none``, HS256, RS256 ... );
* ``unknown-kid``: ``kid`` missing or not one of ours;
* ``key-mismatch``: the kid's key is not of the type ``alg`` needs;
* ``signature``: the signature does not verify (tampered header, payload or signature);
* ``expired`` / ``not-yet-valid``: ``exp`` passed / ``nbf`` or ``iat`` in the future;
* ``claims``: a required claim is missing or ``vc`` does not agree with ``jti``/``sub``/``iss``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

ALGORITHMS: tuple[str, ...] = ("ES256", "EdDSA")
"""The only JWS algorithms this module signs with or accepts."""

LEEWAY_SECONDS = 60
"""Clock skew tolerated for ``iat``/``nbf``/``exp``."""

# VerificationError.reason values
MALFORMED = "malformed"
BAD_ALGORITHM = "algorithm"
UNKNOWN_KID = "unknown-kid"
KEY_MISMATCH = "key-mismatch"
BAD_SIGNATURE = "signature"
EXPIRED = "expired"
NOT_YET_VALID = "not-yet-valid"
BAD_CLAIMS = "claims"

_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_KID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_REQUIRED_CLAIMS = ("vc", "jti", "sub", "iss", "iat", "nbf")


class VerificationError(LernflowError):
    """A token was not accepted; ``reason`` says why (see the module docstring)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SigningKey:
    """A private key able to sign credentials, with its id and JWS algorithm."""

    kid: str
    alg: str
    private_key: object
    public_key: object


# -- keys -------------------------------------------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _alg_for(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            msg = f"only P-256 EC keys are supported (ES256), got curve {key.curve.name}"
            raise ValueError(msg)
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    msg = f"unsupported key type {type(key).__name__}: use an EC P-256 (ES256) or Ed25519 key"
    raise ValueError(msg)


def public_jwk(public_key: object) -> dict[str, str]:
    """The RFC 7517 JWK members that define ``public_key`` (no ``kid``/``alg``/``use``).

    Raises:
        ValueError: the key is neither EC P-256 nor Ed25519.
    """
    alg = _alg_for(public_key)
    if alg == "ES256":
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        numbers = public_key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
    assert isinstance(public_key, ed25519.Ed25519PublicKey)
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}


def jwk_thumbprint(public_key: object) -> str:
    """RFC 7638 SHA-256 JWK thumbprint of ``public_key``, base64url without padding."""
    members = public_jwk(public_key)
    required = ("crv", "kty", "x", "y") if members["kty"] == "EC" else ("crv", "kty", "x")
    canonical = json.dumps({k: members[k] for k in required}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _check_kid(kid: str) -> str:
    if not _KID.fullmatch(kid):
        msg = f"kid must be 1-128 characters of [A-Za-z0-9_.-], got {kid!r}"
        raise ValueError(msg)
    return kid


def generate_keys(directory: Path, alg: str = "ES256", kid: str | None = None) -> SigningKey:
    """Create a key pair and write ``<kid>.private.pem`` (0600) and ``<kid>.public.pem``.

    Args:
        directory: where the files go (created if missing).
        alg: ``"ES256"`` (P-256) or ``"EdDSA"`` (Ed25519).
        kid: the key id; default: the RFC 7638 thumbprint of the public key.

    Returns:
        The new signing key.

    Raises:
        ValueError: unknown ``alg`` or invalid ``kid``.
        FileExistsError: a key file with that kid already exists (keys are never overwritten).
    """
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        msg = f"alg must be one of {ALGORITHMS}, got {alg!r}"
        raise ValueError(msg)
    public_key = private_key.public_key()
    kid = _check_kid(kid) if kid is not None else jwk_thumbprint(public_key)
    directory.mkdir(parents=True, exist_ok=True)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path = directory / f"{kid}.private.pem"
    public_path = directory / f"{kid}.public.pem"
    if public_path.exists():
        msg = f"a public key with kid {kid!r} already exists in {directory}"
        raise FileExistsError(msg)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    os.chmod(private_path, 0o600)  # exactly 0600 whatever the umask
    public_path.write_bytes(public_pem)
    logger.info("generated %s signing key kid=%s in %s", alg, kid, directory)
    return SigningKey(kid=kid, alg=alg, private_key=private_key, public_key=public_key)


def load_signing_key(private_pem: Path, kid: str | None = None) -> SigningKey:
    """Load a private key written by :func:`generate_keys` (or any unencrypted PKCS#8 PEM).

    The kid defaults to the file name without ``.private.pem`` (the convention
    :func:`load_public_keys` reads back), or to the key's thumbprint for other file names.

    Raises:
        ValueError: the file is not an EC P-256 or Ed25519 private key.
    """
    key = serialization.load_pem_private_key(private_pem.read_bytes(), password=None)
    alg = _alg_for(key)
    assert isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    public_key = key.public_key()
    if kid is None:
        name = private_pem.name
        kid = (
            name.removesuffix(".private.pem")
            if name.endswith(".private.pem")
            else jwk_thumbprint(public_key)
        )
    return SigningKey(kid=_check_kid(kid), alg=alg, private_key=key, public_key=public_key)


def load_public_keys(directory: Path) -> dict[str, object]:
    """Map kid → public key for every ``*.public.pem`` in ``directory`` (kid = the file stem).

    Raises:
        ValueError: a file holds an unsupported or unreadable key.
    """
    keys: dict[str, object] = {}
    for path in sorted(directory.glob("*.public.pem")):
        kid = path.name.removesuffix(".public.pem")
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
            _alg_for(key)
        except ValueError as exc:
            msg = f"cannot use public key file {path}: {exc}"
            raise ValueError(msg) from exc
        keys[kid] = key
    return keys


def jwks(public_keys: dict[str, object]) -> dict[str, Any]:
    """An RFC 7517 JWK Set of ``public_keys`` with ``kid``, ``alg`` and ``use: sig``."""
    return {
        "keys": [
            {**public_jwk(key), "kid": kid, "alg": _alg_for(key), "use": "sig"}
            for kid, key in sorted(public_keys.items())
        ]
    }


# -- sign / verify ----------------------------------------------------------------------------


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def sign_credential(
    credential: dict[str, Any], key: SigningKey, extra_claims: dict[str, Any] | None = None
) -> str:
    """Sign ``credential`` as a compact VC-JWT.

    Header: ``alg``, ``kid``, ``typ: "JWT"``. Claims: ``vc`` (the credential), ``jti``
    (credential id), ``sub`` (``credentialSubject.id``), ``iss`` (``issuer.id``), ``iat`` and
    ``nbf`` (``issuanceDate``, or ``validFrom`` of a VC 2.0 credential) and ``exp`` when the
    credential has an ``expirationDate`` (``validUntil``); then
    ``extra_claims`` (e.g. the page digest of :mod:`certificates.binding`), which may not
    replace any of those.

    Raises:
        ValueError: the key's algorithm is not supported, the credential lacks an id,
            subject, issuer or issuance date, or an extra claim has a reserved name.
    """
    if key.alg not in ALGORITHMS:
        msg = f"key {key.kid!r} has alg {key.alg!r}; supported: {ALGORITHMS}"
        raise ValueError(msg)
    reserved = sorted(set(extra_claims or {}) & {*_REQUIRED_CLAIMS, "exp"})
    if reserved:
        msg = f"extra claims may not replace {reserved}"
        raise ValueError(msg)
    try:
        issued = _epoch(credential.get("issuanceDate") or credential["validFrom"])
        claims: dict[str, Any] = {
            "vc": credential,
            "jti": credential["id"],
            "sub": credential["credentialSubject"]["id"],
            "iss": _issuer_id(credential),
            "iat": issued,
            "nbf": issued,
        }
        expires = credential.get("expirationDate") or credential.get("validUntil")
        if expires:
            claims["exp"] = _epoch(expires)
        claims.update(extra_claims or {})
    except (KeyError, TypeError) as exc:
        msg = (
            f"credential is missing {exc}: it needs id, credentialSubject.id, issuer, "
            "issuanceDate or validFrom"
        )
        raise ValueError(msg) from exc
    return jwt.encode(
        claims,
        key.private_key,  # type: ignore[arg-type]
        algorithm=key.alg,
        headers={"kid": key.kid, "typ": "JWT"},
    )


def _issuer_id(credential: dict[str, Any]) -> Any:
    issuer = credential["issuer"]
    return issuer["id"] if isinstance(issuer, dict) else issuer


def _header(token: str) -> dict[str, Any]:
    if not isinstance(token, str) or not _COMPACT_JWS.fullmatch(token):
        raise VerificationError(MALFORMED, "not a compact JWS with three segments")
    segments = token.split(".")
    try:
        decoded = [_b64url_decode(s) for s in segments]
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(MALFORMED, "bad base64url") from exc
    # Canonical encoding only: otherwise several strings decode to one signature.
    if any(_b64url(raw) != seg for raw, seg in zip(decoded, segments, strict=True)):
        raise VerificationError(MALFORMED, "non-canonical base64url")
    try:
        header = json.loads(decoded[0])
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(MALFORMED, "header is not JSON") from exc
    if not isinstance(header, dict):
        raise VerificationError(MALFORMED, "header is not a JSON object")
    return header


def verify_credential(token: str, public_keys: dict[str, object]) -> dict[str, Any]:
    """Verify a VC-JWT made by :func:`sign_credential` and return its claims.

    Args:
        token: the compact JWT.
        public_keys: kid → public key (e.g. from :func:`load_public_keys`).

    Returns:
        The claims; ``claims["vc"]`` is the credential.

    Raises:
        VerificationError: the token is not accepted; ``reason`` says why. Unsigned tokens,
            algorithms other than ES256/EdDSA and unknown kids are always refused.
    """
    header = _header(token)
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise VerificationError(BAD_ALGORITHM, f"alg {alg!r} is not one of {ALGORITHMS}")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in public_keys:
        raise VerificationError(UNKNOWN_KID, f"kid {kid!r} is not a known key")
    key = public_keys[kid]
    try:
        key_alg = _alg_for(key)
    except ValueError as exc:
        raise VerificationError(KEY_MISMATCH, str(exc)) from exc
    if key_alg != alg or isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise VerificationError(KEY_MISMATCH, f"kid {kid!r} is not an {alg} public key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,  # type: ignore[arg-type]
            algorithms=[alg],
            options={"require": list(_REQUIRED_CLAIMS), "verify_aud": False},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.InvalidSignatureError as exc:
        raise VerificationError(BAD_SIGNATURE, "signature does not verify") from exc
    except jwt.ExpiredSignatureError as exc:
        raise VerificationError(EXPIRED, str(exc)) from exc
    except jwt.ImmatureSignatureError as exc:
        raise VerificationError(NOT_YET_VALID, str(exc)) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise VerificationError(BAD_CLAIMS, str(exc)) from exc
    except jwt.DecodeError as exc:
        raise VerificationError(MALFORMED, str(exc)) from exc
    except jwt.PyJWTError as exc:
        raise VerificationError(BAD_CLAIMS, str(exc)) from exc
    _check_vc(claims)
    return claims


def _check_vc(claims: dict[str, Any]) -> None:
    vc = claims.get("vc")
    if not isinstance(vc, dict):
        raise VerificationError(BAD_CLAIMS, "vc claim is missing or not an object")
    try:
        consistent = (
            vc["id"] == claims["jti"]
            and vc["credentialSubject"]["id"] == claims["sub"]
            and _issuer_id(vc) == claims["iss"]
        )
    except (KeyError, TypeError) as exc:
        raise VerificationError(BAD_CLAIMS, f"vc lacks {exc}") from exc
    if not consistent:
        raise VerificationError(BAD_CLAIMS, "vc id/subject/issuer disagree with jti/sub/iss")
