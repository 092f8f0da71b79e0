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
from hypothesis import given, settings
from hypothesis import strategies as st

from lernflow.reports.decrypt import encrypt_pii
from lernflow.reports.packaging import (
    IST,
    PASSWORD_PROTECTED_DATASET,
    PLAIN_DATASET,
    PUBLIC_KEY_ENCRYPTED_DATASET,
    REPORTS,
    SECURITY_LEVELS,
    TEXT_KEY_ENCRYPTED_DATASET,
    PackagingError,
    creates_zip,
    decrypt_secured_file,
    download_url,
    encrypt_csv,
    exhaust_encryption_key_url,
    exhaust_file_path,
    org_search_request,
    plain_zip,
    report_date,
    request_key,
    secure,
    text_key_cipher_key,
    zip4j_password_bytes,
    zip_object_key,
    zip_secured,
    zipcrypto_zip,
)
from tests.paths import DATA
from tests.unit.test_reports_progress import EXPECTED_CSV

SALT = "Kestrel"
NOW = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)
REQUEST_ID = "9F2C61D0A7B34E58B1C4D2E6F8A01B37"
KEY = "pond-key-7"  # a request encryption key that is no ciphertext: its own password
CSV_NAME = "bt-101_progress_20240101.csv"
CSV_URL = f"progress-exhaust/{REQUEST_ID}/{CSV_NAME}"


@cache
def fixture(name: str) -> Any:
    return json.loads((DATA / "reports" / name).read_text())


@cache
def derived_csv() -> bytes:
    """The derived CSV of the progress "all correct data" case, as written (``\\n``, UTF-8)."""
    return ("\n".join(EXPECTED_CSV) + "\n").encode("utf-8")


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


def test_report_date_is_ist():
    assert report_date(datetime(2024, 1, 1, 18, 29, tzinfo=UTC)) == "20240101"
    assert report_date(datetime(2024, 1, 1, 18, 30, tzinfo=UTC)) == "20240102"
    assert report_date(datetime(2024, 1, 2, 0, 10, tzinfo=IST)) == "20240102"
    with pytest.raises(ValueError, match="timezone-aware"):
        report_date(datetime(2024, 1, 1))


def test_exhaust_file_path():
    rid = REQUEST_ID
    for job_id, (path, key) in REPORTS.items():
        assert exhaust_file_path(path, "bt-101", key, rid, NOW) == (
            f"{job_id}/{rid}/bt-101_{key}_20240101"
        )
        assert exhaust_file_path(path, "bt-101", key, "", NOW) == f"{job_id}/bt-101_{key}_20240101"
    assert exhaust_file_path("progress-exhaust/", "b", "progress", None, NOW).count("/") == 1


def test_url_rewrite_and_zip_key():
    assert download_url(CSV_URL) == CSV_URL[:-4] + ".zip"
    # ".csv" vs "csv": the stored URL and the uploaded key differ for ids containing "csv"
    odd = "progress-exhaust/rid-csv/batch.csv_x_progress_20240101.csv"
    assert download_url(odd) == "progress-exhaust/rid-csv/batch.zip_x_progress_20240101.zip"
    assert zip_object_key(odd) == "progress-exhaust/rid-zip/batch.zip_x_progress_20240101.zip"


def test_creates_zip():
    assert all(creates_zip(level) for level in SECURITY_LEVELS)
    assert not creates_zip("")
    assert not creates_zip("SOMETHING_ELSE")


# --- levels -----------------------------------------------------------------------------


def test_plain_dataset_is_a_plain_deflated_zip():
    data, name = secure(derived_csv(), CSV_URL, PLAIN_DATASET, password=KEY, public_key_pem=None)
    assert name == download_url(CSV_URL)
    info = only_entry(data)
    assert info.filename == CSV_NAME
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert not info.flag_bits & 0x1
    assert zipfile.ZipFile(io.BytesIO(data)).read(CSV_NAME) == derived_csv()


def test_password_protected_dataset_uses_zipcrypto_with_the_request_key():
    """B10.2 "all users for a batch": ZipCrypto, password decryptData(key) = key."""
    data, name = secure(
        derived_csv(),
        CSV_NAME,
        PASSWORD_PROTECTED_DATASET,
        password=KEY,
        public_key_pem=None,
        salt=SALT,
    )
    assert name == "bt-101_progress_20240101.zip"
    info = only_entry(data)
    assert info.flag_bits & 0x1  # encrypted
    assert info.compress_type == zipfile.ZIP_DEFLATED
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.read(CSV_NAME, pwd=KEY.encode()) == derived_csv()
    with pytest.raises(RuntimeError, match="password required"):
        archive.read(CSV_NAME)
    with pytest.raises((RuntimeError, zipfile.BadZipFile, zlib.error)):
        archive.read(CSV_NAME, pwd=b"test13")


