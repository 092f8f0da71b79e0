"""PII decryption (spec B7.3): known ciphertexts, pass-through rules, lenient Base64."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from reports.decrypt import (
    AES_KEY,
    decrypt_pii,
    encrypt_pii,
    is_java_blank,
    lenient_b64decode,
    normalise_salt,
    sun_misc_b64encode,
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


def test_request_key_of_the_upstream_tests_is_its_own_password():
    # "Zip is password protected (ZipCrypto) with DecryptUtil.decryptData('test12') = 'test12'"
    assert decrypt_pii("test12", TEST_SALT) == "test12"
    assert decrypt_pii("test123", TEST_SALT) == "test123"


@pytest.mark.parametrize("value", ["", " ", "\t\n\r", "\u2003", "\u3000 \x1c"])
def test_blank_values_are_returned_unchanged(value):
    assert is_java_blank(value)
    assert decrypt_pii(value, TEST_SALT) == value


def test_no_break_spaces_are_not_blank_but_still_pass_through():
    assert not is_java_blank("\u00a0")
    assert decrypt_pii("\u00a0", TEST_SALT) == "\u00a0"


def test_input_is_trimmed_before_decoding_but_failures_return_it_untrimmed():
    cipher = encrypt_pii("a@b.c", TEST_SALT)
    assert decrypt_pii(f"  \n{cipher}\t ", TEST_SALT) == "a@b.c"
    assert decrypt_pii("  plain text  ", TEST_SALT) == "  plain text  "


def test_salt_control_characters_count_as_two_characters():
    assert normalise_salt("a\rb\tc\nd") == "a\\rb\\tc\\nd"
    assert normalise_salt(normalise_salt("x\ny")) == "x\\ny"
    cipher = encrypt_pii("secret", "k\ney")
    assert decrypt_pii(cipher, "k\ney") == "secret"
    assert decrypt_pii(cipher, "k\\ney") == "secret"
    # a 4-character salt would leave "\\" of the salt in front... and fail on the next layer
    assert decrypt_pii(cipher, "k\ny") == cipher


def test_plaintext_shorter_than_the_salt_returns_the_input():
    cipher = encrypt_pii("x", "")
    assert decrypt_pii(cipher, "") == "x"
    assert decrypt_pii(cipher, "a-very-long-salt-value") == cipher


def test_empty_salt_and_empty_ciphertext():
    # SunJCE decrypts an empty input to nothing; with an empty salt that is a valid result
    assert decrypt_pii("====", "") == ""
    assert decrypt_pii("====", TEST_SALT) == "===="


def test_salt_length_counts_utf16_units():
    cipher = encrypt_pii("value", "\U0001f600")
    assert decrypt_pii(cipher, "\U0001f600") == "value"
    assert decrypt_pii(cipher, "ab") == "value"  # same UTF-16 length
    # one unit too few splits the emoji: Java keeps the lone low surrogate, and the next
    # layer's Base64 decoding skips it
    assert decrypt_pii(cipher, "a") == "\ude00value"


def test_sun_misc_encoding_breaks_lines_after_57_bytes():
    data = bytes(range(200))
    text = sun_misc_b64encode(data)
    lines = text.split("\n")
    assert [len(line) for line in lines] == [76, 76, 76, 40]
    assert base64.b64decode("".join(lines)) == data
    assert sun_misc_b64encode(bytes(57)).endswith("\n")
    assert sun_misc_b64encode(b"") == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),  # padding optional
        ("aGVs\nbG8=", b"hello"),  # line breaks skipped
        ("a G*V%s bG8", b"hello"),  # anything outside the alphabet skipped
        ("aGVsbG8=garbage", b"hello"),  # the first "=" ends the input
        ("-_-_", base64.b64decode("+/+/")),  # URL-safe alphabet too
        ("+/+/", base64.b64decode("+/+/")),
        ("QUJD\u00e9RA", b"ABCD"),  # non-ASCII skipped, 2 trailing chars -> 1 byte
        ("QUJDR", b"ABC"),  # 1 trailing char ignored
        ("", b""),
    ],
)
def test_lenient_b64decode(text, expected):
    assert lenient_b64decode(text) == expected


@given(st.binary(max_size=300))
def test_lenient_b64decode_inverts_standard_encoding(data):
    assert lenient_b64decode(base64.b64encode(data).decode()) == data
    assert lenient_b64decode(sun_misc_b64encode(data)) == data


@given(st.text(max_size=120), st.text(max_size=24))
def test_decrypt_inverts_encrypt(value, salt):
    cipher = encrypt_pii(value, salt)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value + salt):
        return  # lone surrogates are not representable in UTF-8 (Java writes "?")
    assert decrypt_pii(cipher, salt) == value


def test_text_with_invalid_utf8_is_replaced_not_rejected():
    # a layer whose plaintext is not UTF-8: Java substitutes U+FFFD and carries on
    padder = padding.PKCS7(128).padder()
    raw = padder.update(b"SunBird\xff\xfeab") + padder.finalize()
    encryptor = Cipher(algorithms.AES(AES_KEY), modes.ECB()).encryptor()
    layer = base64.b64encode(encryptor.update(raw) + encryptor.finalize()).decode()
    # one layer only: the second decoding of "\ufffd\ufffdab" fails, so the input comes back
    assert decrypt_pii(layer, TEST_SALT) == layer
