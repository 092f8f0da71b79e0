"""Credential building, key handling, VC-JWT signing, and rejection of tampered tokens.

The credential is built from our own generate request (tests/data/certificates/gen.request.reissue.json).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from lernflow.certificates.credential import build_credential
from lernflow.certificates.model import CertificateData, Signatory, normalize_issued_date
from lernflow.certificates.signing import (
    SigningKey,
    VerificationError,
    generate_keys,
    jwk_thumbprint,
    jwks,
    load_public_keys,
    load_signing_key,
    sign_credential,
    verify_credential,
)
from tests.paths import DATA

ISSUED_AT = datetime(2024, 9, 30, tzinfo=UTC)
ISSUER_ID = "http://127.0.0.1:8080/certs/Issuer.json"


def data_from_event(name: str, cert_id: str | None = None) -> CertificateData:
    """CertificateData from one of our generate request files (issuedDate added)."""
    event = json.loads((DATA / "certificates" / name).read_text())
    edata = event["edata"]
    recipient = edata["data"][0]
    return CertificateData(
        cert_id=cert_id or str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        recipient_id=recipient["recipientId"],
        recipient_name=recipient["recipientName"],
        course_id=edata["related"]["courseId"],
        course_name=edata["courseName"],
        batch_id=edata["related"]["batchId"],
        certificate_name=edata["name"],
        template_id=edata["templateId"],
        issued_date="2024-09-30",
        issuer_name=edata["issuer"]["name"],
        issuer_url=edata["issuer"]["url"],
        signatories=tuple(Signatory(**s) for s in edata["signatoryList"]),
    )


@pytest.fixture(scope="module")
def data() -> CertificateData:
    return data_from_event("gen.request.reissue.json")


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def es_key(keydir: Path) -> SigningKey:
    return generate_keys(keydir, "ES256")


@pytest.fixture(scope="module")
def ed_key(keydir: Path) -> SigningKey:
    return generate_keys(keydir, "EdDSA", kid="ed-2025")


@pytest.fixture(scope="module")
def public_keys(keydir: Path, es_key: SigningKey, ed_key: SigningKey) -> dict[str, object]:
    return load_public_keys(keydir)


# -- credential ------------------------------------------------------------------------------


def test_credential_is_a_w3c_vc_carrying_recipient_course_issuer_and_signatories(data):
    vc = build_credential(data, ISSUER_ID, "kid-1", ISSUED_AT)
    assert vc["@context"][0] == "https://www.w3.org/2018/credentials/v1"
    assert vc["type"][0] == "VerifiableCredential"
    assert vc["id"] == f"urn:uuid:{data.cert_id}"
    assert vc["issuanceDate"] == "2024-09-30T00:00:00Z"
    assert vc["issuer"] == {
        "id": ISSUER_ID,
        "type": "Issuer",
        "name": "Lernflow Open School",
        "url": "https://school.lernflow.example/",
        "publicKey": ["kid-1"],
    }
    subject = vc["credentialSubject"]
    assert (subject["id"], subject["name"]) == ("urn:lernflow:user:lf_user_07", "Priya Natarajan")
    assert subject["badge"]["id"] == "do_lf_geometry_110"
    assert subject["badge"]["name"] == "Geometry Essentials"
    assert subject["badge"]["batchId"] == "lfbatch0930"
    assert subject["badge"]["certificateName"] == "Geometry Completion Award"
    assert vc["signatory"][0]["name"] == "Noor Haddad"
    assert vc["evidence"][0]["completedOn"] == "2024-09-30"
    assert "expirationDate" not in vc


def test_credential_is_deterministic_for_the_same_inputs(data):
    one = build_credential(data, ISSUER_ID, "k", ISSUED_AT)
    two = build_credential(data, ISSUER_ID, "k", ISSUED_AT)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)


def test_credential_badge_name_falls_back_to_the_certificate_name_without_a_course_name(data):
    no_course = CertificateData(**{**data.__dict__, "course_name": ""})
    vc = build_credential(no_course, ISSUER_ID, "k", ISSUED_AT)
    assert vc["credentialSubject"]["badge"]["name"] == "Geometry Completion Award"


def test_credential_refuses_a_naive_issuance_time(data):
    with pytest.raises(ValueError, match="timezone-aware"):
        build_credential(data, ISSUER_ID, "k", datetime(2024, 9, 30))


def test_certificate_data_validates_its_ids_and_dates(data):
    with pytest.raises(ValueError, match="UUID"):
        CertificateData(**{**data.__dict__, "cert_id": "../../etc"})
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        CertificateData(**{**data.__dict__, "issued_date": "2024-9-7"})
    with pytest.raises(ValueError, match="calendar"):
        CertificateData(**{**data.__dict__, "issued_date": "2024-02-30"})
    with pytest.raises(ValueError, match="expiry"):
        CertificateData(**{**data.__dict__, "expiry": "2x"})
    with pytest.raises(ValueError, match="9999"):
        CertificateData(**{**data.__dict__, "expiry": "9999y"})


@pytest.mark.parametrize(
    ("issued", "expiry", "expected"),
    [
        ("2024-09-30", "2m", "2024-11-30T00:00:00Z"),
        ("2024-09-30", "2D 2y", "2026-10-02T00:00:00Z"),
        ("2024-01-31", "1M", "2024-02-29T00:00:00Z"),  # a leap year: clamped to the 29th
        ("2023-01-31", "1M", "2023-02-28T00:00:00Z"),
        ("2024-09-30", "2026-01-01", "2026-01-01T00:00:00Z"),
        ("2024-09-30", "2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"),
        ("2024-09-30", "2026-01-01T10:00:00+05:30", "2026-01-01T04:30:00Z"),
    ],
)
def test_expiry_is_absolute_or_sunbird_relative_to_the_issue_date(data, issued, expiry, expected):
    changed = CertificateData(**{**data.__dict__, "issued_date": issued, "expiry": expiry})
    vc = build_credential(changed, ISSUER_ID, "k", ISSUED_AT)
    assert vc["expirationDate"] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-09-30", "2024-09-30"),
        ("2024-09-30T00:00:00Z", "2024-09-30"),
        ("2024-09-30T10:11:11.123+0530", "2024-09-30"),
        ("2024-9-7", "2024-09-07"),
    ],
)
def test_sunbird_issued_dates_normalise_to_iso_dates(raw, expected):
    assert normalize_issued_date(raw) == expected


@pytest.mark.parametrize("raw", ["2024-09", "", "30-09-2024", "2024-13-01"])
def test_unreadable_issued_dates_are_refused(raw):
    with pytest.raises(ValueError):
        normalize_issued_date(raw)


# -- keys ------------------------------------------------------------------------------------


def test_generated_keys_are_written_as_pem_files_with_a_private_mode(keydir, es_key, ed_key):
    for key in (es_key, ed_key):
        private = keydir / f"{key.kid}.private.pem"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert (keydir / f"{key.kid}.public.pem").read_text().startswith("-----BEGIN PUBLIC KEY")
    assert (es_key.alg, ed_key.alg) == ("ES256", "EdDSA")
    assert es_key.kid == jwk_thumbprint(es_key.public_key)
    assert ed_key.kid == "ed-2025"


def test_generate_keys_never_overwrites_an_existing_kid(keydir, ed_key):
    with pytest.raises(FileExistsError):
        generate_keys(keydir, "EdDSA", kid=ed_key.kid)


def test_generate_keys_refuses_other_algorithms_and_unsafe_kids(tmp_path):
    with pytest.raises(ValueError, match="alg"):
        generate_keys(tmp_path, "RS256")
    with pytest.raises(ValueError, match="kid"):
        generate_keys(tmp_path, kid="../escape")


def test_rfc7638_thumbprint_matches_the_rfc_example_construction():
    # RFC 7638 §3.1 canonical form: required members only, sorted, no whitespace.
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    assert jwk_thumbprint(key) == expected


def test_load_signing_key_reads_back_the_kid_from_the_file_name(keydir, es_key, ed_key):
    for key in (es_key, ed_key):
        loaded = load_signing_key(keydir / f"{key.kid}.private.pem")
        assert (loaded.kid, loaded.alg) == (key.kid, key.alg)
    assert load_signing_key(keydir / f"{ed_key.kid}.private.pem", kid="other").kid == "other"


def test_load_signing_key_refuses_rsa_keys(tmp_path):
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "rsa.private.pem").write_bytes(pem)
    with pytest.raises(ValueError, match="unsupported key type"):
        load_signing_key(tmp_path / "rsa.private.pem")


def test_load_public_keys_maps_every_public_pem_by_kid(public_keys, es_key, ed_key):
    assert set(public_keys) == {es_key.kid, ed_key.kid}


def test_jwks_lists_every_key_with_kid_alg_and_use(public_keys, es_key, ed_key):
    keys = {k["kid"]: k for k in jwks(public_keys)["keys"]}
    assert set(keys) == {es_key.kid, ed_key.kid}
    es, ed = keys[es_key.kid], keys[ed_key.kid]
    assert (es["kty"], es["crv"], es["alg"], es["use"]) == ("EC", "P-256", "ES256", "sig")
    assert {"x", "y"} <= set(es)
    assert (ed["kty"], ed["crv"], ed["alg"], ed["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    # The published JWKs verify tokens just like the PEM keys do.
    for key, jwk in ((es_key, es), (ed_key, ed)):
        token = jwt.encode({"a": 1}, key.private_key, algorithm=key.alg)
        assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[key.alg]) == {"a": 1}


# -- sign / verify ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["es_key", "ed_key"])
def test_sign_then_verify_round_trips_the_credential(which, request, data, public_keys):
    key: SigningKey = request.getfixturevalue(which)
    vc = build_credential(data, ISSUER_ID, key.kid, ISSUED_AT)
    token = sign_credential(vc, key)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    claims = verify_credential(token, public_keys)
    assert claims["vc"] == vc
    assert claims["jti"] == f"urn:uuid:{data.cert_id}"
    assert claims["sub"] == "urn:lernflow:user:lf_user_07"
    assert claims["iss"] == ISSUER_ID
    assert claims["iat"] == claims["nbf"] == int(ISSUED_AT.timestamp())


@settings(max_examples=40, deadline=None)
@given(name=st.text(max_size=80), course=st.text(max_size=80))
def test_any_unicode_name_survives_sign_and_verify(name, course, data, es_key, public_keys):
    changed = CertificateData(**{**data.__dict__, "recipient_name": name, "course_name": course})
    vc = build_credential(changed, ISSUER_ID, es_key.kid, ISSUED_AT)
    assert verify_credential(sign_credential(vc, es_key), public_keys)["vc"] == vc


def test_an_expired_certificate_is_reported_as_expired(data, ed_key, public_keys):
    expired = CertificateData(**{**data.__dict__, "expiry": "2025-01-01"})
    vc = build_credential(expired, ISSUER_ID, ed_key.kid, ISSUED_AT)
    assert vc["expirationDate"] == "2025-01-01T00:00:00Z"
    with pytest.raises(VerificationError) as err:
        verify_credential(sign_credential(vc, ed_key), public_keys)
    assert err.value.reason == "expired"


def test_a_token_issued_in_the_future_is_not_yet_valid(data, es_key, public_keys):
    future = datetime.now(UTC) + timedelta(days=2)
    vc = build_credential(data, ISSUER_ID, es_key.kid, future)
    with pytest.raises(VerificationError) as err:
        verify_credential(sign_credential(vc, es_key), public_keys)
    assert err.value.reason == "not-yet-valid"


# -- tampering -------------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def enc(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class Tamperer:
    """Builds tampered variants of valid tokens, one strategy per kind."""

    def __init__(self, tokens: list[str], keys: dict[str, SigningKey], pems: dict[str, bytes]):
        self.tokens = tokens
        self.keys = keys
        self.pems = pems
        self.other_es = ec.generate_private_key(ec.SECP256R1())
        self.other_ed = ed25519.Ed25519PrivateKey.generate()

    def parts(self, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any], str, str]:
        token = rng.choice(self.tokens)
        h, p, s = token.split(".")
        return json.loads(unb64(h)), json.loads(unb64(p)), s, token

    def payload_claim(self, rng: random.Random) -> str:
        _, payload, sig, token = self.parts(rng)
        h = token.split(".")[0]
        choice = rng.randrange(12)
        vc = payload["vc"]
        if choice == 0:
            vc["credentialSubject"]["name"] += rng.choice(["x", " ", "Ø", "\u200b"])
        elif choice == 1:
            vc["credentialSubject"]["badge"]["name"] = "a different course"
        elif choice == 2:
            payload["sub"] = f"user{rng.randrange(1000)}"
        elif choice == 3:
            payload["jti"] = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        elif choice == 4:
            payload["iat"] += rng.randrange(1, 10_000_000)
        elif choice == 5:
            payload["nbf"] -= rng.randrange(1, 10_000_000)
        elif choice == 6:
            payload["exp"] = payload["iat"] + rng.randrange(1, 10**9)
        elif choice == 7:
            del payload["vc"]
        elif choice == 8:
            payload["iss"] = "https://evil.example/issuer"
        elif choice == 9:
            vc["issuanceDate"] = "2030-01-01T00:00:00Z"
        elif choice == 10:
            payload["admin"] = True
        else:
            vc["signatory"] = []
        return f"{h}.{enc(payload)}.{sig}"

    def signature_bytes(self, rng: random.Random) -> str:
        _, _, sig, token = self.parts(rng)
        raw = bytearray(unb64(sig))
        for _ in range(rng.randint(1, 3)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            raw = bytearray(raw[:-1]) if rng.random() < 0.5 else raw + b"\x00"
        h, p, _ = token.split(".")
        return f"{h}.{p}.{b64(bytes(raw))}"

    def segment_char(self, rng: random.Random) -> str:
        _, _, _, token = self.parts(rng)
        positions = [i for i, c in enumerate(token) if c != "."]
        i = rng.choice(positions)
        replacement = rng.choice([c for c in B64_ALPHABET if c != token[i]])
        return token[:i] + replacement + token[i + 1 :]

    def header_field(self, rng: random.Random) -> str:
        header, _, _, token = self.parts(rng)
        _, p, s = token.split(".")
        choice = rng.randrange(9)
        other_kids = [k for k in self.keys if k != header["kid"]]
        if choice == 0:
            header["kid"] = rng.choice(other_kids)
        elif choice == 1:
            header["kid"] = "unknown-" + str(rng.randrange(10**6))
        elif choice == 2:
            del header["kid"]
        elif choice == 3:
            header["alg"] = rng.choice(["ES384", "ES512", "RS256", "PS256", "HS256", "HS512"])
        elif choice == 4:
            header["alg"] = "EdDSA" if header["alg"] == "ES256" else "ES256"
        elif choice == 5:
            header["alg"] = rng.choice(["none", "None", "NONE", ""])
        elif choice == 6:
            header["typ"] = rng.choice(["JOSE", "jwt", "vc+jwt"])
        elif choice == 7:
            header["crit"] = ["b64"]
            header["b64"] = False
        else:
            header["kid"] = [header["kid"]]
        return f"{enc(header)}.{p}.{s}"

    def alg_none(self, rng: random.Random) -> str:
        header, payload, _, _ = self.parts(rng)
        header["alg"] = rng.choice(["none", "None", "NONE", "nOnE"])
        if rng.random() < 0.5:
            del header["kid"]
        tail = rng.choice(["", "", "AAAA", "."])
        return f"{enc(header)}.{enc(payload)}.{tail}"

    def hs256_key_confusion(self, rng: random.Random) -> str:
        header, payload, _, _ = self.parts(rng)
        kid = header["kid"]
        header["alg"] = rng.choice(["HS256", "HS384", "HS512"])
        pem = self.pems[kid]
        secret = rng.choice([pem, pem.strip(), pem.decode().replace("\n", "").encode()])
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
        signing_input = f"{enc(header)}.{enc(payload)}"
        mac = hmac.new(secret, signing_input.encode(), digest[header["alg"]]).digest()
        return f"{signing_input}.{b64(mac)}"

    def foreign_key_same_kid(self, rng: random.Random) -> str:
        header, payload, _, _ = self.parts(rng)
        kid = header["kid"]
        alg = rng.choice(["ES256", "EdDSA"])
        key = self.other_es if alg == "ES256" else self.other_ed
        if rng.random() < 0.3:  # a genuine key of ours, but presented under the other kid
            own = [k for k in self.keys.values() if k.kid != kid]
            key, alg = own[0].private_key, own[0].alg  # type: ignore[assignment]
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})

    def truncated(self, rng: random.Random) -> str:
        _, _, _, token = self.parts(rng)
        return token[: rng.randrange(0, len(token) - 1)]

    def spliced(self, rng: random.Random) -> str:
        while True:  # tokens signed by one key share their header: retry until it differs
            a, b = rng.sample(self.tokens, 2)
            ha, pa, sa = a.split(".")
            hb, pb, sb = b.split(".")
            forged = [
                f"{ha}.{pb}.{sa}",
                f"{hb}.{pa}.{sa}",
                f"{ha}.{pa}.{sb}",
                f"{ha}.{pa}.{sa}.{sa}",
                f"{ha}.{pa}.{sa} ",
                f"{ha}.{pa}.{sa}==",
            ][rng.randrange(6)]
            if forged not in self.tokens:
                return forged


def test_one_thousand_tampered_credentials_are_all_rejected(data, es_key, ed_key, keydir):
    public_keys = load_public_keys(keydir)
    keys = {es_key.kid: es_key, ed_key.kid: ed_key}
    pems = {kid: (keydir / f"{kid}.public.pem").read_bytes() for kid in keys}
    tokens = []
    for i, key in enumerate([es_key, ed_key] * 3):
        variant = CertificateData(**{**data.__dict__, "cert_id": str(uuid.UUID(int=i + 1))})
        vc = build_credential(variant, ISSUER_ID, key.kid, ISSUED_AT)
        tokens.append(sign_credential(vc, key))
    for token in tokens:  # the originals are valid
        verify_credential(token, public_keys)
    tamperer = Tamperer(tokens, keys, pems)
    kinds = [
        tamperer.payload_claim,
        tamperer.signature_bytes,
        tamperer.segment_char,
        tamperer.header_field,
        tamperer.alg_none,
        tamperer.hs256_key_confusion,
        tamperer.foreign_key_same_kid,
        tamperer.truncated,
        tamperer.spliced,
    ]
    reasons: dict[str, set[str]] = {}
    accepted = []
    for i in range(1000):
        kind = kinds[i % len(kinds)]
        rng = random.Random(f"tamper-{i}")
        forged = kind(rng)
        assert forged not in tokens, f"{kind.__name__} produced an unmodified token"
        try:
            verify_credential(forged, public_keys)
        except VerificationError as err:
            reasons.setdefault(kind.__name__, set()).add(err.reason)
        else:
            accepted.append((kind.__name__, forged))
    assert accepted == []
    assert sum(len(r) for r in reasons.values()) >= 12
    assert "signature" in reasons["payload_claim"]
    assert reasons["alg_none"] <= {"malformed", "algorithm"}
    assert reasons["hs256_key_confusion"] == {"algorithm"}


def test_unsigned_tokens_made_by_pyjwt_itself_are_rejected(data, es_key, public_keys):
    vc = build_credential(data, ISSUER_ID, es_key.kid, ISSUED_AT)
    token = jwt.encode({"vc": vc, "sub": "lf_user_07"}, "", algorithm="none")
    with pytest.raises(VerificationError):
        verify_credential(token, public_keys)


@pytest.mark.parametrize(
    "token",
    ["", "a", "a.b", "a.b.c.d", "....", "eyJ.eyJ.@@@", None, 42, b"x.y.z"],
)
def test_garbage_is_rejected_as_malformed(token, public_keys):
    with pytest.raises(VerificationError) as err:
        verify_credential(token, public_keys)
    assert err.value.reason == "malformed"


def test_a_signed_token_without_vc_claim_is_rejected(es_key, public_keys):
    token = jwt.encode(
        {"jti": "urn:uuid:x", "sub": "u", "iss": "i", "iat": 1, "nbf": 1},
        es_key.private_key,
        algorithm="ES256",
        headers={"kid": es_key.kid},
    )
    with pytest.raises(VerificationError) as err:
        verify_credential(token, public_keys)
    assert err.value.reason == "claims"


def test_a_private_key_in_the_key_map_is_not_used_for_verification(data, es_key):
    vc = build_credential(data, ISSUER_ID, es_key.kid, ISSUED_AT)
    token = sign_credential(vc, es_key)
    with pytest.raises(VerificationError) as err:
        verify_credential(token, {es_key.kid: es_key.private_key})
    assert err.value.reason == "key-mismatch"
