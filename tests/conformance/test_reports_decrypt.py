"""PII decryption (spec B7.3): known ciphertexts, pass-through rules, lenient Base64."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lernflow.reports.decrypt import (
    AES_KEY,
    decrypt_pii,
    encrypt_pii,
    lenient_b64decode,
)
from tests.conformance.conftest import SUNBIRD_FIXTURES

TEST_SALT = "SunBird"  # sunbird_encryption_key in the upstream report tests


def load(*parts: str) -> Any:
    return json.loads(SUNBIRD_FIXTURES.joinpath(*parts).read_text())


def fixture_ciphertext() -> str:
    """``encEmail`` of the user-read fixture (also cached as email/phone in the Redis fixtures)."""
    return str(load("usercache", "v2_userread_user4.json")["result"]["response"]["encEmail"])


# The fixture value is a user-service ciphertext whose line break (sun.misc Base64 writes
# one after 76 characters) has become a plain "n" in the fixtures. With the line break put
# back it is a real three-layer ciphertext: salt "6&A?Tqc}", plaintext below.
KNOWN_SALT = "6&A?Tqc}"
KNOWN_PLAIN = "loadtest+3310@gmail.com"


def restored_ciphertext() -> str:
    value = fixture_ciphertext()
    assert value[76] == "n"
    return value[:76] + "\n" + value[77:]


def test_known_ciphertext_decrypts_bit_exactly():
    assert decrypt_pii(restored_ciphertext(), KNOWN_SALT) == KNOWN_PLAIN


def test_encrypt_reproduces_the_known_ciphertext():
    assert encrypt_pii(KNOWN_PLAIN, KNOWN_SALT) == restored_ciphertext()


def test_fixture_value_as_stored_is_not_decryptable_and_passes_through():
    value = fixture_ciphertext()
    assert len(lenient_b64decode(value)) == 113  # not a whole number of AES blocks
    assert decrypt_pii(value, KNOWN_SALT) == value
    assert decrypt_pii(value, TEST_SALT) == value


def test_every_layer_carries_the_salt():
    layer = restored_ciphertext()
    for _ in range(3):
        decryptor = Cipher(algorithms.AES(AES_KEY), modes.ECB()).decryptor()
        raw = decryptor.update(base64.b64decode(layer.replace("\n", ""))) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        text = (unpadder.update(raw) + unpadder.finalize()).decode()
        assert text.startswith(KNOWN_SALT)
        layer = text[len(KNOWN_SALT) :]
    assert layer == KNOWN_PLAIN


def test_userinfo_fixture_pii_is_plain_and_passes_through():
    """B10.2 derived CSV: plaintext e-mails/names come out unchanged."""
    seed = load("reports", "redis_user_cache_seed_userinfo_test_db0.json")
    for fields in seed.values():
        for name in ("email", "phone", "firstname", "lastname"):
            if name in fields:
                assert decrypt_pii(fields[name], TEST_SALT) == fields[name]
    assert decrypt_pii("Manju Kapoor", TEST_SALT) == "Manju Kapoor"
    assert decrypt_pii("mahesh@ilimi.in", TEST_SALT) == "mahesh@ilimi.in"
