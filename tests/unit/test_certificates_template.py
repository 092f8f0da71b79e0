"""Sunbird ``${name}`` placeholders, XML-safe filling, QR codes, sanitising and the template cache."""

from __future__ import annotations

import socket
import uuid
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certificates.model import CertificateData, Signatory
from certificates.render import decode_data_uri
from certificates.template import (
    PLACEHOLDERS,
    QR_MASK,
    QR_PIXELS_PER_MODULE,
    SUNBIRD_PLACEHOLDERS,
    TemplateCache,
    TemplateError,
    bundled_template_path,
    estimate_text_width,
    fill_svg,
    fit_font_size,
    is_allowed_url,
    placeholder_values,
    qr_data_uri,
    qr_matrix,
    sanitize_svg,
    xml_escape,
)
from tests.unit.test_certificates_signing import data_from_event

SVG = "{http://www.w3.org/2000/svg}"
NASTY_NAMES = [
    "<tspan>x</tspan>",
    '"/><script>alert(1)</script>',
    "&amp;",
    "Ødegård & Söhne <b>",
    "' onload='alert(1)",
    "${recipientId}",
    "]]><!--",
]


@pytest.fixture(scope="module")
def data() -> CertificateData:
    return data_from_event("gen.request.first.json")


@pytest.fixture(scope="module")
def template() -> str:
    return bundled_template_path().read_text(encoding="utf-8")


def filled(template: str, data: CertificateData) -> str:
    return fill_svg(template, placeholder_values(data, qr_data_uri(data.verify_url)))


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


# -- values ----------------------------------------------------------------------------------


def test_placeholder_values_cover_sunbird_names_and_our_extras(data):
    values = placeholder_values(data, "data:image/svg+xml,x")
    assert set(PLACEHOLDERS) <= set(values)
    assert set(SUNBIRD_PLACEHOLDERS) <= set(values)
    assert values["certificateName"] == "Geometry Essentials"  # course name wins, as in Sunbird
    assert values["courseName"] == "Geometry Essentials"
    assert values["certificateTitle"] == "Geometry Completion Award"
    assert values["issuedDate"] == "30 September 2024"
    assert values["recipientId"] == "lf_user_07"
    assert values["recipientName"] == "Priya Natarajan"
    assert values["issuerName"] == "Lernflow Open School"
    assert values["signatory0Name"] == "Noor Haddad"
    assert values["signatory0Designation"] == "Registrar"
    assert values["signatory0Image"] == "https://assets.lernflow.example/sign/registrar.png"
    assert values["signatory1Name"] == values["signatory1Image"] == ""
    assert values["expiryDate"] == ""
    assert values["qrCodeImage"] == "data:image/svg+xml,x"
    assert values["certificateId"] == data.cert_id
    assert values["batchId"] == "lfbatch0930"
    assert values["verifyUrl"] == f"http://127.0.0.1:8080/certs/{data.cert_id}"


def test_certificate_name_falls_back_to_edata_name_without_a_course_name(data):
    no_course = CertificateData(**{**data.__dict__, "course_name": ""})
    assert placeholder_values(no_course, "")["certificateName"] == "Geometry Completion Award"


def test_dates_render_like_sunbird_with_a_zero_padded_day(data):
    early = CertificateData(
        **{**data.__dict__, "issued_date": "2021-05-07", "expiry": "2023-12-31"}
    )
    values = placeholder_values(early, "")
    assert (values["issuedDate"], values["expiryDate"]) == ("07 May 2021", "31 December 2023")


def test_long_texts_get_smaller_font_sizes_and_short_ones_keep_the_base_size(data):
    long_name = CertificateData(**{**data.__dict__, "recipient_name": "Wolfgang " * 12})
    assert placeholder_values(data, "")["recipientNameFontSize"] == "46"
    shrunk = float(placeholder_values(long_name, "")["recipientNameFontSize"])
    assert 9 <= shrunk < 46
    assert estimate_text_width(long_name.recipient_name, shrunk) <= 960 or shrunk == 9
    assert fit_font_size("", 20, 100) == 20


# -- filling ---------------------------------------------------------------------------------


def test_fill_follows_string_substitutor_rules():
    svg = "<t>${a} $${a} ${unknown} ${b}${a}$</t>"
    assert fill_svg(svg, {"a": "1", "b": ""}) == "<t>1 ${a} ${unknown} 1$</t>"


def test_filled_values_are_not_scanned_again_for_placeholders():
    assert fill_svg("${a}", {"a": "${b}", "b": "no"}) == "${b}"


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_markup_in_a_recipient_name_is_printed_as_text(name, template, data):
    svg = filled(template, CertificateData(**{**data.__dict__, "recipient_name": name}))
    root = ET.fromstring(svg)  # still well-formed
    assert name in texts(svg)
    assert not list(root.iter(f"{SVG}script"))
    assert not list(root.iter(f"{SVG}tspan"))
    assert len(list(root.iter(f"{SVG}image"))) == 3  # two signature slots + the QR, no more