def test_password_protected_dataset_decrypts_an_encrypted_request_key():
    key = encrypt_pii("s3cr3t-pass", SALT)
    data, _ = secure(
        b"a,b\n", CSV_NAME, PASSWORD_PROTECTED_DATASET, password=key, public_key_pem=None, salt=SALT
    )
    assert zipfile.ZipFile(io.BytesIO(data)).read(CSV_NAME, pwd=b"s3cr3t-pass") == b"a,b\n"
    assert request_key(key, SALT) == "s3cr3t-pass"
    assert request_key(key, None) == key
    assert request_key(None, SALT) is None


def test_password_protected_dataset_without_key_is_a_plain_zip():
    data, name = secure(
        b"a,b\n", CSV_NAME, PASSWORD_PROTECTED_DATASET, password=None, public_key_pem=None
    )
    assert name.endswith(".zip")
    assert not only_entry(data).flag_bits & 0x1
    assert zipfile.ZipFile(io.BytesIO(data)).read(CSV_NAME) == b"a,b\n"


def test_password_protected_dataset_with_empty_key_fails_at_zip_time():
    with pytest.raises(PackagingError) as err:
        secure(b"a", CSV_NAME, PASSWORD_PROTECTED_DATASET, password="", public_key_pem=None)
    assert err.value.stage == "zip"


def test_text_key_dataset_zips_the_encrypted_file():
    data, name = secure(
        derived_csv(),
        CSV_URL,
        TEXT_KEY_ENCRYPTED_DATASET,
        password=KEY,
        public_key_pem=None,
        salt=SALT,
    )
    assert name == download_url(CSV_URL)
    info = only_entry(data)
    assert info.filename == CSV_NAME
    assert not info.flag_bits & 0x1  # the zip itself is plain
    inner = zipfile.ZipFile(io.BytesIO(data)).read(CSV_NAME)
    assert inner.startswith(b"TEXT_KEY_ENCRYPTED_DATASET\n")
    assert decrypt_secured_file(inner, text_key=KEY) == (
        TEXT_KEY_ENCRYPTED_DATASET,
        derived_csv(),
    )


def test_text_key_file_format_is_exact():
    """Rebuild the file independently from the B8.3 rules (docs/flows/progress-exhaust.md) with
    the same randomness."""
    csv = derived_csv()
    out = encrypt_csv(
        csv,
        TEXT_KEY_ENCRYPTED_DATASET,
        password=KEY,
        public_key_pem=None,
        salt=SALT,
        random_bytes=fixed_random,
        new_uuid=lambda: FIXED_UUID,
    )
    file_key = hashlib.pbkdf2_hmac("sha256", str(FIXED_UUID).encode(), bytes(range(128)), 1000, 32)
    user_key = hashlib.md5(KEY.encode()).hexdigest().upper().encode()
    assert text_key_cipher_key(KEY) == user_key
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


def test_text_key_dataset_without_key_fails_the_batch_like_upstream():
    for password in (None, ""):
        with pytest.raises(PackagingError) as err:
            secure(
                b"a", CSV_NAME, TEXT_KEY_ENCRYPTED_DATASET, password=password, public_key_pem=None
            )
        assert (err.value.stage, err.value.batch_message) == ("encrypt", "null")


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


def test_public_key_dataset_errors():
    with pytest.raises(PackagingError) as err:
        secure(b"a", CSV_NAME, PUBLIC_KEY_ENCRYPTED_DATASET, password=None, public_key_pem=None)
    assert err.value.stage == "encrypt"
    with pytest.raises(PackagingError, match="invalid org public key"):
        secure(b"a", CSV_NAME, PUBLIC_KEY_ENCRYPTED_DATASET, password=None, public_key_pem=b"nope")


@pytest.mark.parametrize("level", ["", "UNKNOWN_LEVEL"])
def test_empty_or_unknown_level_writes_nothing_but_url_still_says_zip(level):
    assert secure(b"a,b\n", CSV_URL, level, password=KEY, public_key_pem=None) == (
        b"a,b\n",
        CSV_URL,
    )
    assert zip_secured(b"a,b\n", CSV_URL, level, password=KEY) is None
    assert encrypt_csv(b"a,b\n", level, password=KEY, public_key_pem=None) == b"a,b\n"
    assert download_url(CSV_URL).endswith(".zip")


