"""The one-run text drawer (certificates/cairotext.py) draws what CairoSVG's letter-at-a-time
drawer draws: same letters, same places (to anti-aliasing), same bounding boxes; and it is
the one in use."""

from __future__ import annotations

from collections.abc import Iterator

import cairosvg.surface  # type: ignore[import-untyped]
import pypdfium2  # type: ignore[import-untyped]
import pytest
from PIL import Image, ImageChops

from lernflow.certificates import cairotext, render

TEXTS = """<svg xmlns="http://www.w3.org/2000/svg" width="800" height="400" viewBox="0 0 800 400">
<text x="400" y="50" text-anchor="middle" font-family="DejaVu Sans" font-size="22"
 letter-spacing="1.5" fill="#123456">Lernflow Academy &amp; Friends</text>
<text x="780" y="100" text-anchor="end" font-family="DejaVu Serif" font-weight="bold"
 font-size="30">Right aligned, with  two spaces</text>
<text x="20" y="150" font-family="DejaVu Serif" font-style="italic" font-size="18"
 dominant-baseline="middle">Ünïcödé names: Łukasz Ðorđević Ωμέγα</text>
<text x="20" y="200" font-size="16" stroke="#aa0000" stroke-width="0.5" fill="none">Outlined</text>
<text x="20" y="250" font-size="16">A <tspan fill="red">tspan</tspan> falls back</text>
<text x="20 40 60" y="300" font-size="16">xyz positions fall back</text>
<clipPath id="letters"><text x="420" y="370" font-size="60" font-weight="bold">CLIP</text></clipPath>
<rect x="400" y="300" width="380" height="90" fill="#0a6" clip-path="url(#letters)"/>
</svg>"""

INSTALL = cairotext.install


def _raster(pdf: bytes) -> Image.Image:
    document = pypdfium2.PdfDocument(pdf)
    try:
        return document[0].render(scale=3).to_pil().convert("L")
    finally:
        document.close()


@pytest.fixture
def original_text() -> Iterator[None]:
    """CairoSVG's own drawer for the duration of a test."""
    saved_text, saved_tags = cairosvg.surface.text, dict(cairosvg.surface.TAGS)
    saved_install = cairotext.install
    cairosvg.surface.text = cairotext.ORIGINAL_TEXT
    for tag, drawer in saved_tags.items():
        if drawer is cairotext.fast_text:
            cairosvg.surface.TAGS[tag] = cairotext.ORIGINAL_TEXT
    cairotext.install = lambda: None  # type: ignore[assignment]
    try:
        yield
    finally:
        cairotext.install = saved_install  # type: ignore[assignment]
        cairosvg.surface.text = saved_text
        cairosvg.surface.TAGS.update(saved_tags)


def _render(svg: str) -> bytes:
    return render.render_pdf(svg, "cairosvg")


def test_render_installs_the_one_run_drawer() -> None:
    _render(TEXTS)
    assert cairosvg.surface.text is cairotext.fast_text
    assert cairosvg.surface.TAGS["text"] is cairotext.fast_text


def test_letters_land_where_cairosvg_puts_them(original_text: None) -> None:
    slow = _raster(_render(TEXTS))
    INSTALL()
    fast = _raster(_render(TEXTS))
    diff = ImageChops.difference(slow, fast)
    assert fast.size == slow.size
    # anti-aliased edges may differ by a fraction of a pixel; no glyph may move or change
    histogram = diff.histogram()
    assert sum(histogram[96:]) == 0, "a letter moved by more than a fraction of a pixel"
    assert sum(histogram[1:]) < 0.01 * slow.size[0] * slow.size[1]
    assert slow.getbbox() == fast.getbbox()


def test_bounding_boxes_are_cairosvg_ones(original_text: None) -> None:
    boxes: dict[str, list[object]] = {"slow": [], "fast": []}
    for kind in ("slow", "fast"):
        if kind == "fast":
            INSTALL()
        tree = cairosvg.parser.Tree(bytestring=TEXTS.encode(), unsafe=False)
        cairosvg.surface.PDFSurface(tree, None, 96)
        boxes[kind] = [
            tuple(round(v, 6) for v in child.get("text_bounding_box", ()))
            for child in tree.children
        ]
    assert boxes["fast"] == boxes["slow"]
    assert any(boxes["fast"])
