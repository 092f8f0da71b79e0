"""PDF rendering with both renderers, the embedded credential, previews, and refused fetches."""

from __future__ import annotations

import io
import logging
import socket
from datetime import UTC, datetime
from pathlib import Path

import pypdf
import pytest

from lernflow.certificates.binding import issue_pdf
from lernflow.certificates.credential import build_credential
from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.model import CertificateData, Signatory
from lernflow.certificates.pdfpages import EmbeddedFile, PdfPages
from lernflow.certificates.qr import qr_data_uri
from lernflow.certificates.render import (
    GuardedCairoFetcher,
    extract_attachment,
    page_size_pt,
    preview_png,
    render_pdf,
)
from lernflow.certificates.sanitize import RefusedURLError, TemplateError
from lernflow.certificates.signing import (
    SigningKey,
    generate_keys,
    load_public_keys,
    verify_credential,
)
from lernflow.certificates.template import fill_svg
from lernflow.certificates.values import placeholder_values
from lernflow.certificates.weasy import GuardedWeasyFetcher
from tests.qrkit import qr_matrix
from tests.unit.test_certificates_signing import data_from_event

RENDERERS = ["weasyprint", "cairosvg"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
A4_LANDSCAPE = (841.89, 595.28)


@pytest.fixture(scope="module")
def data() -> CertificateData:
    base = data_from_event("gen.request.first.json")
    return CertificateData(
        **{
            **base.__dict__,
            "recipient_name": "Priya Natarajan",
            "certificate_name": "Course Completion Certificate",
            "signatories": (
                *base.signatories,
                Signatory("Marek Kowalczyk", "DIR", "Director of Studies", ""),
            ),
        }
    )


@pytest.fixture(scope="module")
def signed(
    data: CertificateData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SigningKey, dict[str, object]]:
    keydir = tmp_path_factory.mktemp("render-keys")
    return generate_keys(keydir), load_public_keys(keydir)


@pytest.fixture(scope="module")
def svg(data: CertificateData) -> str:
    template = bundled_template_path().read_text(encoding="utf-8")
    return fill_svg(template, placeholder_values(data, qr_data_uri(data.verify_url)))


@pytest.fixture(scope="module")
def issued(svg: str, signed: tuple[SigningKey, dict[str, object]], data: CertificateData):
    key = signed[0]
    vc = build_credential(
        data, "http://127.0.0.1:8080/certs/Issuer.json", key.kid, datetime(2021, 5, 27, tzinfo=UTC)
    )
    return {r: issue_pdf(svg, vc, key, r) for r in RENDERERS}  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pdfs(issued) -> dict[str, bytes]:
    return {r: issued[r].pdf for r in RENDERERS}


@pytest.mark.parametrize("renderer", RENDERERS)
def test_sample_certificate_renders_to_one_landscape_a4_page(renderer, pdfs):
    reader = pypdf.PdfReader(io.BytesIO(pdfs[renderer]))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert float(box.width) == pytest.approx(A4_LANDSCAPE[0], abs=0.5)
    assert float(box.height) == pytest.approx(A4_LANDSCAPE[1], abs=0.5)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_pdf_text_shows_the_recipient_course_and_certificate(renderer, pdfs, data):
    text = pypdf.PdfReader(io.BytesIO(pdfs[renderer])).pages[0].extract_text()
    for expected in (
        data.recipient_name,
        data.course_name,
        "Course Completion Certificate",
        "30 September 2024",
        "Noor Haddad",
        "Marek Kowalczyk",
        data.cert_id,
    ):
        assert expected in text


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_signed_jwt_is_embedded_and_verifies(renderer, pdfs, issued, signed, data):
    public_keys = signed[1]
    embedded = extract_attachment(pdfs[renderer])
    assert embedded is not None
    assert embedded == issued[renderer].token.encode("ascii")
    claims = verify_credential(embedded.decode("ascii"), public_keys)
    assert claims["vc"]["credentialSubject"]["name"] == data.recipient_name


@pytest.mark.parametrize("renderer", RENDERERS)
def test_preview_png_is_written_for_a_visual_check(renderer, pdfs):
    png = preview_png(pdfs[renderer], width=1200)
    assert png.startswith(PNG_MAGIC)
    width = int.from_bytes(png[16:20], "big")
    assert width == 1200
    Path(f"/tmp/cert-preview-{renderer}.png").write_bytes(png)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_printed_qr_code_is_module_for_module_the_verify_url(renderer, pdfs, data):
    import segno
    from PIL import Image

    width = 2244  # 2 px per template unit, about 5 px per module
    image = Image.open(io.BytesIO(preview_png(pdfs[renderer], width=width))).convert("L")
    scale = width / 1122
    x0, y0, size = 496, 522, 130  # the QR <image> box in the bundled template
    rows = qr_matrix(data.verify_url)
    assert segno.make_qr(data.verify_url, error="h", boost_error=False).error == "H"
    module = size / len(rows)
    mismatches = 0
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            px = (x0 + (c + 0.5) * module) * scale
            py = (y0 + (r + 0.5) * module) * scale
            value = image.getpixel((round(px), round(py)))
            assert isinstance(value, int)
            printed_dark = value < 128
            mismatches += printed_dark != bool(dark)
    assert mismatches == 0


def test_preview_png_of_an_svg_uses_cairosvg(svg):
    png = preview_png(svg.encode("utf-8"), width=600)
    assert png.startswith(PNG_MAGIC)
    assert int.from_bytes(png[16:20], "big") == 600


def test_pdf_without_attachment_has_none_and_garbage_has_none(svg):
    pdf = render_pdf(svg, "cairosvg")
    assert extract_attachment(pdf) is None
    assert extract_attachment(b"not a pdf") is None


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_renderers_draw_pages_only_and_the_attachment_name_is_configurable(svg, renderer):
    pdf = render_pdf(svg, renderer)  # type: ignore[arg-type]
    assert pypdf.PdfReader(io.BytesIO(pdf)).attachments == {}
    with_json = PdfPages(pdf).with_files([EmbeddedFile("credential.json", b"{}")])
    assert extract_attachment(with_json, "credential.json") == b"{}"
    assert extract_attachment(with_json) is None


def test_unknown_renderer_and_broken_svg_are_refused(svg):
    with pytest.raises(ValueError, match="renderer"):
        render_pdf(svg, "chromium")  # type: ignore[arg-type]
    with pytest.raises(TemplateError):
        render_pdf("<svg", "cairosvg")


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ('width="297mm" height="210mm" viewBox="0 0 1122 794"', A4_LANDSCAPE),
        ('viewBox="0 0 1122 794"', (841.5, 595.5)),
        ('width="400" height="200"', (300.0, 150.0)),
        ('width="8in" viewBox="0 0 800 400"', (576.0, 288.0)),
        ('width="100%" height="100%"', A4_LANDSCAPE),
    ],
)
def test_page_size_comes_from_width_height_or_viewbox(attrs, expected):
    size = page_size_pt(f'<svg xmlns="http://www.w3.org/2000/svg" {attrs}/>')
    assert size == pytest.approx(expected, abs=0.01)


