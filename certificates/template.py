"""Certificate SVG templates: fetching, sanitising, and filling Sunbird's ``${name}`` placeholders.

Sunbird's legacy generator (docs/flows/certificate-generator.md#7-svg-template) fills ``${name}``
placeholders in an SVG template with Apache ``StringSubstitutor`` and URL-encodes every value into a
``data:`` URI. We keep the placeholder names and the substitution rules (``$${x}`` is a literal
``${x}``, unknown names stay verbatim) but produce a plain SVG document, so every value is
**XML-escaped** instead of URL-encoded, and values are never re-scanned for placeholders (Sunbird
substitutes recursively; a learner called ``${recipientId}`` is printed as typed here).

Templates are untrusted input (their URL arrives in a Kafka event). :class:`TemplateCache`
fetches them only from ``file://`` URLs, local paths and ``http(s)`` URLs on allowed hosts, and
:func:`sanitize_svg` strips what a certificate never needs (scripts, ``foreignObject``, event
handlers, DTDs, references to non-allowed URLs). The renderers in :mod:`certificates.render`
additionally refuse, at fetch time, every URL that :func:`is_allowed_url` refuses.

Errors: :class:`TemplateError` (``reason`` says why, ``retryable`` whether a later attempt may
succeed, e.g. a timeout or HTTP 5xx).
"""

from __future__ import annotations

import base64
import collections
import logging
import math
import re
import threading
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path

import segno

from certificates.model import CertificateData

logger = logging.getLogger(__name__)

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

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

MAX_TEMPLATE_BYTES = 5_000_000
"""Templates larger than this are refused (a certificate SVG is a few hundred kB at most)."""

_PLACEHOLDER = re.compile(r"\$(\$)?\{([^{}$]*)\}")
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
_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]*)\1\s*\)""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"@import\b[^;]*;?", re.IGNORECASE)
_DTD = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_DROPPED_ELEMENTS = frozenset({"script", "foreignObject", "handler", "listener", "iframe"})
_HREF_ATTRS = ("href", f"{{{XLINK_NS}}}href")


class TemplateError(Exception):
    """A template could not be fetched or is not acceptable.

    Attributes:
        reason: what went wrong, for logs and the DLQ envelope.
        retryable: True when a later attempt may succeed (timeout, connection error, HTTP 5xx).
    """

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


# -- values -----------------------------------------------------------------------------------


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
    is :func:`fill_svg`'s job.

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


def xml_escape(value: str) -> str:
    """Escape ``& < > " '`` (and TAB/LF/CR) and replace characters XML cannot hold with U+FFFD.

    The result is safe both as element text and inside a quoted attribute value, and an XML
    parser gives back exactly ``value`` (after the U+FFFD replacement).
    """
    return _XML_INVALID.sub("\ufffd", value).translate(_XML_ESCAPES)


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


def qr_svg(text: str, border: int = 3) -> str:
    """A QR code of ``text`` (error correction H) as a small SVG document.

    segno encodes; the SVG is drawn here with one filled rectangle per run of dark modules in
    **absolute** coordinates. (segno's own SVG is one long relative path, and Cairo stores
    path coordinates in fixed point: on a PDF surface the rounding of ~1,000 relative moves
    drifts the lower rows by up to half a module.)
    """
    rows = qr_matrix(text, border=border)
    size = len(rows)
    runs: list[str] = []
    for y, row in enumerate(rows):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                runs.append(f"M{start} {y}H{x}V{y + 1}H{start}Z")
            else:
                x += 1
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'shape-rendering="crispEdges"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )


# A fixed mask pattern: any of the eight is a valid QR code; letting the encoder score all
# eight (segno's default) costs ~4 ms per code, 80% of the encoding time.
QR_MASK = 4
QR_PIXELS_PER_MODULE = 10


def qr_matrix(text: str, border: int = 3) -> list[list[bool]]:
    """The QR modules of ``text`` (error correction H), quiet zone included; True = dark."""
    qr = segno.make_qr(text, error="h", boost_error=False, mask=QR_MASK)
    return [[bool(v) for v in row] for row in qr.matrix_iter(border=border)]


