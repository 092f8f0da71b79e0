"""The reference QR modules the certificate tests compare pixels with (segno's matrix of the same
code lernflow.certificates.qr draws: error correction H, mask 4, quiet zone included)."""

from __future__ import annotations

import segno

from lernflow.certificates.qr import QR_BORDER, QR_MASK


def qr_matrix(text: str, border: int = QR_BORDER) -> list[list[bool]]:
    """The QR modules of ``text``, quiet zone included; True = dark."""
    qr = segno.make_qr(text, error="h", boost_error=False, mask=QR_MASK)
    return [[bool(v) for v in row] for row in qr.matrix_iter(border=border)]
