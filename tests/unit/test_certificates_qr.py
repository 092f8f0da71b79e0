"""The QR code image: a PNG data URI, whole pixels per module, segno's modules with EC level H."""

from __future__ import annotations

import uuid

from lernflow.certificates.qr import QR_MASK, QR_PIXELS_PER_MODULE, qr_data_uri
from lernflow.certificates.render import decode_data_uri
from tests.qrkit import qr_matrix


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
