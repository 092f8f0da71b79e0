"""The values of a certificate template's ``${name}`` placeholders, from :class:`CertificateData`.

Sunbird's legacy SVG filler (docs/flows/certificate-generator.md#7-svg-template) knows the
names in :data:`SUNBIRD_PLACEHOLDERS`; we add :data:`EXTRA_PLACEHOLDERS` and, for the bundled
template, font sizes that make long texts fit (:data:`BUNDLED_TEXT_FIT`). Values are raw text:
:func:`certificates.template.fill_svg` escapes them.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from datetime import date

from lernflow.certificates.model import CertificateData

SUNBIRD_PLACEHOLDERS: tuple[str, ...] = (
    "certificateName",
    "certificateDescription",
    "courseName",
    "issuedDate",
    "recipientId",
    "recipientName",
    "signatory0Image",
    "signatory0Designation",
    "signatory1Image",
    "signatory1Designation",
    "expiryDate",
    "issuerName",
    "qrCodeImage",
)
"""The placeholders Sunbird's legacy SVG filler knows.

See docs/flows/certificate-generator.md#7-svg-template.
"""

EXTRA_PLACEHOLDERS: tuple[str, ...] = (
    "certificateId",
    "batchId",
    "verifyUrl",
    "signatory0Name",
    "signatory1Name",
    "certificateTitle",
)
"""Our additions: ``certificateTitle`` is Sunbird's ``edata.name`` (the certificate's own name,
which ``certificateName`` hides when the course has a name)."""

PLACEHOLDERS: tuple[str, ...] = SUNBIRD_PLACEHOLDERS + EXTRA_PLACEHOLDERS

MONTHS: tuple[str, ...] = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

BUNDLED_TEXT_FIT: Mapping[str, tuple[str, float, float]] = {
    "certificateTitleFontSize": ("certificateTitle", 42.0, 960.0),
    "issuerNameFontSize": ("issuerName", 15.0, 960.0),
    "recipientNameFontSize": ("recipientName", 46.0, 960.0),
    "courseNameFontSize": ("courseName", 28.0, 960.0),
    "signatory0NameFontSize": ("signatory0Name", 16.0, 420.0),
    "signatory0DesignationFontSize": ("signatory0Designation", 14.0, 420.0),
    "signatory1NameFontSize": ("signatory1Name", 16.0, 420.0),
    "signatory1DesignationFontSize": ("signatory1Designation", 14.0, 420.0),
}
"""Font-size placeholders of the bundled template: name → (text placeholder, base size, width).

SVG text does not wrap or shrink, so :func:`placeholder_values` computes a font size that makes
the text fit the template's column (long names and course names shrink, short ones keep the
base size)."""

MIN_FONT_SIZE = 9.0


def format_date(day: date) -> str:
    """Sunbird's ``dd MMMM yyy`` in English, e.g. ``27 May 2021``, ``07 May 2021``."""
    return f"{day.day:02d} {MONTHS[day.month - 1]} {day.year}"


def estimate_text_width(text: str, font_size: float) -> float:
    """A slightly generous estimate of the rendered width of ``text`` in DejaVu (bold) fonts.

    Per-class average advances measured on DejaVu Serif/Sans Bold; wide (CJK) characters
    count one em.
    """
    ems = 0.0
    for char in text:
        if unicodedata.east_asian_width(char) in ("W", "F"):
            ems += 1.0
        elif char.isspace():
            ems += 0.35
        elif char.isupper():
            ems += 0.80
        elif char.isdigit():
            ems += 0.70
        elif unicodedata.combining(char):
            continue
        elif char.islower():
            ems += 0.64
        else:
            ems += 0.65
    return ems * font_size


def fit_font_size(text: str, base: float, max_width: float) -> float:
    """``base``, or the smaller size (not below :data:`MIN_FONT_SIZE`) that fits ``max_width``."""
    width = estimate_text_width(text, base)
    if width <= max_width:
        return base
    return max(MIN_FONT_SIZE, math.floor(base * max_width / width * 10) / 10)


def _size(value: float) -> str:
    return f"{value:g}"


def placeholder_values(
    data: CertificateData,
    qr_data_uri: str,
    text_fit: Mapping[str, tuple[str, float, float]] = BUNDLED_TEXT_FIT,
) -> dict[str, str]:
    """The value of every placeholder in :data:`PLACEHOLDERS` for one certificate.

    ``certificateName`` is the course name when there is one, else the certificate name (as
    Sunbird's ``badge.name``); ``issuedDate`` and ``expiryDate`` are rendered like
    ``27 May 2021``; missing signatories give empty strings. Values are raw text: escaping
    is :func:`certificates.template.fill_svg`'s job.

    ``text_fit`` adds font-size placeholders (see :data:`BUNDLED_TEXT_FIT`); templates that do
    not use them are unaffected.
    """
    signatories = list(data.signatories[:2])
    values = {
        "certificateName": data.course_name or data.certificate_name,
        "certificateDescription": data.description,
        "courseName": data.course_name,
        "issuedDate": format_date(date.fromisoformat(data.issued_date)),
        "recipientId": data.recipient_id,
        "recipientName": data.recipient_name,
        "expiryDate": "",
        "issuerName": data.issuer_name,
        "qrCodeImage": qr_data_uri,
        "certificateId": data.cert_id,
        "batchId": data.batch_id,
        "verifyUrl": data.verify_url,
        "certificateTitle": data.certificate_name,
    }
    expiry = data.expiry_at()
    if expiry is not None:
        values["expiryDate"] = format_date(expiry.date())
    for i in range(2):
        signatory = signatories[i] if i < len(signatories) else None
        values[f"signatory{i}Name"] = signatory.name if signatory else ""
        values[f"signatory{i}Designation"] = signatory.designation if signatory else ""
        values[f"signatory{i}Image"] = signatory.image if signatory else ""
    for name, (source, base, max_width) in text_fit.items():
        values[name] = _size(fit_font_size(values.get(source, ""), base, max_width))
    return values
