"""Report file naming, security levels, ZipCrypto zips and the encrypted-file format (B8)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import uuid
import zipfile
import zlib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lernflow.reports.packaging import (
    PASSWORD_PROTECTED_DATASET,
    PLAIN_DATASET,
    PUBLIC_KEY_ENCRYPTED_DATASET,
    TEXT_KEY_ENCRYPTED_DATASET,
    decrypt_secured_file,
    download_url,
    encrypt_csv,
    exhaust_encryption_key_url,
    org_search_request,
    secure,
    text_key_cipher_key,
)
from tests.conformance.conftest import SUNBIRD_FIXTURES

SALT = "SunBird"
NOW = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)
CSV_NAME = "batch-001_progress_20240101.csv"
CSV_URL = f"progress-exhaust/37564CF8F134EE7532F125651B51D17F/{CSV_NAME}"


@cache
def fixture(name: str) -> Any:
    return json.loads((SUNBIRD_FIXTURES / "reports" / name).read_text())


@cache
def derived_csv() -> bytes:
    """The derived CSV of the progress "all correct data" case, as written (``\\n``, UTF-8)."""
    case = fixture("test_cases_progress_exhaust.json")["cases"][0]
    return ("\n".join(case["derived_csv_rows_any_order"]) + "\n").encode("utf-8")


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem() -> bytes:
    return (
        rsa_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def private_pem() -> bytes:
    return rsa_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def fixed_random(n: int) -> bytes:
    return bytes(range(n))


FIXED_UUID = uuid.UUID("0b5f2a54-9c1e-4d7a-8f3b-2e6c1d9a7f40")


def only_entry(data: bytes) -> zipfile.ZipInfo:
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert len(infos) == 1
    return infos[0]


# --- naming -----------------------------------------------------------------------------


# --- levels -----------------------------------------------------------------------------


def test_plain_dataset_is_a_plain_deflated_zip():
    data, name = secure(
        derived_csv(), CSV_URL, PLAIN_DATASET, password="test12", public_key_pem=None
    )
    assert name == download_url(CSV_URL)
    info = only_entry(data)
    assert info.filename == CSV_NAME
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert not info.flag_bits & 0x1
    assert zipfile.ZipFile(io.BytesIO(data)).read(CSV_NAME) == derived_csv()


def test_password_protected_dataset_uses_zipcrypto_with_the_request_key():
    """B10.2 "all users for a batch": ZipCrypto, password decryptData('test12') = 'test12'."""
    data, name = secure(
        derived_csv(),
        CSV_NAME,
        PASSWORD_PROTECTED_DATASET,
        password="test12",
        public_key_pem=None,
        salt=SALT,
    )
    assert name == "batch-001_progress_20240101.zip"
    info = only_entry(data)
    assert info.flag_bits & 0x1  # encrypted
    assert info.compress_type == zipfile.ZIP_DEFLATED
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.read(CSV_NAME, pwd=b"test12") == derived_csv()
    with pytest.raises(RuntimeError, match="password required"):
        archive.read(CSV_NAME)
    with pytest.raises((RuntimeError, zipfile.BadZipFile, zlib.error)):
        archive.read(CSV_NAME, pwd=b"test13")


def test_text_key_dataset_zips_the_encrypted_file():
    data, name = secure(
        derived_csv(),
        CSV_URL,
        TEXT_KEY_ENCRYPTED_DATASET,
        password="test12",
        public_key_pem=None,
        salt=SALT,
    )
    assert name == download_url(CSV_URL)
    info = only_entry(data)
    assert info.filename == CSV_NAME
    assert not info.flag_bits & 0x1  # the zip itself is plain
    inner = zipfile.ZipFile(io.BytesIO(data)).read(CSV_NAME)
    assert inner.startswith(b"TEXT_KEY_ENCRYPTED_DATASET\n")
    assert decrypt_secured_file(inner, text_key="test12") == (
        TEXT_KEY_ENCRYPTED_DATASET,
        derived_csv(),
    )


def test_text_key_file_format_is_exact():
    """Rebuild the file independently from spec B8.3 with the same randomness."""
    csv = derived_csv()
    out = encrypt_csv(
        csv,
        TEXT_KEY_ENCRYPTED_DATASET,
        password="test12",
        public_key_pem=None,
        salt=SALT,
        random_bytes=fixed_random,
        new_uuid=lambda: FIXED_UUID,
    )
    file_key = hashlib.pbkdf2_hmac("sha256", str(FIXED_UUID).encode(), bytes(range(128)), 1000, 32)
    user_key = hashlib.md5(b"test12").hexdigest().upper().encode()
    assert text_key_cipher_key("test12") == user_key
    assert len(user_key) == 32

    def cbc(key: bytes, data: bytes) -> bytes:
        padder = padding.PKCS7(128).padder()
        enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
        return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()

    expected = (
        b"TEXT_KEY_ENCRYPTED_DATASET\n"
        + base64.b64encode(cbc(user_key, file_key))
        + b"\n"
        + cbc(file_key, csv)
    )
    assert out == expected
    assert len(base64.b64decode(out.split(b"\n")[1])) == 48


def test_public_key_dataset_uses_the_org_key():
    data, name = secure(
        derived_csv(),
        CSV_URL,
        PUBLIC_KEY_ENCRYPTED_DATASET,
        password="ignored",
        public_key_pem=public_pem(),
    )
    assert name == download_url(CSV_URL)
    inner = zipfile.ZipFile(io.BytesIO(data)).read(CSV_NAME)
    level, key_line, _ = inner.split(b"\n", 2)
    assert level == b"PUBLIC_KEY_ENCRYPTED_DATASET"
    encrypted_key = base64.b64decode(key_line)
    assert len(encrypted_key) == 256  # RSA-2048, PKCS#1 v1.5
    assert len(rsa_key().decrypt(encrypted_key, asym_padding.PKCS1v15())) == 32
    assert decrypt_secured_file(inner, private_key_pem=private_pem()) == (
        PUBLIC_KEY_ENCRYPTED_DATASET,
        derived_csv(),
    )


# --- org search -------------------------------------------------------------------------


def test_org_public_key_url_from_org_search():
    response = fixture("org_search_private_with_exhaustEncryptionKey.json")
    assert exhaust_encryption_key_url(response) == (
        "https://sunbirddevbbpublic.blob.core.windows.net/sunbird-content-dev/organisation/"
        "01269878797503692810/namratha_public.pem"
    )
    assert exhaust_encryption_key_url(None) == ""
    assert exhaust_encryption_key_url({"result": {"response": {"content": []}}}) == ""
    assert org_search_request("0126", "tn") == {"request": {"filters": {"id": "0126"}}}
    assert org_search_request("", "tn") == {
        "request": {"filters": {"channel": "tn", "isTenant": True}}
    }


# --- ZipCrypto --------------------------------------------------------------------------


def test_unzip_reads_our_zipcrypto_zip(tmp_path: Path):
    assert shutil.which("unzip"), "unzip is missing: make setup installs it"
    data, name = secure(
        derived_csv(), CSV_NAME, PASSWORD_PROTECTED_DATASET, password="test12", public_key_pem=None
    )
    target = tmp_path / name
    target.write_bytes(data)
    ok = subprocess.run(
        ["unzip", "-P", "test12", "-p", str(target), CSV_NAME], capture_output=True, check=False
    )
    assert ok.returncode == 0
    assert ok.stdout == derived_csv()
    listing = subprocess.run(
        ["unzip", "-Z", "-v", str(target)], capture_output=True, check=True, text=True
    )
    assert "encrypted" in listing.stdout
    bad = subprocess.run(
        ["unzip", "-P", "wrong", "-p", str(target), CSV_NAME], capture_output=True, check=False
    )
    assert bad.returncode != 0
    assert bad.stdout != derived_csv()
