"""Filling Sunbird's ``${name}`` placeholders in a certificate SVG template.

Sunbird's legacy generator (docs/flows/certificate-generator.md#7-svg-template) fills ``${name}``
placeholders in an SVG template with Apache ``StringSubstitutor`` and URL-encodes every value into a
``data:`` URI. We keep the placeholder names and the substitution rules (``$${x}`` is a literal
``${x}``, unknown names stay verbatim) but produce a plain SVG document, so every value is
**XML-escaped** instead of URL-encoded, and values are never re-scanned for placeholders (Sunbird
substitutes recursively; a learner called ``${recipientId}`` is printed as typed here).

The other steps of a certificate's SVG live next door: :mod:`certificates.fetch` (fetch and
cache a template), :mod:`certificates.sanitize` (the URL policy and what a template may
contain), :mod:`certificates.values` (the placeholder values) and :mod:`certificates.qr` (the QR
code image).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lernflow.certificates.sanitize import xml_escape

_PLACEHOLDER = re.compile(r"\$(\$)?\{([^{}$]*)\}")


def fill_svg(svg: str, values: Mapping[str, str]) -> str:
    """Substitute ``${name}`` placeholders in ``svg`` with XML-escaped ``values``.

    ``$${x}`` becomes the literal text ``${x}``; a ``${name}`` with no value stays verbatim.
    Substituted text is not scanned again, so values cannot smuggle in placeholders, and being
    escaped they cannot add markup: a well-formed template stays well-formed.
    """

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        value = values.get(name)
        return match.group(0) if value is None else xml_escape(value)

    return _PLACEHOLDER.sub(replace, svg)