# -- refused fetches -------------------------------------------------------------------------

REMOTE = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="400" height="200" viewBox="0 0 400 200">
  <rect width="400" height="200" fill="#eee"/>
  <image href="http://evil.example/x.png" x="0" y="0" width="100" height="100"/>
  <image xlink:href="https://evil.example/y.svg" x="100" y="0" width="100" height="100"/>
  <text x="10" y="150" font-family="DejaVu Sans" font-size="20">remote</text>
</svg>"""


@pytest.fixture
def network(monkeypatch):
    """Record every DNS lookup and connection attempt, and refuse them."""
    attempts: list[str] = []

    def lookup(host, *args, **kwargs):
        attempts.append(f"getaddrinfo {host}")
        raise OSError(f"network disabled in tests: {host}")

    def connect(self, address):
        attempts.append(f"connect {address}")
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.mark.parametrize("renderer", RENDERERS)
def test_remote_images_are_not_fetched_when_their_host_is_not_allowed(renderer, network, caplog):
    with caplog.at_level(logging.WARNING):
        pdf = render_pdf(REMOTE, renderer)  # type: ignore[arg-type]
    assert network == []
    assert "remote" in pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "evil.example" in caplog.text  # the refusal is logged


@pytest.mark.parametrize("renderer", RENDERERS)
def test_allowed_hosts_are_fetched_which_proves_the_guard_above_is_real(renderer, network):
    render_pdf(REMOTE, renderer, allowed_hosts=("evil.example",))  # type: ignore[arg-type]
    assert network  # a fetch was attempted (and failed harmlessly: image skipped)


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example/x.png",
        "file:///etc/passwd",
        "ftp://evil.example/x",
        "https://user:pw@cdn.example.org/x.png",
    ],
)
def test_both_url_fetchers_refuse_what_the_policy_refuses(url, network):
    weasy = GuardedWeasyFetcher(("cdn.example.org",))
    with pytest.raises(RefusedURLError):
        weasy.fetch(url)
    cairo = GuardedCairoFetcher(("cdn.example.org",))
    assert cairo(url, "image/*") == b""
    assert weasy.refused == cairo.refused == [url]
    assert network == []


def test_url_fetchers_serve_data_uris():
    uri = "data:image/svg+xml;charset=utf-8,%3Csvg%2F%3E"
    assert GuardedCairoFetcher()(uri, "image/svg+xml") == b"<svg/>"
    assert GuardedWeasyFetcher().fetch(uri).read() == b"<svg/>"
