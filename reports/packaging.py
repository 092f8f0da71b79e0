"""Report files: naming, security levels, zips and encryption (B8.1, B8.3; docs/flows/progress-exhaust.md).

Each batch's CSV is written to ``<prefix><reportPath><requestId>/<batchId>_<key>_<yyyyMMdd>.csv``
(date in IST; :func:`exhaust_file_path`) and stays in storage. Then, per the tenant's
security level (RPT-5.4):

=================================  ===============================  ==========================
level                              file inside the zip              zip
=================================  ===============================  ==========================
``PLAIN_DATASET``                  the CSV                          plain (deflate)
``PASSWORD_PROTECTED_DATASET``     the CSV                          ZipCrypto with the request
                                                                    key (plain if no key)
``TEXT_KEY_ENCRYPTED_DATASET``     CSV encrypted with the user key  plain
``PUBLIC_KEY_ENCRYPTED_DATASET``   CSV encrypted with the org key   plain
``""`` / unknown                   —                                none written
=================================  ===============================  ==========================

The zip has one entry named like the CSV file and is stored under the CSV key with every
``csv`` replaced by ``zip`` (:func:`zip_object_key`); ``job_request.download_urls`` gets the
CSV URL with ``.csv`` replaced by ``.zip`` (:func:`download_url`) — for every level, even when
no zip was written.

The request key (``job_request.encryption_key``) goes through PII decryption first
(:func:`reports.decrypt.decrypt_pii` with the ``sunbird_encryption_key`` salt): encrypted keys
are decrypted, plain keys pass through.

Encrypted-file format (TEXT_KEY / PUBLIC_KEY)::

    <level>\\n
    base64(encryptedFileKey)\\n
    AES/CBC/PKCS5Padding(csv, key=fileKey, IV=16 zero bytes)

``fileKey`` = PBKDF2-HMAC-SHA256(password = a random UUID's text, salt = 128 random bytes,
1000 iterations, 32 bytes); ``encryptedFileKey`` = AES/CBC/PKCS5Padding(fileKey, key = ASCII
of the upper-hex MD5 of the user key, IV zero) for TEXT_KEY, RSA/ECB/PKCS1Padding(fileKey,
org public key) for PUBLIC_KEY.

The standard library cannot write encrypted zip entries, so :func:`zipcrypto_zip` writes the
traditional PKWARE ("ZipCrypto", zip4j ``ZIP_STANDARD``) format itself. Zip bytes are not
reproducible (timestamps, random encryption header, random keys); what they contain is.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import posixpath
import struct
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lernflow.kernel.errors import LernflowError
from lernflow.reports.decrypt import decrypt_pii
from lernflow.reports.paths import check_id

__all__ = [
    "IST",
    "PASSWORD_PROTECTED_DATASET",
    "PLAIN_DATASET",
    "PUBLIC_KEY_ENCRYPTED_DATASET",
    "REPORTS",
    "SECURITY_LEVELS",
    "TEXT_KEY_ENCRYPTED_DATASET",
    "PackagingError",
    "creates_zip",
    "decrypt_secured_file",
    "download_url",
    "encrypt_csv",
    "encrypt_file",
    "exhaust_encryption_key_url",
    "exhaust_file_path",
    "org_search_request",
    "plain_zip",
    "report_date",
    "request_key",
    "secure",
    "text_key_cipher_key",
    "zip4j_password_bytes",
    "zip_object_key",
    "zip_secured",
    "zipcrypto_zip",
]

PLAIN_DATASET = "PLAIN_DATASET"
PASSWORD_PROTECTED_DATASET = "PASSWORD_PROTECTED_DATASET"  # noqa: S105 - a level name
TEXT_KEY_ENCRYPTED_DATASET = "TEXT_KEY_ENCRYPTED_DATASET"
PUBLIC_KEY_ENCRYPTED_DATASET = "PUBLIC_KEY_ENCRYPTED_DATASET"
SECURITY_LEVELS = (
    PLAIN_DATASET,
    PASSWORD_PROTECTED_DATASET,
    TEXT_KEY_ENCRYPTED_DATASET,
    PUBLIC_KEY_ENCRYPTED_DATASET,
)

IST = timezone(timedelta(hours=5, minutes=30), "IST")
"""File-name dates are always Indian Standard Time."""

REPORTS: dict[str, tuple[str, str]] = {
    "progress-exhaust": ("progress-exhaust/", "progress"),
    "response-exhaust": ("response-exhaust/", "response"),
    "userinfo-exhaust": ("userinfo-exhaust/", "userinfo"),
}
"""Job id -> (report path prefix, file key)."""

RandomBytes = Callable[[int], bytes]
UuidFactory = Callable[[], uuid.UUID]

_PBKDF2_ITERATIONS = 1000
_PBKDF2_SALT_BYTES = 128
_ZERO_IV = bytes(16)
_MAX_ZIP32 = 0xFFFFFFFF


class PackagingError(LernflowError):
    """Securing a report file failed.

    ``stage`` is ``"encrypt"`` (while writing the CSV: Sunbird fails that *batch*, with
    :attr:`batch_message` as its message) or ``"zip"`` (at save time: the URL keeps ``.csv``,
    or the userinfo request fails with ``Zip, encrypt and upload failed``).
    """

    def __init__(self, message: str, *, stage: str, upstream_message: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.upstream_message = upstream_message

    @property
    def batch_message(self) -> str:
        """The text Sunbird records for the failed batch (``"null"`` for its null-pointer case)."""
        return self.upstream_message if self.upstream_message is not None else str(self)


# --- naming -----------------------------------------------------------------------------


def report_date(now: datetime) -> str:
    """``yyyyMMdd`` of ``now`` (timezone-aware) in IST."""
    if now.tzinfo is None:
        msg = "report_date needs a timezone-aware datetime"
        raise ValueError(msg)
    day = now.astimezone(IST)
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def exhaust_file_path(
    report_path: str, batch_id: str, report_key: str, request_id: str | None, now: datetime
) -> str:
    """``<reportPath>[<requestId>/]<batchId>_<key>_<yyyyMMdd IST>`` — no extension (B8.1).

    On demand: ``progress-exhaust/<rid>/batch-001_progress_20240101``; standalone
    (``request_id`` empty/None): ``progress-exhaust/batch-001_progress_20240101``. The CSV URL
    stored in ``download_urls`` is this plus ``.csv``; the storage key has the configured
    ``collection.exhaust.store.prefix`` in front. Ids that are not path-safe raise
    :class:`reports.paths.UnsafeIdError` (beyond Sunbird).
    """
    rid = f"{check_id('request_id', request_id)}/" if request_id else ""
    return f"{report_path}{rid}{check_id('batchId', batch_id)}_{report_key}_{report_date(now)}"


def download_url(url: str) -> str:
    """The ``download_urls`` entry after packaging: every ``.csv`` replaced by ``.zip``."""
    return url.replace(".csv", ".zip")


def zip_object_key(key: str) -> str:
    """Where the zip is uploaded: the CSV key with every ``csv`` replaced by ``zip``.

    Differs from :func:`download_url` when a request or batch id contains ``csv``.
    """
    return key.replace("csv", "zip")


def creates_zip(level: str) -> bool:
    """False for ``""``/unknown levels: nothing is zipped (yet the URL still becomes ``.zip``)."""
    return level in SECURITY_LEVELS


# --- keys -------------------------------------------------------------------------------


def request_key(encryption_key: str | None, salt: str | None) -> str | None:
    """The request key as the level handlers use it: PII-decrypted when ``salt`` is given.

    ``salt`` is the ``sunbird_encryption_key`` setting; ``None`` uses the key verbatim
    (identical for every key that is not itself an encrypted blob).
    """
    if encryption_key is None or salt is None:
        return encryption_key
    return decrypt_pii(encryption_key, salt)


def text_key_cipher_key(key: str) -> bytes:
    """The AES-256 key for TEXT_KEY: the 32 ASCII characters of the upper-hex MD5 of ``key``."""
    digest = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()
    return digest.upper().encode("ascii")


def zip4j_password_bytes(password: str) -> bytes:
    """ZipCrypto password bytes as zip4j 2.6 derives them: low byte of each UTF-16 unit.

    Identical to the text's bytes for ASCII and Latin-1 passwords.
    """
    raw = password.encode("utf-16-le", "surrogatepass")
    return raw[0::2]


def org_search_request(org_id: str, channel: str) -> dict[str, Any]:
    """Body of the private org search that finds the org's public key.

    By id (always the case for reports: the id is the requested channel); by
    ``{channel, isTenant: true}`` only when the id is empty.
    """
    filters: dict[str, Any] = {"id": org_id} if org_id else {"channel": channel, "isTenant": True}
    return {"request": {"filters": filters}}


def exhaust_encryption_key_url(response: Mapping[str, Any] | None) -> str:
    """``result.response.content[0].keys.exhaustEncryptionKey[0]`` (a PEM file URL) or ``""``."""
    node: Any = response or {}
    for key in ("result", "response", "content"):
        node = node.get(key) if isinstance(node, Mapping) else None
    first = node[0] if isinstance(node, list) and node else {}
    keys = first.get("keys") if isinstance(first, Mapping) else None
    urls = keys.get("exhaustEncryptionKey") if isinstance(keys, Mapping) else None
    if isinstance(urls, list) and urls and isinstance(urls[0], str):
        return urls[0]
    return ""


# --- encrypted-file format --------------------------------------------------------------


def _aes_cbc_encrypt(key: bytes, data: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _aes_cbc_decrypt(key: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _file_key(random_bytes: RandomBytes, new_uuid: UuidFactory) -> bytes:
    password = str(new_uuid()).encode("utf-8")
    salt = random_bytes(_PBKDF2_SALT_BYTES)
    return hashlib.pbkdf2_hmac("sha256", password, salt, _PBKDF2_ITERATIONS, 32)


def _load_rsa_public_key(pem: bytes) -> RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        msg = f"invalid org public key: {exc}"
        raise PackagingError(msg, stage="encrypt") from exc
    if not isinstance(key, RSAPublicKey):
        msg = "org public key is not an RSA key"
        raise PackagingError(msg, stage="encrypt")
    return key


def encrypt_file(
    data: bytes,
    level: str,
    *,
    text_key: str | None = None,
    public_key_pem: bytes | None = None,
    random_bytes: RandomBytes = os.urandom,
    new_uuid: UuidFactory = uuid.uuid4,
) -> bytes:
    """Encrypt ``data`` in the TEXT_KEY / PUBLIC_KEY file format (module docstring).

    ``text_key`` (non-empty) selects the TEXT_KEY scheme, otherwise ``public_key_pem`` (an
    RSA ``PUBLIC KEY`` PEM) is used. ``level`` is written as the first line.
    """
    file_key = _file_key(random_bytes, new_uuid)
    if text_key:
        encrypted_key = _aes_cbc_encrypt(text_key_cipher_key(text_key), file_key)
    else:
        if public_key_pem is None:
            # Sunbird dereferences the missing key file: a NullPointerException, message null.
            msg = "no user key and no org public key to encrypt the file with"
            raise PackagingError(msg, stage="encrypt", upstream_message="null")
        public_key = _load_rsa_public_key(public_key_pem)
        encrypted_key = public_key.encrypt(file_key, asym_padding.PKCS1v15())
    header = level.encode("utf-8") + b"\n" + base64.b64encode(encrypted_key) + b"\n"
    return header + _aes_cbc_encrypt(file_key, data)


def decrypt_secured_file(
    data: bytes,
    *,
    text_key: str | None = None,
    private_key_pem: bytes | None = None,
    private_key_password: bytes | None = None,
) -> tuple[str, bytes]:
    """Inverse of :func:`encrypt_file` (what a report consumer does): ``(level, csv_bytes)``."""
    level_line, key_line, body = data.split(b"\n", 2)
    encrypted_key = base64.b64decode(key_line, validate=True)
    if text_key is not None:
        file_key = _aes_cbc_decrypt(text_key_cipher_key(text_key), encrypted_key)
    elif private_key_pem is not None:
        private_key = serialization.load_pem_private_key(private_key_pem, private_key_password)
        if not isinstance(private_key, RSAPrivateKey):
            msg = "private key is not an RSA key"
            raise ValueError(msg)
        file_key = private_key.decrypt(encrypted_key, asym_padding.PKCS1v15())
    else:
        msg = "need text_key or private_key_pem"
        raise ValueError(msg)
    return level_line.decode("utf-8"), _aes_cbc_decrypt(file_key, body)


# --- zips -------------------------------------------------------------------------------


def _date_time(modified: datetime | None) -> tuple[int, int, int, int, int, int]:
    t = modified.timetuple() if modified is not None else time.localtime()
    year = min(max(t.tm_year, 1980), 2107)
    return (year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def _entry_name(file_name: str) -> str:
    return posixpath.basename(file_name) or file_name


def plain_zip(entry_name: str, data: bytes, *, modified: datetime | None = None) -> bytes:
    """A zip with one deflated, unencrypted entry ``entry_name``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(entry_name, date_time=_date_time(modified))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)
    return buffer.getvalue()