def xml_char(c: str) -> bool:
    """XML 1.0 ``Char`` production."""
    o = ord(c)
    return o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or o >= 0x10000


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=60))
def test_any_value_round_trips_through_element_text_and_attributes(value):
    template = '<svg xmlns="http://www.w3.org/2000/svg"><text a="${v}">${v}</text></svg>'
    element = ET.fromstring(fill_svg(template, {"v": value}))[0]
    expected = "".join(c if xml_char(c) else "\ufffd" for c in value)
    assert (element.text or "") == expected
    assert element.get("a") == expected


def test_characters_xml_cannot_hold_become_replacement_characters():
    assert xml_escape("a\x00b\x1fc") == "a\ufffdb\ufffdc"


# -- QR --------------------------------------------------------------------------------------


def test_qr_code_is_a_png_data_uri_with_whole_pixels_per_module():
    from io import BytesIO

    from PIL import Image

    text = "http://127.0.0.1:8080/certs/" + str(uuid.UUID(int=1))
    uri = qr_data_uri(text)
    assert uri.startswith("data:image/png;base64,")
    img = Image.open(BytesIO(decode_data_uri(uri)))
    n = len(qr_matrix(text))
    assert img.size == (n * QR_PIXELS_PER_MODULE, n * QR_PIXELS_PER_MODULE)


def test_qr_code_matches_segno_with_error_correction_h_and_a_quiet_zone_of_three():
    from io import BytesIO

    import segno
    from PIL import Image

    text = "http://example.org/certs/" + str(uuid.UUID(int=7))
    qr = segno.make_qr(text, error="h", boost_error=False, mask=QR_MASK)
    assert qr.error == "H"
    expected = [[bool(m) for m in row] for row in qr.matrix_iter(border=3)]
    assert expected[0] == [False] * len(expected)  # the quiet zone
    img = Image.open(BytesIO(decode_data_uri(qr_data_uri(text)))).convert("L")
    half = QR_PIXELS_PER_MODULE // 2
    drawn = [
        [img.getpixel((c * QR_PIXELS_PER_MODULE + half, r * QR_PIXELS_PER_MODULE + half)) == 0
         for c in range(len(expected))]
        for r in range(len(expected))
    ]  # fmt: skip
    assert drawn == expected


# -- sanitising ------------------------------------------------------------------------------


HOSTILE = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
  onload="alert(1)" viewBox="0 0 10 10">
  <style>@import url(http://evil.example/a.css); rect { fill: url(http://evil.example/p.svg#g) }</style>
  <script>alert(1)</script>
  <foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>
  <image href="http://evil.example/x.png" width="1" height="1"/>
  <image xlink:href="file:///etc/passwd" width="1" height="1"/>
  <image href="https://cdn.example.org/sig.png" width="1" height="1"/>
  <image href="${qrCodeImage}" width="1" height="1"/>
  <use href="#local"/>
  <rect id="local" style="fill:url(http://evil.example/f.svg#x)" filter="url(#ok)"/>
  <a href="javascript:alert(1)"><text>link</text></a>
  <a href="https://sunbird.org/"><text>ok</text></a>
</svg>"""


def test_sanitize_removes_scripts_handlers_and_foreign_references():
    clean = sanitize_svg(HOSTILE, ("cdn.example.org",))
    assert "script" not in clean
    assert "foreignObject" not in clean
    assert "onload" not in clean
    assert "evil.example" not in clean
    assert "/etc/passwd" not in clean
    assert "javascript:" not in clean
    assert "https://cdn.example.org/sig.png" in clean  # allowed host kept
    assert "${qrCodeImage}" in clean  # placeholders kept for filling
    assert 'href="#local"' in clean
    assert "url(#ok)" in clean
    assert 'href="https://sunbird.org/"' in clean
    root = ET.fromstring(clean)
    assert len(list(root.iter(f"{SVG}image"))) == 2  # the refused ones are gone


@pytest.mark.parametrize(
    "bad",
    [
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>',
        "<svg><unclosed></svg>",
        '<html xmlns="http://www.w3.org/1999/xhtml"/>',
        "not xml at all",
    ],
)
def test_sanitize_refuses_dtds_broken_xml_and_non_svg(bad):
    with pytest.raises(TemplateError):
        sanitize_svg(bad)


def test_bundled_template_survives_sanitising_unchanged_in_meaning(template):
    clean = sanitize_svg(template)
    for name in ("recipientName", "courseName", "qrCodeImage", "certificateId", "verifyUrl"):
        assert "${" + name + "}" in clean
    root = ET.fromstring(clean)
    assert root.get("viewBox") == "0 0 1122 794"


def test_bundled_template_uses_only_local_fonts_and_no_remote_assets(template):
    assert "http://" not in template.replace("http://www.w3.org/", "")
    assert "https://" not in template
    families = {
        e.get("font-family")
        for e in ET.fromstring(template).iter()
        if e.get("font-family") is not None
    }
    assert families == {"DejaVu Serif", "DejaVu Sans"}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("data:image/png;base64,AAAA", True),
        ("https://cdn.example.org/a.png", True),
        ("http://CDN.example.org:8080/a.png", True),
        ("https://cdn.example.org.evil.example/a.png", False),
        ("https://user:pw@cdn.example.org/a.png", False),
        ("https://other.example.org/a.png", False),
        ("file:///etc/passwd", False),
        ("ftp://cdn.example.org/a.png", False),
        ("//cdn.example.org/a.png", False),
        ("a.png", False),
        ("http://templates.local:9000/t.svg", True),
        ("http://templates.local:9001/t.svg", False),
    ],
)
def test_url_policy_allows_only_data_uris_and_configured_hosts(url, allowed):
    assert is_allowed_url(url, ("cdn.example.org", "templates.local:9000")) is allowed


# -- cache -----------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every DNS lookup, so a test can prove nothing was fetched."""
    lookups: list[str] = []

    def refuse(host, *args, **kwargs):
        lookups.append(str(host))
        raise OSError(f"network disabled in tests: {host}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return lookups


def test_cache_reads_local_paths_and_file_urls(template):
    cache = TemplateCache()
    path = bundled_template_path()
    by_path = cache.get(str(path))
    by_url = cache.get(path.as_uri())
    assert by_path == by_url == sanitize_svg(template)
    assert len(cache) == 2


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/t.svg",
        "gopher://example.org/t.svg",
        "data:image/svg+xml,%3Csvg%2F%3E",
        "javascript:alert(1)",
        "file://remote-host/share/t.svg",
    ],
)
def test_cache_refuses_other_schemes(url, no_network):
    with pytest.raises(TemplateError):
        TemplateCache(allowed_hosts=("example.org",)).get(url)
    assert no_network == []


