"""The revocation status list (issue 18 item 3): W3C Bitstring Status List encoding, the signed
list credential (checked with joserfc, an independent JOSE library) and the offline check."""

from __future__ import annotations

import base64
import dataclasses
import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from lernflow.certificates import signing
from lernflow.certificates import status_list as sl
from lernflow.certificates.credential import build_credential
from lernflow.certificates.model import CertificateData

BASE = "https://certs.lernflow.example/certs"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_encoding_is_gzip_base64url_multibase_msb_first_16kib_minimum() -> None:
    encoded = sl.encode_bits([0, 9, 131071])
    assert encoded.startswith("u") and "=" not in encoded
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    assert len(raw) == 16 * 1024  # 131,072 bits, the spec's minimum
    assert raw[0] == 0x80 and raw[1] == 0x40 and raw[-1] == 0x01  # index 0 = leftmost bit
    assert sum(bin(b).count("1") for b in raw) == 3
    bits = sl.decode_bits(encoded)
    assert [i for i in (0, 1, 8, 9, 131071) if sl.bit_is_set(bits, i)] == [0, 9, 131071]
    packed = base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4))
    assert packed[4:8] == bytes(4)  # no timestamp in the GZIP header: same bits, same text


def test_the_list_grows_in_16kib_steps_and_refuses_short_or_outside() -> None:
    assert sl.list_length(0) == sl.list_length(131072) == 131072
    assert sl.list_length(131073) == 262144
    with pytest.raises(ValueError, match="at least"):
        sl.encode_bits([], 8 * 1024)
    with pytest.raises(ValueError, match="outside"):
        sl.encode_bits([131072])
    short = "u" + base64.urlsafe_b64encode(gzip.compress(bytes(100))).decode().rstrip("=")
    with pytest.raises(sl.StatusListError, match="fewer than"):
        sl.decode_bits(short)
    with pytest.raises(sl.StatusListError, match="multibase"):
        sl.decode_bits("zabc")
    with pytest.raises(sl.StatusListError, match="decoded"):
        sl.decode_bits("uAAAA")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> signing.SigningKey:
    return signing.generate_keys(tmp_path_factory.mktemp("keys"))


def test_list_credential_verifies_with_the_exported_jwks_in_joserfc(
    key: signing.SigningKey,
) -> None:
    vc = sl.status_list_credential(BASE, f"{BASE}/issuer", [5], allocated=10, issued_at=NOW)
    assert vc["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert vc["id"] == f"{BASE}/status/revocation"
    assert vc["credentialSubject"]["type"] == "BitstringStatusList"
    assert vc["credentialSubject"]["statusPurpose"] == "revocation"
    token = sl.sign_status_list(vc, key)
    keyset = KeySet.import_key_set(signing.jwks({key.kid: key.public_key}))  # type: ignore[arg-type]
    decoded = jose_jwt.decode(token, keyset, algorithms=["ES256"])
    assert decoded.header["kid"] == key.kid
    listed = decoded.claims["vc"]
    assert sl.bit_is_set(sl.decode_bits(listed["credentialSubject"]["encodedList"]), 5)
    tampered = token.split(".")
    tampered[1] = tampered[1][:-4] + ("AAAA" if tampered[1][-4:] != "AAAA" else "BBBB")
    with pytest.raises(Exception):  # noqa: B017 - joserfc's BadSignatureError or a decode error
        jose_jwt.decode(".".join(tampered), keyset, algorithms=["ES256"])


def certificate(index: int | None) -> CertificateData:
    return CertificateData(
        cert_id="5d1c63e4-2f5a-4c1e-8a43-0b0b0b0b0b0b", recipient_id="u1", recipient_name="A",
        course_id="c", course_name="C", batch_id="b", certificate_name="n", template_id="t",
        issued_date="2026-12-01", issuer_name="I", issuer_url="https://i.example",
        verify_base_url=BASE, status_index=index,
    )  # fmt: skip


def test_offline_check_reports_revoked_only_for_the_set_bit(key: signing.SigningKey) -> None:
    keys = {key.kid: key.public_key}
    token = sl.sign_status_list(
        sl.status_list_credential(BASE, f"{BASE}/issuer", [7], allocated=8, issued_at=NOW), key
    )
    revoked = build_credential(certificate(7), f"{BASE}/issuer", key.kid, NOW)
    other = build_credential(certificate(6), f"{BASE}/issuer", key.kid, NOW)
    older = build_credential(certificate(None), f"{BASE}/issuer", key.kid, NOW)
    assert sl.check_status(revoked, token, keys) == sl.StatusAnswer(
        True, f"{BASE}/status/revocation", 7
    )
    answer = sl.check_status(other, token, keys)
    assert answer is not None and not answer.revoked
    assert sl.check_status(older, token, keys) is None  # issued before status lists


def test_offline_check_refuses_a_list_of_another_issuer_or_url(
    key: signing.SigningKey, tmp_path: Path
) -> None:
    vc = build_credential(certificate(3), f"{BASE}/issuer", key.kid, NOW)
    elsewhere = sl.status_list_credential(
        "https://other.example/certs", "x", [3], allocated=4, issued_at=NOW
    )
    with pytest.raises(sl.StatusListError, match="names"):
        sl.check_status(vc, sl.sign_status_list(elsewhere, key), {key.kid: key.public_key})
    stranger = signing.generate_keys(tmp_path)
    forged = sl.sign_status_list(
        sl.status_list_credential(BASE, "x", [], allocated=4, issued_at=NOW), stranger
    )
    with pytest.raises(sl.StatusListError, match="does not verify"):
        sl.check_status(vc, forged, {key.kid: key.public_key})
    broken = dataclasses.replace(certificate(3))
    vc_bad = build_credential(broken, f"{BASE}/issuer", key.kid, NOW)
    vc_bad["credentialStatus"]["statusListIndex"] = "x"
    with pytest.raises(sl.StatusListError, match="malformed"):
        sl.check_status(vc_bad, forged, {key.kid: key.public_key})
