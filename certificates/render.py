"""Filled certificate SVG → one-page PDF (WeasyPrint or CairoSVG); finding the credential in one.

Both renderers draw the SVG at its own size (``width``/``height``, else the ``viewBox`` in CSS
pixels), so the sample template (``297mm`` x ``210mm``) gives a landscape A4 page. They draw
the pages only: certificates are issued through :func:`certificates.binding.issue_pdf`, which
renders here, signs the credential with the digest of the rendered pages and then appends it
as the associated file ``credential.jwt`` the same way whatever the renderer
(:meth:`certificates.pdfpages.PdfPages.with_files`). :func:`find_attachment` reads it back,
or the ``credential.jwt:<JWT>`` entry of the Keywords metadata where CairoSVG certificates
issued before page digests carry it (docs/flows/certificate-generator.md#8-pdf-and-storage).

Nothing is fetched from the network or the file system while rendering except ``data:`` URIs
and http(s) URLs on ``allowed_hosts``: both renderers get a URL fetcher that refuses (and
logs) everything else, and the SVG is passed through
:func:`certificates.sanitize.sanitize_svg` first. A refused image is simply not drawn.

Pure functions: bytes in, bytes out; no files are written.

The renderers' libraries (Cairo, CairoSVG, pypdf, pdfium; WeasyPrint in :mod:`certificates.weasy`)
are imported where they are used: together they take ~0.7 s to import, and every flow process
and CLI call loads this module through the flow registry.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from lernflow.certificates.sanitize import (
    FETCH_TIMEOUT_SECONDS,
    TemplateError,
    is_allowed_url,
    sanitize_svg,
)

logger = logging.getLogger(__name__)

Renderer = Literal["weasyprint", "cairosvg"]
RENDERERS: tuple[Renderer, ...] = ("weasyprint", "cairosvg")

MAX_RESOURCE_BYTES = 5_000_000

_LENGTH = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|pt|pc|mm|cm|in)?\s*")
_PT_PER_UNIT = {
    "px": 0.75,
    "pt": 1.0,
    "pc": 12.0,
    "mm": 72 / 25.4,
    "cm": 72 / 2.54,
    "in": 72.0,
}
A4_LANDSCAPE_PT = (841.89, 595.28)


# -- URL fetchers ---------------------------------------------------------------------------


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a ``data:`` URI (base64 or percent-encoded).

    Raises:
        ValueError: not a well-formed data URI.
    """
    if uri[:5].lower() != "data:" or "," not in uri:
        msg = "not a data: URI"
        raise ValueError(msg)
    meta, _, payload = uri[5:].partition(",")
    if meta.lower().endswith(";base64"):
        try:
            return base64.b64decode(urllib.parse.unquote(payload), validate=False)
        except binascii.Error as exc:
            msg = f"bad base64 in data URI: {exc}"
            raise ValueError(msg) from exc
    return urllib.parse.unquote_to_bytes(payload)


def _http_get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "lernflow-certificates"})  # noqa: S310 - callers check the URL
    opener = urllib.request.build_opener(_NoRedirect())
    with opener.open(request, timeout=timeout) as response:
        data: bytes = response.read(MAX_RESOURCE_BYTES + 1)
    if len(data) > MAX_RESOURCE_BYTES:
        msg = f"resource larger than {MAX_RESOURCE_BYTES} bytes: {url[:200]}"
        raise ValueError(msg)
    return data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects could lead anywhere: refuse them."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class GuardedCairoFetcher:
    """CairoSVG URL fetcher with the same policy; refused or failed resources come back empty.

    (CairoSVG skips an image whose bytes are empty, as it does for its own "safe" mode.)
    """

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
        self.refused: list[str] = []

    def __call__(self, url: str, resource_type: str = "") -> bytes:
        """Return the resource's bytes, or ``b""`` when refused or unavailable."""
        if not is_allowed_url(url, self.allowed_hosts):
            self.refused.append(url)
            logger.warning("render: refused to fetch %s", url[:200])
            return b""
        try:
            if url.strip()[:5].lower() == "data:":
                return decode_data_uri(url.strip())
            return _http_get(url, FETCH_TIMEOUT_SECONDS)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            logger.warning("render: could not fetch %s: %s", url[:200], exc)
            return b""


# -- page size ------------------------------------------------------------------------------


def _length_pt(value: str | None) -> float | None:
    if not value:
        return None
    match = _LENGTH.fullmatch(value)
    if not match:
        return None  # percentages, em, auto ...
    return float(match.group(1)) * _PT_PER_UNIT[match.group(2) or "px"]


def page_size_pt(svg: str) -> tuple[float, float]:
    """Page size of ``svg`` in points: its ``width``/``height``, else its ``viewBox`` in px.

    Falls back to landscape A4 when neither gives a usable size.

    Raises:
        TemplateError: ``svg`` is not well-formed XML.
    """
    try:
        root = ET.fromstring(svg)  # noqa: S314 - called on sanitize_svg output (no DTD)
    except ET.ParseError as exc:
        msg = f"SVG is not well-formed: {exc}"
        raise TemplateError(msg) from exc
    width, height = _length_pt(root.get("width")), _length_pt(root.get("height"))
    box = (root.get("viewBox") or "").replace(",", " ").split()
    view: tuple[float, float] | None = None
    if len(box) == 4:
        try:
            view = (float(box[2]) * 0.75, float(box[3]) * 0.75)
        except ValueError:
            view = None
        if view is not None and (view[0] <= 0 or view[1] <= 0):
            view = None
    if width and height:
        return width, height
    if view is not None:
        if width:  # keep the viewBox's aspect ratio
            return width, width * view[1] / view[0]
        if height:
            return height * view[0] / view[1], height
        return view
    return A4_LANDSCAPE_PT


