"""Filling Sunbird ``${name}`` placeholders: substitution rules and XML-safe values."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.model import CertificateData
from lernflow.certificates.qr import qr_data_uri
from lernflow.certificates.sanitize import xml_escape
from lernflow.certificates.template import fill_svg
from lernflow.certificates.values import placeholder_values
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
