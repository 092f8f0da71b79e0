"""PII decryption (B7.3, docs/flows/userinfo-exhaust.md): known ciphertexts, pass-through
rules, lenient Base64."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from lernflow.reports.decrypt import (
    AES_KEY,
    decrypt_pii,
    encrypt_pii,
    is_java_blank,
    lenient_b64decode,
    normalise_salt,
    sun_misc_b64encode,
)
from tests.paths import DATA

TEST_SALT = "Kestrel"  # the report jobs' sunbird_encryption_key in these tests

# A three-layer ciphertext made by us with the cryptography package (not with reports.decrypt):
# each layer is AES/ECB/PKCS7 of salt + inner text, Base64 in 76-character lines.
PII = json.loads((DATA / "reports" / "pii_ciphertext.json").read_text())
KNOWN_SALT: str = PII["salt"]
KNOWN_PLAIN: str = PII["plaintext"]


def load(name: str) -> Any:
    return json.loads((DATA / "reports" / name).read_text())


def restored_ciphertext() -> str:
    value: str = PII["ciphertext"]
    assert "\n" in value
    return value


def test_known_ciphertext_decrypts_bit_exactly():
    assert decrypt_pii(restored_ciphertext(), KNOWN_SALT) == KNOWN_PLAIN


def test_encrypt_reproduces_the_known_ciphertext():
    assert encrypt_pii(KNOWN_PLAIN, KNOWN_SALT) == restored_ciphertext()


def test_stored_value_with_lost_line_breaks_is_not_decryptable_and_passes_through():
    """A cache that turned the line breaks into plain "n" holds text that is no ciphertext."""
    value: str = PII["stored"]
    assert value == restored_ciphertext().replace("\n", "n")
    assert len(lenient_b64decode(value)) % 16 != 0  # not a whole number of AES blocks
    assert decrypt_pii(value, KNOWN_SALT) == value
    assert decrypt_pii(value, TEST_SALT) == value
    assert decrypt_pii(restored_ciphertext(), KNOWN_SALT) == KNOWN_PLAIN  # the positive twin


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


def test_userinfo_cache_pii_is_plain_and_passes_through():
    """B10.2 derived CSV: plaintext e-mails/names come out unchanged."""
    seed = load("world.json")["user_cache"]["userinfo"]
    checked = 0
    for fields in seed.values():
        for name in ("email", "phone", "firstname", "lastname"):
            if name in fields:
                assert decrypt_pii(fields[name], TEST_SALT) == fields[name]
                checked += 1
    assert checked > 10
    assert decrypt_pii("Odile Brannigan", TEST_SALT) == "Odile Brannigan"
    assert decrypt_pii("tomas@heron.example", TEST_SALT) == "tomas@heron.example"
    assert decrypt_pii(encrypt_pii("tomas@heron.example", TEST_SALT), TEST_SALT) == (
        "tomas@heron.example"
    )


def test_request_key_of_the_upstream_tests_is_its_own_password():
    # B10.2: a request key that is not a ciphertext is its own zip password
    assert decrypt_pii("pond-key-7", TEST_SALT) == "pond-key-7"
    assert decrypt_pii("pond-key-77", TEST_SALT) == "pond-key-77"


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
    raw = padder.update(b"Kestrel\xff\xfeab") + padder.finalize()
    encryptor = Cipher(algorithms.AES(AES_KEY), modes.ECB()).encryptor()
    layer = base64.b64encode(encryptor.update(raw) + encryptor.finalize()).decode()
    # one layer only: the second decoding of "\ufffd\ufffdab" fails, so the input comes back
    assert decrypt_pii(layer, TEST_SALT) == layer