def qr_data_uri(text: str) -> str:
    """A QR code of ``text`` (error correction H, quiet zone 3 modules) as a PNG data URI.

    A bitmap with ``QR_PIXELS_PER_MODULE`` pixels per module (sharp edges, ~200 dpi in the
    sample's 130 pt box): renderers place it as one image, which is ~2x faster to render
    than the same code drawn as vector paths.
    """
    from io import BytesIO

    from PIL import Image

    rows = qr_matrix(text)
    n = len(rows)
    gray = b"".join(bytes(0 if dark else 255 for dark in row) for row in rows)
    scale = QR_PIXELS_PER_MODULE
    img = Image.frombytes("L", (n, n), gray).resize(
        (n * scale, n * scale), Image.Resampling.NEAREST
    )
    buf = BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# -- URL policy and sanitising ---------------------------------------------------------------


def _host_allowed(parsed: urllib.parse.ParseResult, allowed_hosts: Iterable[str]) -> bool:
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
    return parsed.scheme.lower() in ("http", "https") and _host_allowed(parsed, allowed_hosts)


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


def sanitize_svg(svg: str, allowed_hosts: Iterable[str] = ()) -> str:
    """Return ``svg`` without what a certificate must not contain.

    Removes ``script``, ``foreignObject`` and similar elements, ``on*`` event attributes,
    ``@import`` rules, and ``href``/``url(...)`` references that a renderer would fetch from
    anywhere but a ``data:`` URI or an allowed host. Placeholders (``${...}``) are kept: the
    renderer checks the filled-in URL again when it fetches it.

    Raises:
        TemplateError: the text has a DTD/entity declaration, is not well-formed XML, or its
            root is not an SVG ``<svg>`` element.
    """
    hosts = tuple(allowed_hosts)
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
    for parent in list(root.iter()):
        for child in list(parent):
            if not isinstance(child.tag, str) or _local(child.tag) in _DROPPED_ELEMENTS:
                logger.warning("template: dropped <%s>", _local(str(child.tag)))
                parent.remove(child)
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
    for parent in list(root.iter()):
        for child in list(parent):
            if _local(child.tag) == "image" and not any(
                (child.get(a) or "").strip() for a in _HREF_ATTRS
            ):
                parent.remove(child)  # draws nothing; renderers would log an error
    return serialize_svg(root)


_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_PREFIX = {XLINK_NS: "xlink:", XML_NS: "xml:"}


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


# -- fetching and caching -------------------------------------------------------------------


def bundled_template_path() -> Path:
    """Path of the sample template shipped with the package (``lernflow-completion.svg``)."""
    return Path(__file__).resolve().parent / "templates" / "lernflow-completion.svg"


