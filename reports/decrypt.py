"""PII decryption exactly as the exhaust reports do it (``DecryptUtil``; B7.3 in
docs/flows/userinfo-exhaust.md).

Learner e-mail addresses, phone numbers and names arrive in the Redis user cache either
in plain text or encrypted by the user service. The reports decrypt them with a fixed
AES-128 key and a *salt* taken from the ``sunbird_encryption_key`` setting:

* blank input (empty or Java-whitespace only) is returned unchanged;
* otherwise the input is trimmed (Java ``String.trim``: code points <= U+0020) and three
  times in a row: lenient Base64 decoding (Apache commons-codec rules, see
  :func:`lenient_b64decode`), AES/ECB/PKCS5Padding decryption with the 16 ASCII bytes
  ``ThisAsISerceKtey``, UTF-8 decoding (malformed bytes become U+FFFD) and removal of the
  first ``len(salt)`` UTF-16 code units;
* any failure (bad length, bad padding, plaintext shorter than the salt) returns the
  *original, untrimmed* input, so plain text passes through unchanged.

The salt is the configured value with CR, TAB and LF replaced by the two-character
sequences ``\\r``, ``\\t`` and ``\\n`` (:func:`normalise_salt`); only its length matters for
decryption. :func:`encrypt_pii` is the user service's counterpart (salt + value, AES-ECB,
Base64 as ``sun.misc.BASE64Encoder`` writes it: 76-character lines separated by ``\\n``),
used to produce fixtures; AES-ECB is deterministic, so its output is bit-exact.
"""

from __future__ import annotations

import base64
import unicodedata

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lernflow.kernel.java import java_length, java_trim

__all__ = [
    "AES_KEY",
    "ITERATIONS",
    "decrypt_pii",
    "encrypt_pii",
    "is_java_blank",
    "lenient_b64decode",
    "normalise_salt",
    "sun_misc_b64encode",
]

AES_KEY = b"ThisAsISerceKtey"
"""The fixed AES-128 key shared by the Sunbird user service and the reports."""

ITERATIONS = 3
"""Number of encryption layers."""

_B64_VALUES: dict[str, int] = {
    **{
        c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    },
    # commons-codec decodes both the standard and the URL-safe alphabet.
    "+": 62,
    "/": 63,
    "-": 62,
    "_": 63,
}
_JAVA_WHITESPACE_CONTROLS = frozenset("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")
_NON_BREAKING_SPACES = frozenset("\u00a0\u2007\u202f")


def normalise_salt(salt: str) -> str:
    """Replace CR, TAB and LF by ``\\r``, ``\\t``, ``\\n`` (as ``DecryptUtil.getSalt`` does).

    Idempotent: a salt that was already normalised contains none of those characters.
    """
    return salt.replace("\r", "\\r").replace("\t", "\\t").replace("\n", "\\n")


def _java_is_whitespace(ch: str) -> bool:
    """``Character.isWhitespace``: Unicode separators except no-break spaces, plus 9 controls."""
    if ch in _JAVA_WHITESPACE_CONTROLS:
        return True
    if ch in _NON_BREAKING_SPACES:
        return False
    return unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def is_java_blank(value: str) -> bool:
    """``StringUtils.isBlank``: empty, or made only of Java whitespace characters."""
    return all(_java_is_whitespace(ch) for ch in value)


def lenient_b64decode(text: str) -> bytes:
    """Decode Base64 like Apache commons-codec ``Base64.decodeBase64(String)`` (lenient mode).

    * Characters outside both alphabets (``+/`` and ``-_``), including whitespace, line
      breaks and every non-ASCII character, are skipped.
    * The first ``=`` ends decoding; padding is optional.
    * A trailing group of 2 or 3 characters yields 1 or 2 bytes (the spare bits are
      dropped); a single trailing character is ignored.
    """
    out = bytearray()
    acc = 0
    count = 0
    for ch in text:
        if ch == "=":
            break
        value = _B64_VALUES.get(ch)
        if value is None:
            continue
        acc = (acc << 6) | value
        count += 1
        if count == 4:
            out += acc.to_bytes(3, "big")
            acc = 0
            count = 0
    if count == 2:
        out.append((acc >> 4) & 0xFF)
    elif count == 3:
        out += ((acc >> 2) & 0xFFFF).to_bytes(2, "big")
    return bytes(out)


def sun_misc_b64encode(data: bytes) -> str:
    """Base64 as ``sun.misc.BASE64Encoder.encode``: padded, a ``\\n`` after every full 57-byte line."""
    parts: list[str] = []
    for start in range(0, len(data), 57):
        chunk = data[start : start + 57]
        parts.append(base64.b64encode(chunk).decode("ascii"))
        if len(chunk) == 57:
            parts.append("\n")
    return "".join(parts)


def _java_substring(value: str, start: int) -> str:
    """``String.substring(start)`` counting UTF-16 code units; ``IndexError`` if too short."""
    if start > java_length(value):
        msg = f"begin {start}, length {java_length(value)}"
        raise IndexError(msg)
    raw = value.encode("utf-16-le", "surrogatepass")[2 * start :]
    return raw.decode("utf-16-le", "surrogatepass")


def _aes_ecb_decrypt(data: bytes) -> bytes:
    """AES/ECB/PKCS5Padding decryption with :data:`AES_KEY`, with the JCE's edge cases.

    An empty input decrypts to an empty output (SunJCE unpads a zero-length buffer to
    nothing); a length that is not a multiple of 16 or a bad padding raises ``ValueError``.
    """
    if not data:
        return b""
    if len(data) % 16:
        msg = "Input length must be multiple of 16 when decrypting with padded cipher"
        raise ValueError(msg)
    decryptor = Cipher(algorithms.AES(AES_KEY), modes.ECB()).decryptor()  # noqa: S305 - upstream scheme
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _aes_ecb_encrypt(data: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(AES_KEY), modes.ECB()).encryptor()  # noqa: S305 - upstream scheme
    return encryptor.update(padded) + encryptor.finalize()


def decrypt_pii(value: str, salt: str) -> str:
    """Decrypt one PII value bit-exactly as ``DecryptUtil.decryptData`` (B7.3,
    docs/flows/userinfo-exhaust.md).

    ``salt`` is the ``sunbird_encryption_key`` setting (raw or already normalised). Returns
    ``value`` itself when it is blank or cannot be decrypted.
    """
    if is_java_blank(value):
        return value
    salt_units = java_length(normalise_salt(salt))
    current = java_trim(value)
    try:
        for _ in range(ITERATIONS):
            plain = _aes_ecb_decrypt(lenient_b64decode(current))
            current = _java_substring(plain.decode("utf-8", "replace"), salt_units)
    except (ValueError, IndexError):
        return value
    return current


def encrypt_pii(value: str, salt: str) -> str:
    """The user service's encryption (inverse of :func:`decrypt_pii`), for fixtures and tests.

    Three times: prefix the normalised salt, encode UTF-8 (lone surrogates become ``?``),
    AES/ECB/PKCS5Padding with :data:`AES_KEY`, then :func:`sun_misc_b64encode`.
    """
    prefix = normalise_salt(salt)
    current = value
    for _ in range(ITERATIONS):
        data = (prefix + current).encode("utf-8", "replace")
        current = sun_misc_b64encode(_aes_ecb_encrypt(data))
    return current
