"""SVG sanitising and the URL policy: what a hostile template loses, what is refused outright."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.sanitize import TemplateError, is_allowed_url, sanitize_svg

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def template() -> str:
    return bundled_template_path().read_text(encoding="utf-8")


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
