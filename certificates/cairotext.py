"""A faster drawer for CairoSVG's plain ``<text>`` elements: one glyph run, not a letter at a time.

CairoSVG draws every letter of a text on its own (save, move, measure, draw, restore: ~10
Python-level Cairo calls a letter, twice per text: once as a path, once as text), which is
two thirds of a certificate's render time (docs/flows/certificate-generator.md#8-pdf-and-storage).
For the common case — a ``<text>`` with no child elements, one ``x`` and one ``y``, no
``dx``/``dy``/``rotate``, not on a path — :func:`fast_text` computes the same letter positions
(each letter's own advance plus ``letter-spacing``, whitespace skipped) and the same bounding
box from memoised per-letter extents, and draws all the letters with one ``show_glyphs`` (or
``glyph_path``). Every other text goes to CairoSVG's own drawer unchanged.

:func:`install` puts it in CairoSVG's tag table; :mod:`certificates.render` calls it before
rendering. The letters are the same glyphs at the same positions; the PDF holds them as one
text run per element instead of one per letter, which viewers place by the font's advances
rounded to 1/1000 em, so edges can move by a small fraction of a pixel (a raster of the
sample's text differs from CairoSVG's in anti-aliasing only: tests/unit/test_cert_speed_text.py).
With no stroke, the outline pass (which only feeds a transparent stroke) is skipped; inside a
clip path it is kept.
"""

from __future__ import annotations

import logging
from typing import Any

import cairocffi as cairo  # type: ignore[import-untyped]
import cairosvg.surface  # type: ignore[import-untyped]
import cairosvg.text  # type: ignore[import-untyped]
from cairosvg.bounding_box import is_valid_bounding_box  # type: ignore[import-untyped]
from cairosvg.helpers import normalize, size  # type: ignore[import-untyped]
from cairosvg.url import parse_url  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

ORIGINAL_TEXT = cairosvg.text.text
"""CairoSVG's own text drawer (the fallback)."""

_EXTENTS: dict[tuple[object, ...], tuple[float, float]] = {}
_EXTENTS_MAX = 100_000
_NOT_SIMPLE = ("dx", "dy", "rotate")


def _one(surface: Any, node: Any, name: str, axis: str) -> float | None:
    """The single length of ``x``/``y``, None when there is not exactly one."""
    values = normalize(node.get(name, "")).strip().split(" ")
    if len(values) != 1 or not values[0]:
        return None
    return float(size(surface, values[0], axis))


def _simple(node: Any) -> bool:
    if node.tag != "text" or node.children or not node.text:
        return False
    if any(name in node for name in _NOT_SIMPLE) or "x" not in node or "y" not in node:
        return False
    parent = node.parent
    href = node.get_href() or (parent.get_href() if parent is not None else "") or ""
    return not parse_url(href).fragment


def _select_font(surface: Any, node: Any) -> tuple[object, ...]:
    """Select the node's font as CairoSVG does; the key of its letters' extents."""
    family = (node.get("font-family") or "sans-serif").split(",")[0].strip("\"' ")
    slant = getattr(cairo, f"font_slant_{node.get('font-style')}".upper(), cairo.FONT_SLANT_NORMAL)
    weight_name = node.get("font-weight")
    if weight_name and weight_name.isdigit() and int(weight_name) >= 550:
        weight_name = "bold"
    weight = getattr(cairo, f"font_weight_{weight_name}".upper(), cairo.FONT_WEIGHT_NORMAL)
    surface.context.select_font_face(family, slant, weight)
    surface.context.set_font_size(surface.font_size)
    matrix = surface.context.get_matrix().as_tuple()
    options = node.get("text-rendering")
    return (type(surface), family, slant, weight, surface.font_size, matrix, options)


def _letter_extents(context: Any, key: tuple[object, ...], text: str) -> list[tuple[float, float]]:
    """(x advance, height) of each letter, measured once per font and letter."""
    if len(_EXTENTS) > _EXTENTS_MAX:
        _EXTENTS.clear()
    out = []
    for letter in text:
        found = _EXTENTS.get((key, letter))
        if found is None:
            extents = context.text_extents(letter)
            found = (extents[4], extents[3])
            _EXTENTS[(key, letter)] = found
        out.append(found)
    return out


