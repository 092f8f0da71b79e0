"""``lernflow serve`` answers at the URLs a credential names (issue 18 item 2): the JSON-LD
contexts, the issuer profile, the revocation status list."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from lernflow.certificates import documents, signing
from lernflow.certificates import status_list as sl
from lernflow.certificates.binding import Check
from lernflow.certificates.credential import context_url, status_list_url
from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.storage import LocalStorage
from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_generator.maker import MakeJob, make_certificate
from lernflow.ops import cert_status
from lernflow.ops.serve import documents as serve_documents
from lernflow.ops.serve.app import create_app
from tests.unit.test_certificates_signing import data_from_event

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings()
    c = s.certificates.model_copy(
        update={"keys_dir": tmp_path / "keys", "storage_dir": tmp_path / "store",
                "issuer_name": "Lernflow Academy", "issuer_url": "https://academy.example"}
    )  # fmt: skip
    signing.generate_keys(c.keys_dir, kid="serve-docs")
    return s.with_overrides(certificates=c)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _base(settings: Settings) -> str:
    return f"{settings.certificates.cert_domain_url}/certs"


@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_the_context_a_credential_names_is_served(
    client: TestClient, settings: Settings, version: str
) -> None:
    path = context_url(_base(settings), version).removeprefix(settings.certificates.cert_domain_url)  # type: ignore[arg-type]
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/ld+json")
    assert answer.json() == documents.context_document(version)  # type: ignore[arg-type]


def test_the_issuer_profile_is_served_with_the_key_ids(
    client: TestClient, settings: Settings
) -> None:
    answer = client.get("/certs/issuer")
    assert answer.status_code == 200
    profile = answer.json()
    assert profile["id"] == f"{_base(settings)}/issuer"
    assert (profile["name"], profile["url"]) == ("Lernflow Academy", "https://academy.example")
    assert profile["publicKey"] == ["serve-docs"]
    jwks_path = profile["jwks"].removeprefix(settings.certificates.cert_domain_url)
    assert client.get(jwks_path).json()["keys"][0]["kid"] == "serve-docs"


def test_the_status_list_is_served_and_cached(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []

    def fake(s: Settings) -> str:
        built.append(1)
        return f"jwt-{len(built)}"

    monkeypatch.setattr(serve_documents, "signed_status_list", fake)
    path = status_list_url(_base(settings)).removeprefix(settings.certificates.cert_domain_url)
    first, second = client.get(path), client.get(path)
    assert (first.status_code, first.text, second.text) == (200, "jwt-1", "jwt-1")
    assert first.headers["content-type"].startswith("application/vc+jwt")


def test_no_registry_gives_503_not_a_crash(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(s: Settings) -> str:
        raise ConnectionError("no Cassandra")

    monkeypatch.setattr(serve_documents, "signed_status_list", down)
    assert client.get("/certs/status/revocation").status_code == 503


def test_the_list_the_server_signs_checks_offline(settings: Settings) -> None:
    """The pure pieces the route signs with: built for index 3, a verifier reads bit 3."""
    key_file = next(settings.certificates.keys_dir.glob("*.private.pem"))
    key = signing.load_signing_key(key_file)
    vc = sl.status_list_credential(_base(settings), "i", [3], 4, datetime.now(UTC))
    token = sl.sign_status_list(vc, key)
    claims = signing.verify_credential(token, {key.kid: key.public_key})
    assert sl.bit_is_set(sl.decode_bits(claims["vc"]["credentialSubject"]["encodedList"]), 3)


def _issue(settings: Settings, index: int) -> str:
    """A certificate with status index ``index`` in the settings' store; its id."""
    data = dataclasses.replace(
        data_from_event("gen.request.first.json"),
        verify_base_url=_base(settings),
        status_index=index,
    )
    key = signing.load_signing_key(next(settings.certificates.keys_dir.glob("*.private.pem")))
    job = MakeJob(data, bundled_template_path().read_text(encoding="utf-8"), "cairosvg", (),
                  f"{_base(settings)}/issuer", LocalStorage(settings.certificates.storage_dir))  # fmt: skip
    make_certificate(job, key)
    return data.cert_id


def _signed_list(settings: Settings, revoked: list[int]) -> str:
    key = signing.load_signing_key(next(settings.certificates.keys_dir.glob("*.private.pem")))
    vc = sl.status_list_credential(_base(settings), "i", revoked, 8, datetime.now(UTC))
    return sl.sign_status_list(vc, key)


def test_the_verification_page_says_revoked_with_the_registrys_reason(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_id = _issue(settings, 5)
    monkeypatch.setattr(serve_documents, "signed_status_list", lambda s: _signed_list(s, [5]))
    reason = "REVOKED on 2026-12-04 by registrar: issued in error"
    monkeypatch.setattr(
        cert_status, "_from_registry",
        lambda s, cid: cert_status.RevocationCheck(True, Check("revocation", "failed", reason)),
    )  # fmt: skip
    body = client.get(f"/certs/{cert_id}", headers={"accept": "application/json"}).json()
    assert (body["verdict"], body["valid"]) == ("revoked", False)
    assert "issued in error" in body["reason"]
    page = client.get(f"/certs/{cert_id}").text
    assert "REVOKED" in page and "issued in error" in page


def test_the_page_of_a_certificate_whose_bit_is_clear_is_valid_with_the_check(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_id = _issue(settings, 5)
    monkeypatch.setattr(serve_documents, "signed_status_list", lambda s: _signed_list(s, [4, 6]))
    body = client.get(f"/certs/{cert_id}", headers={"accept": "application/json"}).json()
    assert body["verdict"] == "valid"
    assert body["checks"][-1]["name"] == "revocation"
    assert body["checks"][-1]["outcome"] == "ok"
