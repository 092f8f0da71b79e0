"""Our certificates as a verifier outside lernflow sees them (issue 18 items 1 and 4).

Certificates are made by the generator's own code (``maker.make_certificate``: fill, render,
sign, attach, store) with each renderer, then checked with tools that share no code with
lernflow: poppler's ``pdfdetach`` finds and extracts the credential, ``pdftoppm`` + ``zbarimg``
read the printed QR code, and joserfc (production signs with pyjwt) verifies the JWT against
the JWKS ``lernflow cert keys export`` prints. Certificates issued before the credential became
an associated file (tests/data/certificates/issued-before-18/, written by the code of 3131fd2)
still verify. docs/flows/certificate-generator.md §6 and §8.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import subprocess
from pathlib import Path

import pypdf
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from typer.testing import CliRunner

from lernflow import cli
from lernflow.certificates import pdfpages, render
from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.signing import SigningKey, generate_keys
from lernflow.certificates.storage import LocalStorage, object_key
from lernflow.flows.certificate_generator.maker import MakeJob, make_certificate
from tests.unit.test_certificates_signing import data_from_event

RENDERERS = ["cairosvg", "weasyprint"]
ISSUER_ID = "http://127.0.0.1:8080/certs/issuer"
OLD = Path(__file__).parents[1] / "data" / "certificates" / "issued-before-18"


@dataclasses.dataclass(frozen=True)
class Made:
    """A certificate the generator made: its stored PDF and the stored credential (JWT)."""

    cert_id: str
    pdf: Path
    stored_token: bytes
    credential: dict[str, object]


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interop-keys")


@pytest.fixture(scope="module")
def key(keys_dir: Path) -> SigningKey:
    return generate_keys(keys_dir, kid="interop")


@pytest.fixture(scope="module")
def made(key: SigningKey, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Made]:
    """One certificate per renderer, made and stored as the generator does."""
    root = tmp_path_factory.mktemp("interop-store")
    storage = LocalStorage(root)
    template = bundled_template_path().read_text(encoding="utf-8")
    result = {}
    for number, renderer in enumerate(RENDERERS):
        cert_id = f"d0000000-0000-4000-8000-00000000001{number}"
        data = data_from_event("gen.request.first.json", cert_id=cert_id)
        job = MakeJob(
            data=data,
            svg_template=template,
            renderer=renderer,  # type: ignore[arg-type]
            hosts=(),
            issuer_id=ISSUER_ID,
            storage=storage,
        )
        cert = make_certificate(job, key)
        base = object_key(data.batch_id, cert_id).removesuffix(".pdf")
        result[renderer] = Made(
            cert_id=cert_id,
            pdf=root / f"{base}.pdf",
            stored_token=storage.get(f"{base}.jwt"),
            credential=cert.credential,
        )
    return result


def _run(*args: str | Path) -> str:
    """A tool's standard output; it must exit 0."""
    done = subprocess.run([str(a) for a in args], capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, (args, done.returncode, done.stderr.decode(errors="replace"))
    return done.stdout.decode()


def _claims(token: bytes) -> dict:
    body = token.split(b".")[1]
    return json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))


# -- the credential is an embedded, associated file ------------------------------------------


@pytest.mark.parametrize("renderer", RENDERERS)
def test_pdfdetach_lists_the_credential(renderer, made):
    listing = _run("pdfdetach", "-list", made[renderer].pdf).splitlines()
    assert listing[0] == "2 embedded files"
    assert sorted(line.split(": ", 1)[1] for line in listing[1:]) == [
        "credential.json",
        "credential.jwt",
    ]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_pdfdetach_extracts_the_jwt_the_store_has(renderer, made, tmp_path):
    cert = made[renderer]
    jwt_out, json_out = tmp_path / "out.jwt", tmp_path / "out.json"
    _run("pdfdetach", "-savefile", "credential.jwt", "-o", jwt_out, cert.pdf)
    _run("pdfdetach", "-savefile", "credential.json", "-o", json_out, cert.pdf)
    assert jwt_out.read_bytes() == cert.stored_token
    assert json.loads(json_out.read_bytes()) == _claims(cert.stored_token)["vc"]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_credential_is_a_pdf_a3_associated_file_beside_unchanged_pages(renderer, made):
    pdf = made[renderer].pdf.read_bytes()
    catalog = pypdf.PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    specs = {str(ref.get_object()["/F"]): ref.get_object() for ref in catalog["/AF"]}  # type: ignore[index]
    assert sorted(specs) == ["credential.json", "credential.jwt"]
    jwt_spec = specs["credential.jwt"]
    assert jwt_spec["/AFRelationship"] == "/Data"
    assert jwt_spec["/UF"] == "credential.jwt"
    stream = jwt_spec["/EF"]["/F"].get_object()
    assert stream["/Subtype"] == "/application/jwt"
    assert stream["/Params"]["/Size"] == len(made[renderer].stored_token)
    assert str(stream["/Params"]["/ModDate"]).startswith("D:")
    assert specs["credential.json"]["/EF"]["/F"].get_object()["/Subtype"] == "/application/json"
    # attaching left the pages as they were signed: the digest in the JWT is theirs
    signed = _claims(made[renderer].stored_token)["pdf_pages"]["sha256"]
    assert pdfpages.pages_digest(pdf) == signed
    assert pdf.rfind(b"%%EOF", 0, len(pdf) - 8) > 0  # the rendered PDF, then an update


