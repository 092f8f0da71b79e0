"""`lernflow cert verify` binds the credential to the pages it was issued with (issue 15 D7).

A genuine certificate verifies (exit 0); learner A's genuine credential on learner B's pages,
or an edited page, does not (exit 1, "pages differ from the issued certificate"); a credential
issued before page digests, or a credential on its own, is unchecked (exit 3). Certificates
are made by the production code (certificates.binding.issue_pdf) with the bundled template.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pypdf
import pytest
from pypdf.generic import ArrayObject, DecodedStreamObject, NameObject, NumberObject
from typer.testing import CliRunner

from lernflow import cli
from lernflow.certificates import binding, pdfpages, render
from lernflow.certificates.credential import build_credential
from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.model import CertificateData
from lernflow.certificates.qr import qr_data_uri
from lernflow.certificates.signing import SigningKey, generate_keys, sign_credential
from lernflow.certificates.storage import LocalStorage
from lernflow.certificates.template import fill_svg
from lernflow.certificates.values import placeholder_values
from tests.unit.test_certificates_signing import data_from_event

ISSUER_ID = "http://127.0.0.1:8080/certs/Issuer.json"
ISSUED_AT = datetime(2024, 9, 30, tzinfo=UTC)
RENDERERS = ["cairosvg", "weasyprint"]


@dataclasses.dataclass(frozen=True)
class Learner:
    data: CertificateData
    svg: str
    credential: dict[str, object]


def _learner(name: str, user_id: str, cert_id: str) -> Learner:
    base = data_from_event("gen.request.first.json", cert_id=cert_id)
    data = dataclasses.replace(base, recipient_name=name, recipient_id=user_id)
    template = bundled_template_path().read_text(encoding="utf-8")
    svg = fill_svg(template, placeholder_values(data, qr_data_uri(data.verify_url)))
    return Learner(data, svg, build_credential(data, ISSUER_ID, "unit-d7", ISSUED_AT))


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("d7-keys")


@pytest.fixture(scope="module")
def key(keys_dir: Path) -> SigningKey:
    return generate_keys(keys_dir, kid="unit-d7")


@pytest.fixture(scope="module")
def asha() -> Learner:
    return _learner("Asha Rao", "user-a", "a0000000-0000-4000-8000-00000000000a")


@pytest.fixture(scope="module")
def priya() -> Learner:
    return _learner("Priya Natarajan", "user-b", "b0000000-0000-4000-8000-00000000000b")


@pytest.fixture(scope="module")
def issued(key: SigningKey, asha: Learner, priya: Learner) -> dict[str, binding.IssuedPdf]:
    """Genuine certificates: asha with each renderer, priya with CairoSVG."""
    return {
        "cairosvg": binding.issue_pdf(asha.svg, asha.credential, key, "cairosvg"),
        "weasyprint": binding.issue_pdf(asha.svg, asha.credential, key, "weasyprint"),
        "priya": binding.issue_pdf(priya.svg, priya.credential, key, "cairosvg"),
    }


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def verify(tmp_path: Path, keys_dir: Path, key: SigningKey, store: Path, monkeypatch):
    """`lernflow cert verify` on bytes (written to a file) or a target: (exit code, output
    with its whitespace collapsed)."""
    monkeypatch.setenv("LERNFLOW_CERT_KEYS_DIR", str(keys_dir))
    monkeypatch.setenv("LERNFLOW_CERT_STORAGE_DIR", str(store))

    def run(target: bytes | str, name: str = "certificate.pdf") -> tuple[int, str]:
        if isinstance(target, bytes):
            path = tmp_path / name
            path.write_bytes(target)
            target = str(path)
        result = CliRunner().invoke(cli.app, ["cert", "verify", "--offline", target])
        return result.exit_code, " ".join(result.output.split())  # unwrapped

    return run


def _pages_only(pdf: bytes) -> bytes:
    """The pages of ``pdf`` in a new PDF, without its attachment or metadata."""
    writer = pypdf.PdfWriter()
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _with_token(pdf: bytes, token: str) -> bytes:
    """``pdf``'s pages with ``token`` attached as the credential (nothing else of ``pdf``)."""
    return _attach(_pages_only(pdf), "credential.jwt", token.encode())