def _crc_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def _zipcrypto_encrypt(data: bytes, password: bytes) -> bytes:
    """Traditional PKWARE stream encryption of ``data`` (the header included by the caller)."""
    table = _CRC_TABLE
    k0, k1, k2 = 0x12345678, 0x23456789, 0x34567890
    for b in password:
        k0 = (k0 >> 8) ^ table[(k0 ^ b) & 0xFF]
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
    out = bytearray(len(data))
    for i, b in enumerate(data):
        t = (k2 | 2) & 0xFFFF
        out[i] = b ^ (((t * (t ^ 1)) >> 8) & 0xFF)
        k0 = (k0 >> 8) ^ table[(k0 ^ b) & 0xFF]
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
    return bytes(out)


def zipcrypto_zip(
    entry_name: str,
    data: bytes,
    password: bytes,
    *,
    modified: datetime | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """A zip with one deflated entry encrypted with traditional PKWARE encryption (ZipCrypto).

    Readable by ``unzip -P``, 7-Zip, Windows Explorer and Python's ``zipfile`` (``pwd=``).
    The 12-byte encryption header is 11 random bytes plus the CRC's high byte as check byte
    (no data descriptor). Entries over 4 GiB are refused (no ZIP64 here).
    """
    if not password:
        msg = "input password is empty or null"
        raise PackagingError(msg, stage="zip")
    crc = zlib.crc32(data) & 0xFFFFFFFF
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush()
    header = random_bytes(11) + bytes([crc >> 24])
    payload = _zipcrypto_encrypt(header + deflated, password)
    if len(data) > _MAX_ZIP32 or len(payload) > _MAX_ZIP32:
        msg = "entry too large for a ZipCrypto zip (no ZIP64 support)"
        raise PackagingError(msg, stage="zip")
    try:
        name = entry_name.encode("ascii")
        flags = 0x0001
    except UnicodeEncodeError:
        name = entry_name.encode("utf-8")
        flags = 0x0001 | 0x0800
    year, month, day, hour, minute, second = _date_time(modified)
    dos_time = (hour << 11) | (minute << 5) | (second // 2)
    dos_date = ((year - 1980) << 9) | (month << 5) | day
    common = struct.pack(
        "<HHHHIII", flags, 8, dos_time, dos_date, crc, len(payload), len(data)
    )  # flags, method, time, date, crc, sizes
    local = struct.pack("<IH", 0x04034B50, 20) + common + struct.pack("<HH", len(name), 0) + name
    central = (
        struct.pack("<IHH", 0x02014B50, 20, 20)
        + common
        + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, 0)
        + name
    )
    offset = len(local) + len(payload)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    return local + payload + central + end


# --- security levels --------------------------------------------------------------------


def encrypt_csv(
    csv_bytes: bytes,
    level: str,
    *,
    password: str | None,
    public_key_pem: bytes | None,
    salt: str | None = None,
    random_bytes: RandomBytes = os.urandom,
    new_uuid: UuidFactory = uuid.uuid4,
) -> bytes:
    """The file that goes into the zip (B8.3, second column; done when the CSV is written).

    TEXT_KEY: encrypted with the request key (``password`` = ``encryption_key``, decrypted
    via ``salt``); a missing/empty key fails like Sunbird (batch message ``"null"``).
    PUBLIC_KEY: encrypted with ``public_key_pem`` (the PEM at the org's
    ``exhaustEncryptionKey`` URL). Other levels: ``csv_bytes`` unchanged.
    """
    if level == TEXT_KEY_ENCRYPTED_DATASET:
        key = request_key(password if password is not None else "", salt)
        if not key:
            msg = "no encryption key for a TEXT_KEY_ENCRYPTED_DATASET report"
            raise PackagingError(msg, stage="encrypt", upstream_message="null")
        return encrypt_file(
            csv_bytes, level, text_key=key, random_bytes=random_bytes, new_uuid=new_uuid
        )
    if level == PUBLIC_KEY_ENCRYPTED_DATASET:
        if public_key_pem is None:
            msg = "no org public key for a PUBLIC_KEY_ENCRYPTED_DATASET report"
            raise PackagingError(msg, stage="encrypt")
        return encrypt_file(
            csv_bytes,
            level,
            public_key_pem=public_key_pem,
            random_bytes=random_bytes,
            new_uuid=new_uuid,
        )
    return csv_bytes


def zip_secured(
    data: bytes,
    file_name: str,
    level: str,
    *,
    password: str | None,
    salt: str | None = None,
    modified: datetime | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> tuple[bytes, str] | None:
    """The zip written at save time (B8.3, third column), or ``None`` when none is written.

    ``data`` is what :func:`encrypt_csv` returned; the entry is named like ``file_name``'s last
    path segment; the returned name is ``file_name`` with ``csv`` -> ``zip``.
    PASSWORD_PROTECTED: ZipCrypto with the (decrypted) request key; no key -> plain zip; an
    empty key fails (zip4j refuses empty passwords). PLAIN/TEXT_KEY/PUBLIC_KEY: plain zip.
    """
    if not creates_zip(level):
        return None
    entry = _entry_name(file_name)
    zip_name = file_name.replace("csv", "zip")
    if level == PASSWORD_PROTECTED_DATASET and password is not None:
        key = request_key(password, salt) or ""
        protected = zipcrypto_zip(
            entry,
            data,
            zip4j_password_bytes(key),
            modified=modified,
            random_bytes=random_bytes,
        )
        return protected, zip_name
    return plain_zip(entry, data, modified=modified), zip_name


def secure(
    csv_bytes: bytes,
    file_name: str,
    level: str,
    *,
    password: str | None,
    public_key_pem: bytes | None,
    salt: str | None = None,
    modified: datetime | None = None,
    random_bytes: RandomBytes = os.urandom,
    new_uuid: UuidFactory = uuid.uuid4,
) -> tuple[bytes, str]:
    """Apply the security level to one report CSV: ``(final bytes, final file name)``.

    :func:`encrypt_csv` then :func:`zip_secured`. ``password`` is the request's
    ``encryption_key`` as stored and ``salt`` the ``sunbird_encryption_key`` setting (``None``:
    the key is used verbatim). For ``""``/unknown levels nothing is produced and the CSV comes
    back unchanged with its own name — :func:`download_url` still says ``.zip``.
    Raises :class:`PackagingError`.
    """
    data = encrypt_csv(
        csv_bytes,
        level,
        password=password,
        public_key_pem=public_key_pem,
        salt=salt,
        random_bytes=random_bytes,
        new_uuid=new_uuid,
    )
    zipped = zip_secured(
        data,
        file_name,
        level,
        password=password,
        salt=salt,
        modified=modified,
        random_bytes=random_bytes,
    )
    return zipped if zipped is not None else (csv_bytes, file_name)
