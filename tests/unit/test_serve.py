"""``lernflow serve`` through Starlette's TestClient (no server, no browser): the QR code's page
of a stored certificate as HTML and JSON, its PDF, the upload form's verdicts (the checks of
``cert verify``), the public keys, one 404 for unknown and malformed ids, security headers on
every answer, and the request-body bound (413). docs/serve.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from lernflow import cli
from lernflow.certificates import binding
from lernflow.ops.serve import pages
from lernflow.ops.serve.app import create_app
from lernflow.ops.serve.security import CONTENT_SECURITY_POLICY
from tests.servekit import (
    COURSE,
    ISSUER,
    LEARNER,
    SIGNATORY,
    Issued,
    TestClient,
    issue,
    tampered,
)

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}  # Chromium's
JSON = {"accept": "application/json"}
LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Issued:
    return issue(tmp_path_factory.mktemp("serve"), max_upload_bytes=LIMIT)


@pytest.fixture
def client(issued: Issued) -> Iterator[TestClient]:
    with TestClient(create_app(issued.settings), raise_server_exceptions=False) as c:
        yield c


def _assert_secured(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert "server" not in headers


# -- the QR code's page -----------------------------------------------------------------------


def test_the_qr_page_of_a_genuine_certificate_says_valid_and_what_it_certifies(client, issued):
    response = client.get(f"/certs/{issued.cert_id}", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'data-verdict="valid"' in page and "<strong>VALID</strong>" in page
    assert "the pages are the ones issued" in page  # why
    for shown in (LEARNER, COURSE, ISSUER, SIGNATORY, "Registrar", "2024-09-30"):
        assert shown in page
    assert f'href="/certs/{issued.cert_id}/pdf"' in page
    assert 'action="/verify"' in page and 'enctype="multipart/form-data"' in page
    _assert_secured(response)


def test_the_same_page_as_json(client, issued):
    response = client.get(f"/certs/{issued.cert_id}", headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"] == issued.cert_id
    assert body["verdict"] == "valid" and body["valid"] is True
    assert body["certificate"]["learner"] == LEARNER
    assert body["certificate"]["course"] == COURSE
    assert body["certificate"]["issuer"] == ISSUER
    assert body["certificate"]["issued"] == "2024-09-30"
    assert body["certificate"]["signatories"] == [{"name": SIGNATORY, "designation": "Registrar"}]
    assert body["credential"]["id"] == f"urn:uuid:{issued.cert_id}"
    assert body["checks"] and {c["outcome"] for c in body["checks"]} == {"ok"}
    assert body["pdf"] == f"/certs/{issued.cert_id}/pdf"
    _assert_secured(response)


@pytest.mark.parametrize(
    ("accept", "is_json"),
    [
        ("application/json", True),
        ("application/json, text/plain, */*", True),  # axios, fetch()
        (HTML["accept"], False),
        ("*/*", False),  # curl: a person at a terminal reads the page
        ("text/html;q=0.5, application/json", True),
        ("application/json;q=0", False),
    ],
)
def test_json_only_when_it_is_asked_for_first(client, issued, accept, is_json):
    response = client.get(f"/certs/{issued.cert_id}", headers={"accept": accept})
    assert response.headers["content-type"].startswith(
        "application/json" if is_json else "text/html"
    )


def test_the_pdf_link_downloads_the_stored_certificate(client, issued):
    response = client.get(f"/certs/{issued.cert_id}/pdf")
    assert response.status_code == 200
    assert response.content == issued.pdf
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="certificate-{issued.cert_id}.pdf"'
    )
    _assert_secured(response)


def test_a_stored_copy_edited_on_disk_is_not_valid(tmp_path):
    other = issue(tmp_path, cert_id="0badc0de-0000-4000-8000-000000000001")
    other.pdf_path.write_bytes(tampered(other.pdf))
    with TestClient(create_app(other.settings)) as client:
        body = client.get(f"/certs/{other.cert_id}", headers=JSON).json()
        page = client.get(f"/certs/{other.cert_id}", headers=HTML).text
    assert body["verdict"] == "invalid"
    assert body["reason"] == "pages differ from the issued certificate"
    assert "<strong>NOT VALID</strong>" in page and "pages differ" in page


def test_a_certificate_stored_as_a_credential_only_is_unchecked(tmp_path, issued):
    other = issue(tmp_path, cert_id="0badc0de-0000-4000-8000-000000000002")
    other.pdf_path.unlink()
    with TestClient(create_app(other.settings)) as client:
        body = client.get(f"/certs/{other.cert_id}", headers=JSON).json()
        assert client.get(f"/certs/{other.cert_id}/pdf").status_code == 404
    assert body["verdict"] == "unchecked" and body["pdf"] is None
    assert body["certificate"]["learner"] == LEARNER


# -- not found, not enumerable -----------------------------------------------------------------

MALFORMED = [  # ("/certs/.." itself is resolved to "/" by every client)
    "%2e%2e",
    "..%2f..%2fetc%2fpasswd",
    f"{'a' * 129}",
    "x.pdf",
    "*",
    "lfbatch0930",  # a batch folder is not a certificate
    "a%20b",
    "%00",
]


def test_unknown_and_malformed_ids_get_one_and_the_same_404(client, issued):
    unknown = client.get("/certs/00000000-0000-4000-8000-000000000000", headers=HTML)
    assert unknown.status_code == 404
    assert "No certificate has this address." in unknown.text
    assert 'data-verdict="not found"' in unknown.text
    _assert_secured(unknown)
    for cert_id in MALFORMED:
        response = client.get(f"/certs/{cert_id}", headers=HTML)
        assert (response.status_code, response.text) == (404, unknown.text), cert_id
    unknown_json = client.get("/certs/00000000-0000-4000-8000-000000000000", headers=JSON)
    assert unknown_json.status_code == 404
    assert unknown_json.json()["error"] == "not found"
    for cert_id in MALFORMED:
        response = client.get(f"/certs/{cert_id}", headers=JSON)
        assert (response.status_code, response.json()) == (404, unknown_json.json()), cert_id


def test_there_is_no_listing(client, issued):
    unknown = client.get("/certs/00000000-0000-4000-8000-000000000000")
    for path in ("/certs", "/certs/", f"/certs/{issued.batch_id}/", "/certs/*/pdf", "/store"):
        response = client.get(path)
        assert (response.status_code, response.text) == (404, unknown.text), path
        assert issued.cert_id not in response.text


# -- the upload form ---------------------------------------------------------------------------


def _upload(client: TestClient, data: bytes, name: str = "certificate.pdf", **headers: str):
    return client.post("/verify", files={"file": (name, data, "application/pdf")}, headers=headers)


def test_an_uploaded_genuine_pdf_is_valid(client, issued):
    response = _upload(client, issued.pdf, **JSON)
    assert response.status_code == 200
    body = response.json()
    assert body["verdict"] == "valid" and body["id"] is None and body["pdf"] is None
    assert body["certificate"]["learner"] == LEARNER


def test_an_uploaded_tampered_pdf_is_not_valid_and_says_why(client, issued):
    response = _upload(client, tampered(issued.pdf), **HTML)
    assert response.status_code == 200
    assert "<strong>NOT VALID</strong>" in response.text
    assert "pages differ from the issued certificate" in response.text
    _assert_secured(response)
    assert _upload(client, tampered(issued.pdf), **JSON).json()["verdict"] == "invalid"


def test_an_upload_gets_the_verdict_of_cert_verify(client, issued, tmp_path, monkeypatch):
    """The same verdict and reason as `lernflow cert verify <file>` for each kind of file."""
    monkeypatch.setenv("LERNFLOW_CERT_KEYS_DIR", str(issued.settings.certificates.keys_dir))
    monkeypatch.setenv("LERNFLOW_CERT_STORAGE_DIR", str(issued.settings.certificates.storage_dir))
    files = {
        "genuine.pdf": issued.pdf,
        "tampered.pdf": tampered(issued.pdf),
        "credential.jwt": issued.token.encode(),
        "forged.jwt": (issued.token[:-4] + "AAAA").encode(),
        "garbage.pdf": b"%PDF-1.7\n garbage",
        "text.txt": b"hello",
    }
    exits = {"valid": 0, "invalid": 1, "unchecked": 3}
    for name, data in files.items():
        body = _upload(client, data, name, **JSON).json()
        path = tmp_path / name
        path.write_bytes(data)
        result = CliRunner().invoke(cli.app, ["cert", "verify", str(path)])
        assert result.exit_code == exits[body["verdict"]], (name, body, result.output)
        assert body["reason"].split(":")[0] in " ".join(result.output.split()), name


def test_a_pasted_credential_is_checked_on_its_own(client, issued):
    response = client.post("/verify", data={"token": f"  {issued.token}\n"}, headers=JSON)
    body = response.json()
    assert body["verdict"] == "unchecked"
    assert body["checks"][1] == {
        "name": "pages",
        "outcome": "not checked",
        "detail": "no PDF given",
    }


def test_an_unreadable_upload_is_not_valid_rather_than_an_error(client, monkeypatch):
    def explode(*_args: object, **_kwargs: object) -> binding.Verification:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(binding, "verify_pdf", explode)
    response = _upload(client, b"%PDF-1.7 deeply nested", **JSON)
    assert response.status_code == 200
    assert response.json()["verdict"] == "invalid"
    assert "cannot be read" in response.json()["reason"]


def test_an_empty_form_is_a_400_that_says_what_to_do(client):
    response = client.post("/verify", data={"token": " "}, headers=HTML)
    assert response.status_code == 400
    assert "Nothing to verify." in response.text
    _assert_secured(response)
    assert client.post("/verify", files={"file": ("a.pdf", b"")}).status_code == 400


def test_a_get_of_the_form_target_is_405_with_headers(client):
    response = client.get("/verify")
    assert response.status_code == 405
    _assert_secured(response)


# -- bounded bodies ----------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_before_it_is_read(client):
    response = _upload(client, b"%PDF" + b"0" * LIMIT, **HTML)
    assert response.status_code == 413
    assert "This file is too large." in response.text and "0.25 MiB" in response.text
    _assert_secured(response)
    assert _upload(client, b"%PDF" + b"0" * LIMIT, **JSON).json()["error"] == (
        "request body too large"
    )


def test_a_chunked_body_over_the_limit_is_413_too(client):
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 1024 + 8):
            yield b"0" * 1024

    response = client.post(
        "/verify", content=chunks(), headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 413


def test_a_body_just_under_the_limit_is_verified(client, issued):
    padded = issued.pdf + b"\n%" + b"0" * (LIMIT - len(issued.pdf) - 1024)
    response = _upload(client, padded, **JSON)
    assert response.status_code == 200
    assert response.json()["verdict"] == "valid"  # bytes after %%EOF: the pages are the same


# -- public keys, headers on everything, extending the routes ----------------------------------


def test_the_jwks_is_what_cert_keys_export_prints(client, issued, monkeypatch):
    monkeypatch.setenv("LERNFLOW_CERT_KEYS_DIR", str(issued.settings.certificates.keys_dir))
    exported = CliRunner().invoke(cli.app, ["cert", "keys", "export"])
    assert exported.exit_code == 0, exported.output
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json() == json.loads(exported.stdout)
    assert response.json()["keys"][0]["kid"] == "serve-test"
    assert response.headers["access-control-allow-origin"] == "*"
    _assert_secured(response)


def test_the_stylesheet_and_the_start_page(client):
    css = client.get(pages.STYLESHEET_PATH)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    start = client.get("/")
    assert start.status_code == 200 and 'action="/verify"' in start.text
    for response in (css, start):
        _assert_secured(response)
    assert "<script" not in start.text and "style=" not in start.text  # the CSP allows neither


def test_headers_even_on_a_crash_and_routes_added_before_the_certificate_page(issued):
    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    async def context(request: Request) -> Response:
        return Response("{}", media_type="application/ld+json")

    extra = [Route("/certs/boom", boom), Route("/certs/context.json", context)]
    with TestClient(create_app(issued.settings, extra), raise_server_exceptions=False) as client:
        crashed = client.get("/certs/boom")
        assert crashed.status_code == 500
        _assert_secured(crashed)
        assert client.get("/certs/context.json").headers["content-type"] == "application/ld+json"


def test_what_the_certificate_says_is_escaped():
    hostile = '<img src=x onerror="alert(1)">'
    claims = {
        "vc": {
            "id": "urn:uuid:x",
            "issuanceDate": "2024-09-30T00:00:00Z",
            "issuer": {"name": hostile, "url": "javascript:alert(1)"},
            "credentialSubject": {"name": hostile, "badge": {"courseName": hostile}},
            "signatory": [{"name": hostile, "designation": hostile}],
        }
    }
    result = binding.Verification(binding.Verdict.VALID, hostile, (), claims)
    page = pages.verification_html(pages.Outcome(result), LIMIT)
    assert "<img" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "javascript:" not in page


def test_a_key_file_removed_counts_at_once(issued, tmp_path):
    other = issue(tmp_path, cert_id="0badc0de-0000-4000-8000-000000000003")
    with TestClient(create_app(other.settings)) as client:
        assert client.get(f"/certs/{other.cert_id}", headers=JSON).json()["verdict"] == "valid"
        for path in Path(other.settings.certificates.keys_dir).glob("*.public.pem"):
            path.unlink()
        body = client.get(f"/certs/{other.cert_id}", headers=JSON).json()
    assert body["verdict"] == "invalid" and "not a known key" in body["reason"]


def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body():
    import asyncio

    from lernflow.ops.serve.security import BodyLimit

    calls: list[str] = []

    async def app(scope, receive, send):  # never reached
        calls.append("app")

    async def too_large(scope, receive, send):
        calls.append("413")

    async def receive():
        calls.append("receive")
        return {"type": "http.request", "body": b"0" * 1024, "more_body": True}

    async def send(message):
        pass

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/verify",
        "headers": [(b"content-length", str(LIMIT + 1).encode())],
    }
    asyncio.run(BodyLimit(app, LIMIT, too_large)(scope, receive, send))
    assert calls == ["413"]


def test_a_revoked_certificate_says_revoked_with_the_reason_and_no_longer_that_revocation_is_unchecked():
    claims = {"vc": {"id": "urn:uuid:x", "credentialSubject": {"name": LEARNER}}}
    checks = (
        binding.Check("signature", "ok", "signed"),
        binding.Check("revocation", "failed", "revoked: issued to the wrong learner"),
    )
    result = binding.Verification(
        binding.Verdict.REVOKED, "revoked: issued to the wrong learner", checks, claims
    )
    page = pages.verification_html(pages.Outcome(result, "x"), LIMIT)
    assert '<div class="verdict verdict-revoked"' in page
    assert "<strong>REVOKED</strong>" in page and "issued to the wrong learner" in page
    assert "The issuer has revoked this certificate" in page
    assert "revocation (isrevoked" not in page and pages.KEY_NOT_CHECKED in page
    assert pages.as_json(pages.Outcome(result, "x"))["not_checked"] == pages.KEY_NOT_CHECKED
    unrevoked = binding.Verification(binding.Verdict.VALID, "ok", checks[:1], claims)
    assert "revocation (isrevoked" in pages.verification_html(pages.Outcome(unrevoked), LIMIT)


def test_a_form_with_two_files_is_refused(client, issued):
    files = [("file", ("a.pdf", issued.pdf)), ("file", ("b.pdf", issued.pdf))]
    response = client.post("/verify", files=files, headers=HTML)
    assert response.status_code == 400
    assert "Too many files" in response.text
    _assert_secured(response)