def _attach(pdf: bytes, name: str, data: bytes) -> bytes:
    return pdfpages.PdfPages(pdf).with_files([pdfpages.EmbeddedFile(name, data)])


def _keywords_form(pdf: bytes, token: str) -> bytes:
    """``pdf``'s pages with ``token`` in the Keywords metadata (``credential.jwt:<JWT>``), where
    CairoSVG certificates issued before page digests carry it (a real one:
    tests/data/certificates/issued-before-18/keywords-form.pdf, test_cert_interop.py)."""
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(_pages_only(pdf)))
    writer.add_metadata({"/Keywords": f"credential.jwt:{token}"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _rewrite(pdf: bytes, change) -> bytes:
    """``pdf`` re-written by pypdf (its credential kept) after ``change(writer)``, as a forger
    editing the certificate would."""
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(pdf))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _edit_content(pdf: bytes, edit) -> bytes:
    """``pdf`` with page 1's content replaced by ``edit(content)``, credential kept."""

    def change(writer: pypdf.PdfWriter) -> None:
        page = writer.pages[0]
        stream = DecodedStreamObject()
        contents = page.get_contents()
        assert contents is not None
        stream.set_data(edit(contents.get_data()))
        page[NameObject("/Contents")] = writer._add_object(stream)

    return _rewrite(pdf, change)


def _claims(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


# -- a genuine certificate ------------------------------------------------------------------


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_genuine_certificate_is_valid(renderer, issued, verify):
    cert = issued[renderer]
    assert render.extract_attachment(cert.pdf) == cert.token.encode()
    assert _claims(cert.token)["pdf_pages"] == {
        "form": "lernflow-pages-1",
        "sha256": cert.pages_digest,
    }
    code, output = verify(cert.pdf)
    assert code == 0, output
    assert "VALID: signature valid; the pages are the ones issued" in output
    assert '"name": "Asha Rao"' in output  # the claims are shown


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_digest_ignores_the_attachment_and_a_re_save_but_not_the_learner(renderer, issued):
    cert = issued[renderer]
    assert pdfpages.pages_digest(cert.pdf) == cert.pages_digest
    assert pdfpages.pages_digest(_pages_only(cert.pdf)) == cert.pages_digest
    assert pdfpages.pages_digest(cert.pdf) != pdfpages.pages_digest(issued["priya"].pdf)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_credential_is_appended_and_another_reader_finds_it(renderer, issued, asha):
    import pypdfium2

    cert = issued[renderer]
    pages = render.render_pdf(asha.svg, renderer)
    appended = _attach(pages, "credential.jwt", cert.token.encode())
    assert appended.startswith(pages)  # an incremental update: the pages' bytes untouched
    assert pdfpages.pages_digest(appended) == pdfpages.pages_digest(pages)
    document = pypdfium2.PdfDocument(cert.pdf)
    try:
        assert len(document) == 1 and document.count_attachments() == 2
        found = {}
        for i in range(2):
            attachment = document.get_attachment(i)
            found[attachment.get_name()] = bytes(attachment.get_data())
        assert found["credential.jwt"] == cert.token.encode()
        assert json.loads(found["credential.json"]) == _claims(cert.token)["vc"]
    finally:
        document.close()


def test_a_second_attachment_goes_through_pypdfs_writer_and_keeps_the_pages(issued):
    cert = issued["cairosvg"]
    both = pdfpages.PdfPages(cert.pdf).with_files(
        [pdfpages.EmbeddedFile("notes.txt", b"hello", "text/plain", "notes", "Supplement")]
    )
    assert both.startswith(cert.pdf)
    attachments = pypdf.PdfReader(io.BytesIO(both)).attachments
    assert sorted(attachments) == ["credential.json", "credential.jwt", "notes.txt"]
    catalog = pypdf.PdfReader(io.BytesIO(both)).trailer["/Root"]
    specs = {str(ref.get_object()["/F"]): ref.get_object() for ref in catalog["/AF"]}  # type: ignore[index]
    assert sorted(specs) == ["credential.json", "credential.jwt", "notes.txt"]  # all associated
    notes = specs["notes.txt"]
    assert (notes["/AFRelationship"], notes["/UF"], notes["/Desc"]) == (
        "/Supplement",
        "notes.txt",
        "notes",
    )
    assert notes["/EF"]["/F"].get_object()["/Subtype"] == "/text/plain"
    assert render.extract_attachment(both) == cert.token.encode()
    assert pdfpages.pages_digest(both) == cert.pages_digest


def test_files_to_embed_need_distinct_names(issued):
    pages = pdfpages.PdfPages(issued["cairosvg"].pdf)
    with pytest.raises(ValueError, match="distinct names"):
        pages.with_files(
            [pdfpages.EmbeddedFile("a.txt", b"1"), pdfpages.EmbeddedFile("a.txt", b"2")]
        )
    with pytest.raises(ValueError, match="one or more"):
        pages.with_files([])


def test_a_re_saved_genuine_pdf_stays_valid(issued, verify):
    resaved = _with_token(issued["cairosvg"].pdf, issued["cairosvg"].token)
    assert resaved != issued["cairosvg"].pdf
    code, output = verify(resaved)
    assert code == 0, output


# -- swapped or edited pages ----------------------------------------------------------------


def test_learner_as_credential_on_learner_bs_pages_is_not_valid(issued, verify):
    swapped = _with_token(issued["priya"].pdf, issued["cairosvg"].token)
    assert render.extract_attachment(swapped) == issued["cairosvg"].token.encode()
    code, output = verify(swapped)
    assert code == 1, output
    assert "NOT VALID: pages differ from the issued certificate" in output
    assert "Asha Rao" not in output  # the credential's claims are not shown as if valid


def test_a_credential_in_the_keywords_of_other_pages_is_not_valid(issued, priya, verify):
    # the form the CairoSVG renderer wrote before page digests: the JWT in the Keywords
    swapped = _keywords_form(issued["priya"].pdf, issued["cairosvg"].token)
    code, output = verify(swapped)
    assert code == 1, output
    assert "NOT VALID: pages differ from the issued certificate" in output


def test_an_edited_name_is_not_valid(issued, verify):
    genuine = issued["cairosvg"].pdf
    contents = pypdf.PdfReader(io.BytesIO(genuine)).pages[0].get_contents()
    assert contents is not None
    assert b"(Asha)" in contents.get_data()
    edited = _edit_content(genuine, lambda c: c.replace(b"(Asha)", b"(Rosa)"))
    assert "Rosa Rao" in pypdf.PdfReader(io.BytesIO(edited)).pages[0].extract_text()
    code, output = verify(edited)
    assert code == 1, output
    assert "NOT VALID: pages differ from the issued certificate" in output


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_whited_out_area_is_not_valid(renderer, issued, verify):
    edited = _edit_content(
        issued[renderer].pdf, lambda c: c + b"\nq 1 1 1 rg 100 200 400 60 re f Q\n"
    )
    code, output = verify(edited)
    assert code == 1, output
    assert "NOT VALID: pages differ from the issued certificate" in output


def test_an_added_page_is_not_valid(issued, verify):
    code, output = verify(_rewrite(issued["cairosvg"].pdf, lambda w: w.add_blank_page()))
    assert code == 1, output
    assert "NOT VALID: pages differ from the issued certificate" in output


def test_a_tampered_credential_still_fails_on_its_signature(issued, verify):
    head, _body, sig = issued["cairosvg"].token.split(".")
    claims = _claims(issued["cairosvg"].token)
    claims["pdf_pages"]["sha256"] = issued["priya"].pages_digest  # point it at other pages
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = _with_token(issued["priya"].pdf, f"{head}.{forged_body}.{sig}")
    code, output = verify(forged)
    assert code == 1, output
    assert "NOT VALID: signature" in output


def test_a_pdf_without_credential_or_with_unreadable_pages_is_not_valid(issued, verify):
    code, output = verify(_pages_only(issued["cairosvg"].pdf))
    assert (code, "NOT VALID: no embedded credential" in output) == (1, True), output
    writer = pypdf.PdfWriter()
    page = writer.add_blank_page(200, 200)
    nested = ArrayObject([NumberObject(1)])
    for _ in range(200):  # deeper than the digest follows
        nested = ArrayObject([nested])
    page[NameObject("/Deep")] = nested
    out = io.BytesIO()
    writer.write(out)
    hostile = _with_token(out.getvalue(), issued["cairosvg"].token)
    code, output = verify(hostile)
    assert code == 1, output
    assert "NOT VALID: pages cannot be read" in output


# -- credentials that cannot say which pages are theirs -------------------------------------


@pytest.fixture(scope="module")
def pre_change(key: SigningKey, asha: Learner) -> tuple[str, bytes]:
    """A certificate as issued before page digests: no pdf_pages claim, JWT in the Keywords."""
    token = sign_credential(asha.credential, key)
    return token, _keywords_form(render.render_pdf(asha.svg, "cairosvg"), token)


def test_a_credential_issued_before_page_digests_is_unchecked(pre_change, verify):
    token, pdf = pre_change
    assert "pdf_pages" not in _claims(token)
    code, output = verify(pdf)
    assert code == 3, output
    assert "UNCHECKED: signature valid; this credential carries no page digest" in output
    assert "no stored copy at hand" in output


def test_without_digest_the_stored_copy_decides(pre_change, issued, asha, store, verify):
    token, pdf = pre_change
    LocalStorage(store).put(f"{asha.data.batch_id}/{asha.data.cert_id}.pdf", pdf, "application/pdf")
    code, output = verify(pdf)
    assert code == 0, output
    assert "VALID: signature valid; the pages match the stored copy" in output
    code, output = verify(_with_token(issued["priya"].pdf, token))
    assert code == 1, output
    assert "NOT VALID: pages differ from the stored copy issued with this credential" in output


def test_a_credential_on_its_own_is_unchecked(issued, verify):
    code, output = verify(issued["cairosvg"].token.encode(), name="credential.jwt")
    assert code == 3, output
    assert (
        "UNCHECKED: signature valid; a credential on its own: the pages were not checked" in output
    )


def test_an_unknown_digest_form_is_unchecked(key, asha, issued, verify):
    claim = {"form": "lernflow-pages-99", "sha256": issued["cairosvg"].pages_digest}
    token = sign_credential(asha.credential, key, {"pdf_pages": claim})
    code, output = verify(_with_token(issued["cairosvg"].pdf, token))
    assert code == 3, output
    assert "form this version does not know" in output


# -- stored certificates by id; usage errors ------------------------------------------------


def test_a_stored_certificate_verifies_by_id(issued, asha, store, verify):
    LocalStorage(store).put(
        f"{asha.data.batch_id}/{asha.data.cert_id}.pdf", issued["cairosvg"].pdf, "application/pdf"
    )
    code, output = verify(asha.data.cert_id)
    assert code == 0, output


@pytest.mark.parametrize("target", ["no-such-certificate", "../../no-such-dir/x", "*"])
def test_nothing_to_verify_is_a_usage_error(target, verify):
    code, output = verify(target)
    assert code == 2, output


def test_extra_claims_cannot_replace_the_standard_ones(key, asha):
    with pytest.raises(ValueError, match="may not replace"):
        sign_credential(asha.credential, key, {"sub": "someone-else"})


# -- the generator --------------------------------------------------------------------------


def test_the_generator_issues_certificates_that_verify(tmp_path, key, keys_dir, asha, verify):
    from lernflow.flows.certificate_generator.maker import MakeJob, make_certificate

    job = MakeJob(asha.data, bundled_template_path().read_text(encoding="utf-8"), "cairosvg",
                  (), ISSUER_ID, LocalStorage(tmp_path / "made"))  # fmt: skip
    made = make_certificate(job, key)
    code, output = verify(Path(made.pdf_url).read_bytes())
    assert code == 0, output