def _alignment(node: Any, context: Any, letter_spacing: float) -> tuple[float, float]:
    """CairoSVG's ``text-anchor`` and baseline shifts."""
    ascent, descent, _, max_x_advance, max_y_advance = context.font_extents()
    x_bearing, y_bearing, width, height = context.text_extents(node.text)[:4]
    x_align = y_align = 0.0
    anchor = node.get("text-anchor")
    if anchor == "middle":
        x_align = -(width / 2 + x_bearing) - (len(node.text) - 1) * letter_spacing / 2
    elif anchor == "end":
        x_align = -(width + x_bearing) - (len(node.text) - 1) * letter_spacing
    if max_x_advance > 0 and max_y_advance == 0:
        display = node.get("display-anchor")
        baseline = node.get("dominant-baseline") or node.get("alignment-baseline")
        if display == "middle":
            y_align = -height / 2 - y_bearing
        elif display == "top":
            y_align = -y_bearing
        elif display == "bottom":
            y_align = -height - y_bearing
        elif baseline in ("central", "middle"):
            y_align = (ascent + descent) / 2 - descent
        elif baseline in ("text-before-edge", "before_edge", "top", "hanging", "text-top"):
            y_align = ascent
        elif baseline in ("text-after-edge", "after_edge", "bottom", "text-bottom"):
            y_align = -descent
    return x_align, y_align


def fast_text(surface: Any, node: Any, draw_as_text: bool = False) -> None:
    """Draw a ``<text>`` node as CairoSVG's ``text`` would, in one glyph run when it is plain."""
    if not _simple(node):
        ORIGINAL_TEXT(surface, node, draw_as_text)
        return
    x0, y0 = _one(surface, node, "x", "x"), _one(surface, node, "y", "y")
    if x0 is None or y0 is None:
        ORIGINAL_TEXT(surface, node, draw_as_text)
        return
    context = surface.context
    key = _select_font(surface, node)
    letter_spacing = size(surface, node.get("letter-spacing"))
    x_align, y_align = _alignment(node, context, letter_spacing)
    text = node.text
    indices = context.get_scaled_font().text_to_glyphs(0, 0, text, False)
    if len(indices) != len(text):  # a font backend that shapes: not one glyph per letter
        ORIGINAL_TEXT(surface, node, draw_as_text)
        return
    d = surface.cursor_d_position
    if x0:
        d[0] = 0
    if y0:
        d[1] = 0
    glyphs: list[tuple[int, float, float]] = []
    xs: list[float] = []
    ys: list[float] = []
    x = x0
    for i, ((advance, height), letter) in enumerate(
        zip(_letter_extents(context, key, text), text, strict=True)
    ):
        if i:
            x += letter_spacing
        gx, gy = x + d[0] + x_align, y0 + d[1] + y_align
        x += advance
        end_x, end_y = x + x_align + d[0], y0 + y_align + d[1]  # CairoSVG's box points
        xs += (end_x, end_x + advance)
        ys += (end_y, end_y + height)
        if not letter.isspace():
            glyphs.append((indices[i][0], gx, gy))
    # The outline pass only feeds the stroke that follows (or a clip path): with no stroke
    # CairoSVG strokes it transparent, which draws nothing, so the outlines are skipped.
    outline = not surface.stroke_and_fill or bool(node.get("stroke"))
    if glyphs and (draw_as_text or outline):
        context.save()
        if draw_as_text:
            context.show_glyphs(glyphs)
        else:
            context.glyph_path(glyphs)
        context.restore()
    surface.cursor_position = (x, y0)
    box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    if is_valid_bounding_box(box):
        node["text_bounding_box"] = box


def install() -> None:
    """Make CairoSVG draw ``<text>`` with :func:`fast_text` (idempotent)."""
    if cairosvg.surface.text is fast_text:
        return
    cairosvg.surface.text = fast_text
    for tag, drawer in list(cairosvg.surface.TAGS.items()):
        if drawer is ORIGINAL_TEXT:
            cairosvg.surface.TAGS[tag] = fast_text
