"""Security code for certificate templates: the URL policy, SVG sanitising and XML escaping.

Threat model
------------
A certificate template is **untrusted input**: its URL arrives in a Kafka event, so whoever can
publish that event (or edit the course's certificate template, or the file behind the URL)
chooses the SVG. The values filled into it (learner and course names, …) are untrusted too.
The template is parsed here, rendered to PDF by WeasyPrint or CairoSVG on the job's host (which
can reach internal services and read local files), and the PDF is handed to the learner. The
attacks this module blocks:

* **SSRF and local file disclosure**: a reference (``href``, ``xlink:href``, CSS ``url()`` or
  ``@import``) that makes the renderer fetch an internal URL or a ``file:`` path and draw the
  answer into the learner's PDF;
* **XML entity attacks** (external entities, "billion laughs"): through a DTD;
* **active content**: scripts and event handlers (they run should the SVG ever be opened in a
  browser) and ``foreignObject`` (embedded HTML);
* **markup injection through values**: a learner named ``"/><script>…`` must be printed as
  text, never become markup (:func:`xml_escape`, used by
  :func:`certificates.template.fill_svg`).

What is refused
---------------
:func:`is_allowed_url` (the one URL policy; the renderers apply it again at fetch time, after
filling): ``data:`` URIs and ``http(s)`` URLs on an allowed host (``host`` or ``host:port``,
exact and case-insensitive) pass; URLs with credentials, ``file:``, relative and
scheme-relative URLs and every other scheme are refused.

:func:`sanitize_svg` **refuses the whole template** (:class:`TemplateError`) when it has a
``DOCTYPE``/``ENTITY`` declaration, is not well-formed XML, or its root is not an SVG ``<svg>``.
It **drops** ``script``, ``foreignObject``, ``handler``, ``listener`` and ``iframe`` elements;
every ``on*`` attribute; ``href``/``xlink:href`` values that :func:`is_allowed_url` refuses
(links on ``<a>``, which readers follow and renderers never fetch, may also be ``mailto:``;
``#fragment`` references stay); CSS ``@import`` rules and ``url()`` references the policy
refuses (replaced by ``none``); ``<image>`` elements left without a reference; and, when
written back (:func:`serialize_svg`), elements and attributes of non-SVG namespaces.
References that still hold a ``${placeholder}`` are kept: their filled-in URL is checked when
the renderer fetches it.

Not covered here: the allow-list trusts the named hosts (what they resolve to is not checked);
size limits and where templates may be read from are :mod:`certificates.fetch`'s job.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

# Characters XML 1.0 cannot carry at all: C0 controls except TAB/LF/CR, surrogates, FFFE/FFFF.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Markup characters, plus TAB/LF/CR as character references so that XML's end-of-line and
# attribute-value normalisation cannot change a value.
_XML_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&apos;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]*)\1\s*\)""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"@import\b[^;]*;?", re.IGNORECASE)
_DTD = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_DROPPED_ELEMENTS = frozenset({"script", "foreignObject", "handler", "listener", "iframe"})
_HREF_ATTRS = ("href", f"{{{XLINK_NS}}}href")
_ATTR_PREFIX = {XLINK_NS: "xlink:", XML_NS: "xml:"}


#: how long a renderer waits for one allowed remote resource
FETCH_TIMEOUT_SECONDS = 10.0


class RefusedURLError(LernflowError, ValueError):
    """A renderer asked for a URL that the allowed-hosts policy refuses."""


class TemplateError(LernflowError):
    """A template could not be fetched or is not acceptable.

    Attributes:
        reason: what went wrong, for logs and the DLQ envelope.
        retryable: True when a later attempt may succeed (timeout, connection error, HTTP 5xx).
    """

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def xml_escape(value: str) -> str:
    """Escape ``& < > " '`` (and TAB/LF/CR) and replace characters XML cannot hold with U+FFFD.

    The result is safe both as element text and inside a quoted attribute value, and an XML
    parser gives back exactly ``value`` (after the U+FFFD replacement).
    """
    return _XML_INVALID.sub("\ufffd", value).translate(_XML_ESCAPES)


# -- URL policy ------------------------------------------------------------------------------


def host_allowed(parsed: urllib.parse.ParseResult, allowed_hosts: Iterable[str]) -> bool:
    """Whether the host of ``parsed`` is in ``allowed_hosts`` (entries ``host`` or ``host:port``).

    URLs with credentials, without a host or with an invalid port are refused.
    """
    if parsed.username is not None or parsed.password is not None or not parsed.hostname:
        return False
    host = parsed.hostname.lower()
    try:
        port = parsed.port
    except ValueError:
        return False
    for entry in allowed_hosts:
        entry = entry.strip().lower()
        if not entry:
            continue
        if ":" in entry:
            if port is not None and entry == f"{host}:{port}":
                return True
        elif entry == host:
            return True
    return False


def is_allowed_url(url: str, allowed_hosts: Iterable[str] = ()) -> bool:
    """Whether a renderer may fetch ``url``: ``data:`` URIs and http(s) on an allowed host.

    ``allowed_hosts`` entries are host names (any port) or ``host:port``; matching is exact and
    case-insensitive. URLs with credentials, ``file:`` and every other scheme are refused.
    """
    url = url.strip()
    if url[:5].lower() == "data:":
        return True
    parsed = urllib.parse.urlparse(url)
    return parsed.scheme.lower() in ("http", "https") and host_allowed(parsed, allowed_hosts)


# -- sanitising ------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _href_ok(element: str, value: str, allowed_hosts: tuple[str, ...]) -> bool:
    value = value.strip()
    if not value or value.startswith("#") or "${" in value:
        return True  # local reference, or a placeholder checked again when fetched
    if element == "a":  # links are followed by readers, never fetched by the renderer
        return urllib.parse.urlparse(value).scheme.lower() in ("http", "https", "mailto")
    return is_allowed_url(value, allowed_hosts)


def _clean_css(text: str, allowed_hosts: tuple[str, ...]) -> str:
    def url(match: re.Match[str]) -> str:
        target = match.group(2).strip()
        if target.startswith("#") or is_allowed_url(target, allowed_hosts):
            return match.group(0)
        logger.warning("template: dropped CSS reference to %s", target[:200])
        return "none"

    return _CSS_URL.sub(url, _CSS_IMPORT.sub("", text))


def _parse_svg(svg: str) -> ET.Element:
    """The root ``<svg>`` element of ``svg``; :class:`TemplateError` for DTDs, bad XML, non-SVG."""
    if _DTD.search(svg):
        msg = "template has a DOCTYPE/ENTITY declaration (not allowed)"
        raise TemplateError(msg)
    try:
        root = ET.fromstring(svg)  # noqa: S314 - no DTD (checked above), so no entity tricks
    except ET.ParseError as exc:
        msg = f"template is not well-formed XML: {exc}"
        raise TemplateError(msg) from exc
    if root.tag != f"{{{SVG_NS}}}svg":
        msg = f"template root is {root.tag!r}, not an SVG <svg> element"
        raise TemplateError(msg)
    return root


def _drop_active_elements(root: ET.Element) -> None:
    for parent in list(root.iter()):
        for child in list(parent):
            if not isinstance(child.tag, str) or _local(child.tag) in _DROPPED_ELEMENTS:
                logger.warning("template: dropped <%s>", _local(str(child.tag)))
                parent.remove(child)


def _clean_attributes(root: ET.Element, hosts: tuple[str, ...]) -> None:
    for element in root.iter():
        name = _local(element.tag)
        for attr in list(element.attrib):
            value = element.attrib[attr]
            if _local(attr).lower().startswith("on"):
                del element.attrib[attr]
            elif attr in _HREF_ATTRS and not _href_ok(name, value, hosts):
                logger.warning("template: dropped <%s> reference to %s", name, value[:200])
                del element.attrib[attr]
            elif "url(" in value.lower():
                element.attrib[attr] = _clean_css(value, hosts)
        if name == "style" and element.text:
            element.text = _clean_css(element.text, hosts)


def _drop_empty_images(root: ET.Element) -> None:
    for parent in list(root.iter()):
        for child in list(parent):
            if _local(child.tag) == "image" and not any(
                (child.get(a) or "").strip() for a in _HREF_ATTRS
            ):
                parent.remove(child)  # draws nothing; renderers would log an error


def sanitize_svg(svg: str, allowed_hosts: Iterable[str] = ()) -> str:
    """Return ``svg`` without what a certificate must not contain (see the module docstring).

    Removes ``script``, ``foreignObject`` and similar elements, ``on*`` event attributes,
    ``@import`` rules, and ``href``/``url(...)`` references that a renderer would fetch from
    anywhere but a ``data:`` URI or an allowed host. Placeholders (``${...}``) are kept: the
    renderer checks the filled-in URL again when it fetches it.

    Raises:
        TemplateError: the text has a DTD/entity declaration, is not well-formed XML, or its
            root is not an SVG ``<svg>`` element.
    """
    hosts = tuple(allowed_hosts)
    root = _parse_svg(svg)
    _drop_active_elements(root)
    _clean_attributes(root, hosts)
    _drop_empty_images(root)
    return serialize_svg(root)


# -- writing back ----------------------------------------------------------------------------


def _attr_name(name: str) -> str | None:
    if not name.startswith("{"):
        return name
    uri, _, local = name[1:].partition("}")
    prefix = _ATTR_PREFIX.get(uri)
    return None if prefix is None else prefix + local


def serialize_svg(root: ET.Element) -> str:
    """Write an SVG element tree as text with the usual ``xmlns``/``xlink:`` spelling.

    Only SVG elements and plain, ``xlink:`` and ``xml:`` attributes are written; elements and
    attributes of other namespaces (editor metadata such as Inkscape's) are left out. Unlike
    ``ElementTree.tostring`` this needs no process-wide namespace registration.
    """
    parts: list[str] = []

    def write(element: ET.Element, is_root: bool) -> None:
        if not isinstance(element.tag, str) or not element.tag.startswith(f"{{{SVG_NS}}}"):
            return  # also drops its tail text, which only follows foreign content
        tag = _local(element.tag)
        attrs = [f'xmlns="{SVG_NS}"', f'xmlns:xlink="{XLINK_NS}"'] if is_root else []
        for name, value in element.attrib.items():
            written = _attr_name(name)
            if written is not None:
                attrs.append(f'{written}="{xml_escape(value)}"')
        parts.append(f"<{tag}{''.join(' ' + a for a in attrs)}")
        children = list(element)
        if element.text is None and not children:
            parts.append("/>")
        else:
            parts.append(">")
            parts.append((element.text or "").translate(_TEXT_ESCAPES))
            for child in children:
                write(child, is_root=False)
                if isinstance(child.tag, str) and child.tag.startswith(f"{{{SVG_NS}}}"):
                    parts.append((child.tail or "").translate(_TEXT_ESCAPES))
            parts.append(f"</{tag}>")

    write(root, is_root=True)
    return "".join(parts)
