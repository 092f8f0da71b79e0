"""Conformance: a credential built from Sunbird's generator fixture event, signed and verified.

The same checks on our own data are in tests/unit/test_certificates_signing.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from lernflow.certificates.credential import build_credential
from lernflow.certificates.model import CertificateData, Signatory
from lernflow.certificates.signing import (
    SigningKey,
    generate_keys,
    load_public_keys,
    sign_credential,
    verify_credential,
)
from tests.conformance.conftest import SUNBIRD_FIXTURES

ISSUED_AT = datetime(2021, 5, 27, tzinfo=UTC)
ISSUER_ID = "http://127.0.0.1:8080/certs/Issuer.json"


def data_from_event(name: str, cert_id: str | None = None) -> CertificateData:
    """CertificateData from a Sunbird generator fixture event (issuedDate added)."""
    event = json.loads((SUNBIRD_FIXTURES / "certificates" / name).read_text())
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
        issued_date="2021-05-27",
        issuer_name=edata["issuer"]["name"],
        issuer_url=edata["issuer"]["url"],
        signatories=tuple(Signatory(**s) for s in edata["signatoryList"]),
    )


@pytest.fixture(scope="module")
def data() -> CertificateData:
    return data_from_event("generator.EVENT_1.json")


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


def test_credential_is_a_w3c_vc_carrying_recipient_course_issuer_and_signatories(data):
    vc = build_credential(data, ISSUER_ID, "kid-1", ISSUED_AT)
    assert vc["@context"][0] == "https://www.w3.org/2018/credentials/v1"
    assert vc["type"][0] == "VerifiableCredential"
    assert vc["id"] == f"urn:uuid:{data.cert_id}"
    assert vc["issuanceDate"] == "2021-05-27T00:00:00Z"
    assert vc["issuer"] == {
        "id": ISSUER_ID,
        "type": "Issuer",
        "name": "Gujarat Council of Educational Research and Training",
        "url": "https://gcert.gujarat.gov.in/gcert/",
        "publicKey": ["kid-1"],
    }
    subject = vc["credentialSubject"]
    assert (subject["id"], subject["name"]) == ("urn:lernflow:user:user001", "Creation ")
    assert subject["badge"]["id"] == "do_11309999837886054415"
    assert subject["badge"]["name"] == "new course may23"
    assert subject["badge"]["batchId"] == "0131000245281587206"
    assert subject["badge"]["certificateName"] == "100PercentCompletionCertificate"
    assert vc["signatory"][0]["name"] == "CEO Gujarat"
    assert vc["evidence"][0]["completedOn"] == "2021-05-27"
    assert "expirationDate" not in vc


def test_credential_badge_name_falls_back_to_the_certificate_name_without_a_course_name(data):
    no_course = CertificateData(**{**data.__dict__, "course_name": ""})
    vc = build_credential(no_course, ISSUER_ID, "k", ISSUED_AT)
    assert vc["credentialSubject"]["badge"]["name"] == "100PercentCompletionCertificate"


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
    assert claims["sub"] == "urn:lernflow:user:user001"
    assert claims["iss"] == ISSUER_ID
    assert claims["iat"] == claims["nbf"] == int(ISSUED_AT.timestamp())