# -- the printed QR code ---------------------------------------------------------------------


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_qr_reader_decodes_the_credentials_verification_url(renderer, made, tmp_path):
    cert = made[renderer]
    _run("pdftoppm", "-r", "150", "-png", "-singlefile", cert.pdf, tmp_path / "page")
    decoded = _run("zbarimg", "--quiet", "--raw", tmp_path / "page.png").strip()
    evidence = cert.credential["evidence"]
    assert isinstance(evidence, list)
    assert decoded == evidence[0]["id"] == f"http://127.0.0.1:8080/certs/{cert.cert_id}"


# -- an independent JOSE library -------------------------------------------------------------


@pytest.fixture(scope="module")
def exported_jwks(keys_dir: Path, key: SigningKey) -> KeySet:
    """The key set as `lernflow cert keys export` prints it, read by joserfc."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LERNFLOW_CERT_KEYS_DIR", str(keys_dir))
        result = CliRunner().invoke(cli.app, ["cert", "keys", "export"])
    assert result.exit_code == 0, result.output
    return KeySet.import_key_set(json.loads(result.stdout))


@pytest.mark.parametrize("renderer", RENDERERS)
def test_joserfc_verifies_the_jwt_against_the_exported_jwks(renderer, made, exported_jwks):
    cert = made[renderer]
    token = jwt.decode(cert.stored_token, exported_jwks, algorithms=["ES256"])
    assert token.header["kid"] == "interop"
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER_ID},
        jti={"essential": True, "value": f"urn:uuid:{cert.cert_id}"},
        nbf={"essential": True},
    ).validate(token.claims)
    assert token.claims["vc"] == cert.credential


def test_joserfc_rejects_a_tampered_payload(made, exported_jwks):
    head, _body, signature = made["cairosvg"].stored_token.split(b".")
    claims = _claims(made["cairosvg"].stored_token)
    claims["vc"]["credentialSubject"]["name"] = "Someone Else"
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    with pytest.raises(BadSignatureError):
        jwt.decode(b".".join([head, body, signature]), exported_jwks, algorithms=["ES256"])


# -- certificates issued before the credential was an associated file ------------------------


@pytest.fixture
def verify_old(monkeypatch, tmp_path):
    """`lernflow cert verify` with the fixtures' public key: (exit code, collapsed output)."""
    monkeypatch.setenv("LERNFLOW_CERT_KEYS_DIR", str(OLD / "keys"))
    monkeypatch.setenv("LERNFLOW_CERT_STORAGE_DIR", str(tmp_path / "store"))

    def run(pdf: Path) -> tuple[int, str]:
        result = CliRunner().invoke(cli.app, ["cert", "verify", "--offline", str(pdf)])
        return result.exit_code, " ".join(result.output.split())

    return run


def test_a_certificate_with_the_jwt_in_its_keywords_still_verifies(verify_old):
    pdf = OLD / "keywords-form.pdf"
    assert _run("pdfdetach", "-list", pdf).startswith("0 embedded files")
    found = render.find_attachment(pdf.read_bytes())
    assert found is not None and found.where == render.KEYWORDS
    assert found.data == (OLD / "keywords-form.jwt").read_bytes()
    code, output = verify_old(pdf)
    assert code == 3, output  # no page digest then: signature valid, pages unchecked
    assert "credential ok in the Keywords metadata (credential.jwt:…)" in output
    assert "signature ok" in output
    assert "UNCHECKED: signature valid; this credential carries no page digest" in output


def test_a_certificate_with_a_plain_embedded_jwt_still_verifies(verify_old):
    pdf = OLD / "embedded-form.pdf"
    found = render.find_attachment(pdf.read_bytes())
    assert found is not None and found.where == render.EMBEDDED
    assert found.data == (OLD / "embedded-form.jwt").read_bytes()
    code, output = verify_old(pdf)
    assert code == 0, output
    assert "credential ok the embedded file credential.jwt" in output
    assert "VALID: signature valid; the pages are the ones issued" in output


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_new_certificate_says_where_its_credential_is(renderer, made, keys_dir, monkeypatch):
    monkeypatch.setenv("LERNFLOW_CERT_KEYS_DIR", str(keys_dir))
    result = CliRunner().invoke(cli.app, ["cert", "verify", "--offline", str(made[renderer].pdf)])
    output = " ".join(result.output.split())
    assert result.exit_code == 0, output
    assert "credential ok the embedded file credential.jwt" in output


@pytest.mark.parametrize("renderer", RENDERERS)
def test_rewriting_the_metadata_keeps_the_credential(renderer, made, keys_dir, tmp_path):
    """A tool that rewrites the document information (as a mail gateway or an optimiser may)
    stripped the old Keywords form; the associated file stays."""
    writer = pypdf.PdfWriter(clone_from=made[renderer].pdf)
    writer.add_metadata({"/Keywords": "rewritten", "/Producer": "some optimiser"})
    rewritten = tmp_path / "rewritten.pdf"
    with rewritten.open("wb") as out:
        writer.write(out)
    assert "credential.jwt" in _run("pdfdetach", "-list", rewritten)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LERNFLOW_CERT_KEYS_DIR", str(keys_dir))
        result = CliRunner().invoke(cli.app, ["cert", "verify", "--offline", str(rewritten)])
    assert result.exit_code == 0, result.output


def test_the_embedded_file_comes_before_the_keywords(made):
    """A PDF carrying both forms: the embedded file is the credential."""
    writer = pypdf.PdfWriter(clone_from=made["cairosvg"].pdf)
    writer.add_metadata({"/Keywords": "credential.jwt:not.the.one"})
    out = io.BytesIO()
    writer.write(out)
    found = render.find_attachment(out.getvalue())
    assert found == render.FoundAttachment(made["cairosvg"].stored_token, render.EMBEDDED)
