"""Placeholder values from :class:`CertificateData`: Sunbird's names, our extras, dates, font sizes."""

from __future__ import annotations

import pytest

from lernflow.certificates.model import CertificateData, Signatory
from lernflow.certificates.values import (
    PLACEHOLDERS,
    SUNBIRD_PLACEHOLDERS,
    estimate_text_width,
    fit_font_size,
    placeholder_values,
)
from tests.unit.test_certificates_signing import data_from_event


@pytest.fixture(scope="module")
def data() -> CertificateData:
    return data_from_event("gen.request.first.json")


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