class _NoForeignRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) URLs on the allowed hosts."""

    def __init__(self, allowed_hosts: tuple[str, ...]) -> None:
        super().__init__()
        self._allowed = allowed_hosts

    def redirect_request(  # type: ignore[override]
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> urllib.request.Request | None:
        parsed = urllib.parse.urlparse(newurl)
        if parsed.scheme.lower() not in ("http", "https") or not _host_allowed(
            parsed, self._allowed
        ):
            error = f"redirect to a host that is not allowed: {newurl[:200]}"
            raise TemplateError(error)
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]


class TemplateCache:
    """Fetch, sanitise and cache certificate templates by URL (LRU, thread-safe).

    Accepted locations: ``file://`` URLs and local paths (optionally only under ``local_roots``),
    and ``http(s)`` URLs whose host is in ``allowed_hosts``. Everything else raises
    :class:`TemplateError`. Like Sunbird (docs/flows/certificate-generator.md#7-svg-template)
    entries are never invalidated, only evicted (default 15 entries); :meth:`clear` drops them all.

    Args:
        allowed_hosts: hosts templates (and the images they reference) may come from.
        max_entries: LRU capacity.
        timeout: seconds for one HTTP fetch.
        local_roots: when given, local templates must resolve inside one of these folders.
        max_bytes: size limit of one template.
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str] = (),
        max_entries: int = 15,
        timeout: float = 10.0,
        local_roots: Iterable[Path] | None = None,
        max_bytes: int = MAX_TEMPLATE_BYTES,
    ) -> None:
        if max_entries < 1:
            msg = f"max_entries must be at least 1, got {max_entries}"
            raise ValueError(msg)
        self.allowed_hosts = tuple(h.strip().lower() for h in allowed_hosts if h.strip())
        self._max_entries = max_entries
        self._timeout = timeout
        self._roots = None if local_roots is None else tuple(p.resolve() for p in local_roots)
        self._max_bytes = max_bytes
        self._entries: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoForeignRedirects(self.allowed_hosts))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        """Forget every cached template."""
        with self._lock:
            self._entries.clear()

    def get(self, url: str) -> str:
        """The sanitised template text at ``url`` (from the cache when present).

        Raises:
            TemplateError: the URL is not allowed, the template cannot be read, or it is not
                an acceptable SVG.
        """
        with self._lock:
            cached = self._entries.get(url)
            if cached is not None:
                self._entries.move_to_end(url)
                return cached
        text = sanitize_svg(self._decode(self._fetch(url), url), self.allowed_hosts)
        with self._lock:
            self._entries[url] = text
            self._entries.move_to_end(url)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        logger.info("template cached: %s (%d chars)", url[:200], len(text))
        return text

    def _decode(self, raw: bytes, url: str) -> str:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            msg = f"template {url[:200]} is not UTF-8: {exc}"
            raise TemplateError(msg) from exc

    def _fetch(self, url: str) -> bytes:
        fetchers: dict[str, Callable[[str], bytes]] = {
            "http": self._fetch_http,
            "https": self._fetch_http,
            "file": self._fetch_file_url,
        }
        parsed = urllib.parse.urlparse(url)
        scheme = parsed.scheme.lower()
        if not scheme:
            return self._read_local(Path(url))
        fetch = fetchers.get(scheme)
        if fetch is None:
            msg = f"template URL scheme {scheme!r} is not allowed: {url[:200]}"
            raise TemplateError(msg)
        return fetch(url)

    def _fetch_file_url(self, url: str) -> bytes:
        parsed = urllib.parse.urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            msg = f"file URL with a remote host is not allowed: {url[:200]}"
            raise TemplateError(msg)
        return self._read_local(Path(urllib.request.url2pathname(parsed.path)))

    def _read_local(self, path: Path) -> bytes:
        resolved = path.resolve()
        if self._roots is not None and not any(resolved.is_relative_to(r) for r in self._roots):
            msg = f"local template {path} is outside the allowed folders"
            raise TemplateError(msg)
        try:
            size = resolved.stat().st_size
            if size > self._max_bytes:
                msg = f"template {path} is {size} bytes (limit {self._max_bytes})"
                raise TemplateError(msg)
            return resolved.read_bytes()
        except OSError as exc:
            msg = f"cannot read template {path}: {exc.strerror or exc}"
            raise TemplateError(msg) from exc

    def _fetch_http(self, url: str) -> bytes:
        parsed = urllib.parse.urlparse(url)
        if not _host_allowed(parsed, self.allowed_hosts):
            msg = f"template host {parsed.hostname!r} is not in the allowed hosts: {url[:200]}"
            raise TemplateError(msg)
        request = urllib.request.Request(url, headers={"User-Agent": "lernflow-certificates"})  # noqa: S310 - http(s) on an allowed host only
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw: bytes = response.read(self._max_bytes + 1)
        except urllib.error.HTTPError as exc:
            msg = f"template fetch {url[:200]} failed: HTTP {exc.code}"
            raise TemplateError(msg, retryable=exc.code >= 500 or exc.code == 429) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            msg = f"template fetch {url[:200]} failed: {exc}"
            raise TemplateError(msg, retryable=True) from exc
        if len(raw) > self._max_bytes:
            msg = f"template {url[:200]} is larger than {self._max_bytes} bytes"
            raise TemplateError(msg)
        return raw