def test_plain_levels_do_not_touch_the_csv_before_zipping():
    for level in (PLAIN_DATASET, PASSWORD_PROTECTED_DATASET):
        assert encrypt_csv(b"x", level, password="k", public_key_pem=None) == b"x"


# --- org search -------------------------------------------------------------------------


def test_org_public_key_url_from_org_search():
    response = fixture("org_search_with_exhaust_key.json")
    assert exhaust_encryption_key_url(response) == (
        "https://keys.heron.example/organisation/lf-org-heron/heron_exhaust_public.pem"
    )
    assert exhaust_encryption_key_url(None) == ""
    assert exhaust_encryption_key_url({"result": {"response": {"content": []}}}) == ""
    assert org_search_request("0126", "tn") == {"request": {"filters": {"id": "0126"}}}
    assert org_search_request("", "tn") == {
        "request": {"filters": {"channel": "tn", "isTenant": True}}
    }


# --- ZipCrypto --------------------------------------------------------------------------


def test_zipcrypto_zip_metadata():
    modified = datetime(2024, 5, 6, 7, 8, 10)  # zip times are local wall-clock times
    data = zipcrypto_zip(
        "a.csv", b"hello\n" * 50, b"pw", modified=modified, random_bytes=fixed_random
    )
    info = only_entry(data)
    assert info.date_time == (2024, 5, 6, 7, 8, 10)
    assert info.file_size == 300
    deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    deflated = deflate.compress(b"hello\n" * 50) + deflate.flush()
    assert info.compress_size == 12 + len(deflated)  # encryption header + deflated data
    assert zlib.crc32(b"hello\n" * 50) == info.CRC
    archive = zipfile.ZipFile(io.BytesIO(data))
    archive.setpassword(b"pw")
    assert archive.testzip() is None
    assert zipfile.ZipFile(io.BytesIO(data)).read("a.csv", pwd=b"pw") == b"hello\n" * 50


def test_zipcrypto_non_ascii_entry_name_is_flagged_utf8():
    data = zipcrypto_zip("r\u00e9sum\u00e9.csv", b"x", b"pw")
    info = only_entry(data)
    assert info.filename == "r\u00e9sum\u00e9.csv"
    assert info.flag_bits & 0x800
    plain = plain_zip("r\u00e9sum\u00e9.csv", b"x")
    assert zipfile.ZipFile(io.BytesIO(plain)).read("r\u00e9sum\u00e9.csv") == b"x"


def test_zipcrypto_refuses_empty_passwords():
    with pytest.raises(PackagingError, match="empty"):
        zipcrypto_zip("a", b"x", b"")


def test_zip4j_password_bytes():
    assert zip4j_password_bytes(KEY) == KEY.encode()
    assert zip4j_password_bytes("caf\u00e9") == b"caf\xe9"
    assert zip4j_password_bytes("\u20ac") == b"\xac"  # low byte of the UTF-16 unit


def test_non_latin1_password_opens_with_zip4j_bytes():
    data, _ = secure(
        b"data", CSV_NAME, PASSWORD_PROTECTED_DATASET, password="p\u20acss", public_key_pem=None
    )
    assert zipfile.ZipFile(io.BytesIO(data)).read(CSV_NAME, pwd=b"p\xacss") == b"data"


def test_unzip_reads_our_zipcrypto_zip(tmp_path: Path):
    assert shutil.which("unzip"), "unzip is missing: make setup installs it"
    data, name = secure(
        derived_csv(), CSV_NAME, PASSWORD_PROTECTED_DATASET, password=KEY, public_key_pem=None
    )
    target = tmp_path / name
    target.write_bytes(data)
    ok = subprocess.run(
        ["unzip", "-P", KEY, "-p", str(target), CSV_NAME], capture_output=True, check=False
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


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=3000),
    password=st.binary(min_size=1, max_size=40),
    header=st.binary(min_size=11, max_size=11),
)
def test_zipcrypto_round_trip(data, password, header):
    archive = zipcrypto_zip("entry.csv", data, password, random_bytes=lambda n: header[:n])
    zf = zipfile.ZipFile(io.BytesIO(archive))
    assert zf.read("entry.csv", pwd=password) == data
    with pytest.raises(RuntimeError, match="password required"):
        zf.read("entry.csv")


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=2000), key=st.text(min_size=1, max_size=30))
def test_text_key_round_trip(data, key):
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in key):
        return  # not encodable as UTF-8
    out = encrypt_csv(data, TEXT_KEY_ENCRYPTED_DATASET, password=key, public_key_pem=None)
    assert decrypt_secured_file(out, text_key=key) == (TEXT_KEY_ENCRYPTED_DATASET, data)