# -- rendering ------------------------------------------------------------------------------


def _cairosvg_pdf(svg: str, hosts: tuple[str, ...]) -> bytes:
    """CairoSVG's PDF of ``svg``."""
    import cairosvg  # type: ignore[import-untyped]

    from lernflow.certificates import cairotext

    cairotext.install()  # plain texts in one glyph run: a third of the render time
    tree = cairosvg.parser.Tree(
        bytestring=svg.encode("utf-8"), url_fetcher=GuardedCairoFetcher(hosts), unsafe=False
    )
    out = io.BytesIO()
    surface = cairosvg.surface.PDFSurface(tree, out, 96)
    surface.finish()
    return out.getvalue()


def render_pdf(
    svg: str,
    renderer: Literal["weasyprint", "cairosvg"] = "weasyprint",
    allowed_hosts: tuple[str, ...] = (),
) -> bytes:
    """Render a filled certificate SVG to a one-page PDF, without credential (see
    :func:`certificates.binding.issue_pdf`).

    Args:
        svg: the filled SVG document (see :func:`certificates.template.fill_svg`).
        renderer: ``"weasyprint"`` (SVG drawn by WeasyPrint inside an HTML page) or
            ``"cairosvg"`` (faster, Cairo's PDF backend).
        allowed_hosts: hosts remote images may be fetched from; everything but ``data:`` URIs
            and these hosts is refused.

    Returns:
        The PDF bytes; the page has the SVG's size (landscape A4 for the sample template).

    Raises:
        TemplateError: the SVG is not an acceptable, well-formed SVG document.
        ValueError: unknown renderer.
    """
    if renderer not in RENDERERS:
        msg = f"renderer must be one of {RENDERERS}, got {renderer!r}"
        raise ValueError(msg)
    clean = sanitize_svg(svg, allowed_hosts)
    if renderer == "weasyprint":
        # WeasyPrint is the optional high-fidelity renderer and takes ~0.5 s to import: only
        # a run that uses it pays for it (every flow process and CLI call would otherwise).
        from lernflow.certificates import weasy

        return weasy.weasyprint_pdf(clean, page_size_pt(clean), allowed_hosts)
    return _cairosvg_pdf(clean, allowed_hosts)


EMBEDDED = "embedded file"
KEYWORDS = "Keywords metadata"


@dataclass(frozen=True)
class FoundAttachment:
    """A file found in a PDF, and where: :data:`EMBEDDED` or :data:`KEYWORDS` (the old form)."""

    data: bytes
    where: str


def find_attachment(pdf: bytes, name: str = "credential.jwt") -> FoundAttachment | None:
    """The embedded file ``name`` of ``pdf``, else the ``<name>:`` entry of its Keywords
    metadata (where CairoSVG certificates issued before page digests carry the credential);
    None when there is neither or the PDF is unreadable."""
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(pdf))
        contents = reader.attachments.get(name)
        if contents:
            return FoundAttachment(contents[0], EMBEDDED)
        metadata = reader.metadata
        keywords = metadata.get("/Keywords") if metadata is not None else None
    except (pypdf.errors.PyPdfError, ValueError, KeyError) as exc:
        logger.warning("find_attachment: unreadable PDF: %s", exc)
        return None
    if isinstance(keywords, str) and keywords.startswith(f"{name}:"):
        return FoundAttachment(keywords[len(name) + 1 :].encode("ascii", "replace"), KEYWORDS)
    return None


def extract_attachment(pdf: bytes, name: str = "credential.jwt") -> bytes | None:
    """The bytes :func:`find_attachment` finds, None when there are none."""
    found = find_attachment(pdf, name)
    return None if found is None else found.data


def preview_png(pdf_or_svg: bytes, width: int = 1200) -> bytes:
    """A PNG of the first page of a PDF (pypdfium2), or of an SVG (CairoSVG), ``width`` px wide.

    SVG previews fetch nothing but ``data:`` URIs.

    Raises:
        ValueError: ``width`` is not positive or the input is not UTF-8.
        TemplateError: the input is neither a PDF nor an acceptable SVG.
    """
    if width <= 0:
        msg = f"width must be positive, got {width}"
        raise ValueError(msg)
    if pdf_or_svg.lstrip()[:5] == b"%PDF-":
        return _pdf_png(pdf_or_svg, width)
    text = pdf_or_svg.decode("utf-8-sig", errors="strict") if pdf_or_svg else ""
    clean = sanitize_svg(text)
    import cairosvg  # type: ignore[import-untyped]

    png: bytes = cairosvg.surface.PNGSurface.convert(
        bytestring=clean.encode("utf-8"),
        url_fetcher=GuardedCairoFetcher(),
        unsafe=False,
        output_width=width,
        background_color="white",
    )
    return png


def _pdf_png(pdf: bytes, width: int) -> bytes:
    import pypdfium2  # type: ignore[import-untyped]

    document = pypdfium2.PdfDocument(pdf)
    try:
        page = document[0]
        try:
            bitmap = page.render(scale=width / page.get_width())
            image = bitmap.to_pil()
            out = io.BytesIO()
            image.save(out, format="PNG")
            return out.getvalue()
        finally:
            page.close()
    finally:
        document.close()