def test_cache_refuses_http_hosts_that_are_not_allowed_without_connecting(no_network):
    cache = TemplateCache(allowed_hosts=("templates.example.org",))
    with pytest.raises(TemplateError, match="not in the allowed hosts"):
        cache.get("https://evil.example/t.svg")
    assert no_network == []


def test_cache_fetches_allowed_hosts_and_reports_network_failures_as_retryable(no_network):
    cache = TemplateCache(allowed_hosts=("templates.example.org",), timeout=1)
    with pytest.raises(TemplateError) as err:
        cache.get("https://templates.example.org/t.svg")
    assert err.value.retryable
    assert "templates.example.org" in no_network


def test_cache_evicts_the_least_recently_used_template(tmp_path):
    def write(name: str, label: str) -> str:
        path = tmp_path / name
        path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg"><text>{label}</text></svg>')
        return str(path)

    a, b, c = write("a.svg", "a1"), write("b.svg", "b1"), write("c.svg", "c1")
    cache = TemplateCache(max_entries=2)
    cache.get(a)
    cache.get(b)
    cache.get(a)  # a is now the most recently used
    cache.get(c)  # evicts b
    write("a.svg", "a2")
    write("b.svg", "b2")
    assert "a1" in cache.get(a)  # cached, never invalidated (as in Sunbird)
    assert "b2" in cache.get(b)  # evicted, so re-read
    assert len(cache) == 2


def test_cache_confines_local_templates_to_the_configured_folders(tmp_path):
    inside = tmp_path / "ok.svg"
    inside.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    cache = TemplateCache(local_roots=[tmp_path])
    assert cache.get(str(inside))
    with pytest.raises(TemplateError, match="outside"):
        cache.get(str(bundled_template_path()))
    with pytest.raises(TemplateError, match="outside"):
        cache.get(str(tmp_path / ".." / "x.svg"))


def test_cache_reports_missing_and_non_svg_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    cache = TemplateCache()
    with pytest.raises(TemplateError, match="cannot read"):
        cache.get(str(tmp_path / "missing.svg"))
    with pytest.raises(TemplateError, match="well-formed"):
        cache.get(str(tmp_path / "notes.txt"))


def test_signatory_lists_longer_than_two_fill_only_two_slots(data):
    many = CertificateData(
        **{
            **data.__dict__,
            "signatories": tuple(Signatory(f"n{i}", f"i{i}", f"d{i}", "") for i in range(4)),
        }
    )
    values = placeholder_values(many, "")
    assert (values["signatory0Name"], values["signatory1Name"]) == ("n0", "n1")
    assert "signatory2Name" not in values
