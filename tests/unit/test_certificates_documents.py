"""What a credential points to resolves (issue 18 item 2): the subject URI, VC 2.0 output, the
shipped JSON-LD contexts, the issuer profile, and offline JSON-LD expansion with pyld."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyld import jsonld  # type: ignore[import-untyped]

from lernflow.certificates import documents, signing
from lernflow.certificates.credential import build_credential, subject_uri
from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.model import CertificateData, Signatory
from lernflow.config import load_settings
from lernflow.flows.certificate_generator.maker import CertificateMaker, ToMake
from lernflow.flows.certificate_generator.plan import Certificate

ISSUED_AT = datetime(2024, 9, 30, tzinfo=UTC)
BASE = "https://certs.lernflow.example/certs"


@pytest.fixture(scope="module")
def data() -> CertificateData:
    return CertificateData(
        cert_id="0d6e7f5c-9c1b-4f43-9a8e-6c3a4f2b1d00", recipient_id="lf_user_07",
        recipient_name="Priya Natarajan", course_id="do_course_1", course_name="Python basics",
        batch_id="batch_1", certificate_name="Course Completion Certificate",
        template_id="tpl_1", issued_date="2024-09-30", issuer_name="Lernflow Open School",
        issuer_url="https://school.lernflow.example/", description="a course",
        signatories=(Signatory("A. Director", "director", "Director", "https://x.example/a.png"),),
        expiry="10y", verify_base_url=BASE, status_index=42,
    )  # fmt: skip


def refusing_loader() -> Any:
    """The shipped loader; anything it does not hold raises (no network is ever tried)."""
    return documents.document_loader(BASE)


def expand(credential: dict[str, Any]) -> tuple[list[Any], list[str]]:
    dropped: list[str] = []

    def on_dropped(details: dict[str, Any]) -> None:
        dropped.append(str(details))

    expanded = jsonld.expand(
        credential, {"documentLoader": refusing_loader()}, on_property_dropped=on_dropped
    )
    return expanded, dropped


def test_subject_id_is_a_stable_uri_built_from_the_user_id() -> None:
    assert subject_uri("lf_user_07") == "urn:lernflow:user:lf_user_07"
    assert subject_uri("a b/ü") == "urn:lernflow:user:a%20b%2F%C3%BC"
    assert subject_uri("a b/ü") == subject_uri("a b/ü")  # stable: the user id alone


def test_credential_names_its_subject_uri_status_and_v1_context(data: CertificateData) -> None:
    vc = build_credential(data, f"{BASE}/issuer", "kid-1", ISSUED_AT)
    assert vc["@context"] == ["https://www.w3.org/2018/credentials/v1", f"{BASE}/v1/context.json"]
    assert vc["credentialSubject"]["id"] == "urn:lernflow:user:lf_user_07"
    assert (vc["issuanceDate"], vc["expirationDate"]) == (
        "2024-09-30T00:00:00Z",
        "2034-09-30T00:00:00Z",
    )
    assert vc["credentialStatus"] == {
        "id": f"{BASE}/status/revocation#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": f"{BASE}/status/revocation",
    }
    no_status = build_credential(
        dataclasses.replace(data, status_index=None), f"{BASE}/issuer", "k", ISSUED_AT
    )
    assert "credentialStatus" not in no_status


def test_vc_2_0_uses_the_v2_context_and_valid_from_until(
    data: CertificateData, tmp_path: Path
) -> None:
    vc = build_credential(data, f"{BASE}/issuer", "kid-1", ISSUED_AT, version="2.0")
    assert vc["@context"] == ["https://www.w3.org/ns/credentials/v2", f"{BASE}/v2/context.json"]
    assert (vc["validFrom"], vc["validUntil"]) == ("2024-09-30T00:00:00Z", "2034-09-30T00:00:00Z")
    assert "issuanceDate" not in vc and "expirationDate" not in vc
    key = signing.generate_keys(tmp_path)
    token = signing.sign_credential(vc, key)
    claims = signing.verify_credential(token, {key.kid: key.public_key})
    assert claims["nbf"] == int(ISSUED_AT.timestamp())
    assert claims["exp"] == int(datetime(2034, 9, 30, tzinfo=UTC).timestamp())
    with pytest.raises(ValueError, match=r"1\.1 or 2\.0"):
        build_credential(data, "i", "k", ISSUED_AT, version="3.0")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_json_ld_expansion_offline_keeps_every_term(data: CertificateData, version: str) -> None:
    vc = build_credential(data, f"{BASE}/issuer", "kid-1", ISSUED_AT, version=version)  # type: ignore[arg-type]
    expanded, dropped = expand(vc)
    assert dropped == []
    text = json.dumps(expanded)
    for iri in (
        "urn:lernflow:vocab:batchId",
        "urn:lernflow:vocab:designation",
        "urn:lernflow:vocab:completedOn",
        "https://schema.org/name",
        "https://www.w3.org/ns/credentials/status#statusListIndex",
        "https://www.w3.org/2018/credentials#credentialSubject",
        "urn:lernflow:user:lf_user_07",
    ):
        assert iri in text, iri
    dates = "issuanceDate" if version == "1.1" else "validFrom"
    assert dates in text


def test_every_term_of_our_context_is_used_or_a_known_helper(data: CertificateData) -> None:
    """A term the credential uses and the context lacks would be dropped on expansion (the test
    above); this one catches the reverse: a context term nothing uses is a stale definition."""
    vc = build_credential(data, f"{BASE}/issuer", "kid-1", ISSUED_AT)
    profile = documents.issuer_profile(BASE, "n", "https://x.example", ["k"])
    terms = set(documents.context_document("1.1")["@context"]) - {
        "@version", "id", "type", "lf", "schema", "status", "statusListCredential"
    }  # fmt: skip
    text = json.dumps(vc) + json.dumps(profile)
    assert {t for t in terms if f'"{t}"' not in text} == set()


def test_the_loader_refuses_anything_not_preloaded(data: CertificateData) -> None:
    vc = build_credential(data, f"{BASE}/issuer", "kid-1", ISSUED_AT)
    vc["@context"].append("https://evil.example/context.json")
    with pytest.raises(jsonld.JsonLdError):
        expand(vc)
    load = documents.document_loader(BASE)
    with pytest.raises(documents.DocumentNotPreloaded):
        load("https://www.w3.org/ns/did/v1", None)
    assert load(f"{BASE}/v1/context.json", None)["document"] == documents.context_document()


def test_issuer_profile_names_the_keys_and_the_jwks(data: CertificateData) -> None:
    profile = documents.issuer_profile(
        BASE + "/", "Lernflow Academy", "https://x.example", ["b", "a"]
    )
    assert profile["id"] == f"{BASE}/issuer"
    assert profile["publicKey"] == ["a", "b"]
    assert profile["jwks"] == "https://certs.lernflow.example/.well-known/jwks.json"
    assert (profile["name"], profile["url"]) == ("Lernflow Academy", "https://x.example")
    vc = build_credential(data, documents.issuer_url(BASE), "a", ISSUED_AT)
    assert vc["issuer"]["id"] == profile["id"]
    expanded, dropped = expand(profile)
    assert dropped == [] and expanded


def test_context_files_ship_with_the_package() -> None:
    folder = documents.contexts_dir()
    names = {p.name for p in folder.iterdir()}
    assert {"lernflow-v1.jsonld", "lernflow-v2.jsonld", "w3c-credentials-v1.jsonld",
            "w3c-credentials-v2.jsonld", "README.md"} <= names  # fmt: skip
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"contexts/*.jsonld"' in pyproject


def test_the_generator_issues_vc_2_0_when_the_setting_says_so(
    data: CertificateData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LERNFLOW_CERT_VC_VERSION", "2.0")
    monkeypatch.setenv("LERNFLOW_CERT_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("LERNFLOW_CERT_STORAGE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("LERNFLOW_CERT_RENDER_TIMEOUT_S", "0")
    settings = load_settings()
    assert settings.certificates.vc_version == "2.0"
    key = signing.generate_keys(settings.certificates.keys_dir)
    maker = CertificateMaker(settings)
    try:
        [made] = maker.make([ToMake(data, bundled_template_path().read_text(encoding="utf-8"))])
    finally:
        maker.close()
    assert isinstance(made, Certificate)
    token = Path(made.json_url.removeprefix("file://")).read_text().strip()
    vc = signing.verify_credential(token, {key.kid: key.public_key})["vc"]
    assert vc["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert vc["validFrom"] == "2024-09-30T00:00:00Z" and "issuanceDate" not in vc
