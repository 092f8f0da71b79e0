"""A digest of what a PDF shows, and attaching files without changing it.

:func:`pages_digest` is the SHA-256 of a canonical form of the PDF's pages (form
:data:`PAGES_FORM`): for each page in order, everything reachable from its page object — the
decoded content streams, the resources they draw (fonts with their embedded font programs,
images, form XObjects, colour spaces, graphics states), the boxes, the rotation, the
annotations — with two exceptions: references to a page-tree node (the page's own ``/Parent``, a
link's or annotation's page) count as the page's index, and the document catalog (where file
attachments and metadata live) is never entered. Streams count with their *decoded* data,
without ``/Length``/``/Filter``/``/DecodeParms``; dictionaries with sorted keys; numbers by
value (reals to 6 significant digits); every composite as the SHA-256 of its children, so an object counts the same whether
it is written inline or as a numbered object. So re-saving a PDF (another object numbering,
another compression, another xref form) or adding an attachment or metadata keeps the digest,
and any change to what a viewer draws — a page's text, an image, a font, a page swapped,
added or removed — changes it. (docs/flows/certificate-generator.md#8-pdf-and-storage)

The digest is what pypdf reads as the document's pages; a file crafted so that some viewer
shows something else than pypdf reads is out of its reach.

pypdf takes ~75 ms to import, so this module is imported only where it is used
(:mod:`certificates.binding`).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pypdf
from pypdf import generic

from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

PAGES_FORM = "lernflow-pages-1"
"""Name of the canonical form :func:`pages_digest` hashes (bumped if the form ever changes)."""

MAX_DECODED_BYTES = 64 * 1024 * 1024
"""At most this many decoded stream bytes are hashed (a certificate has ~0.3 MB)."""

REAL_DIGITS = 6
"""Significant digits of a real number that count (writers print 6 to 10; 1e-6 is invisible)."""

MAX_DEPTH = 64
"""Nesting limit of arrays and dictionaries below a page."""

_STREAM_CODING = frozenset({"/Length", "/Filter", "/DecodeParms", "/DL"})


class UnreadablePdfError(LernflowError):
    """The PDF cannot be read, or its pages exceed the limits of :func:`pages_digest`."""


@dataclass(frozen=True)
class EmbeddedFile:
    """A file to embed in a PDF as an associated file (:meth:`PdfPages.with_files`).

    ``relationship`` is the PDF 2.0 / PDF/A-3 ``/AFRelationship`` of the document to the file:
    ``Data`` (what the pages are drawn from), ``Source``, ``Alternative``, ``Supplement`` or
    ``Unspecified``.
    """

    name: str
    data: bytes
    mime: str = "application/octet-stream"
    description: str = ""
    relationship: str = "Unspecified"


class _PageHasher:
    """Hashes the object graph below pages; one per document (it memoises numbered objects)."""

    def __init__(self, reader: pypdf.PdfReader) -> None:
        self._page_index: dict[int, int] = {}
        for index, page in enumerate(reader.pages):
            if page.indirect_reference is not None:
                self._page_index.setdefault(page.indirect_reference.idnum, index)
        self._opaque = self._tree_nodes(reader)
        self._memo: dict[int, bytes] = {}
        self._open: set[int] = set()
        self._decoded = 0

    def _tree_nodes(self, reader: pypdf.PdfReader) -> set[int]:
        """Object numbers of the catalog and of the page tree's inner nodes."""
        nodes: set[int] = set()
        root = reader.trailer.raw_get("/Root")
        if isinstance(root, generic.IndirectObject):
            nodes.add(root.idnum)
        for page in reader.pages:
            parent = page.raw_get("/Parent") if "/Parent" in page else None
            while isinstance(parent, generic.IndirectObject) and parent.idnum not in nodes:
                nodes.add(parent.idnum)
                parent_dict = parent.get_object()
                if not isinstance(parent_dict, generic.DictionaryObject):
                    break
                parent = parent_dict.raw_get("/Parent") if "/Parent" in parent_dict else None
        return nodes

    def page(self, page: pypdf.PageObject) -> bytes:
        """The digest of one page (a page object, its inherited attributes filled in)."""
        return self._composite(b"page", self._dict_parts(page, 0))

    def value(self, obj: object, depth: int) -> bytes:
        """The canonical encoding of ``obj``: short leaves as they are, composites as a hash."""
        if depth > MAX_DEPTH:
            msg = f"objects nested deeper than {MAX_DEPTH} levels"
            raise UnreadablePdfError(msg)
        if isinstance(obj, generic.IndirectObject):
            return self._reference(obj, depth)
        if isinstance(obj, generic.StreamObject):
            return self._stream(obj, depth)
        if isinstance(obj, generic.DictionaryObject):
            return self._composite(b"dict", self._dict_parts(obj, depth))
        if isinstance(obj, generic.ArrayObject):
            return self._composite(b"array", [self.value(x, depth + 1) for x in obj])
        return _leaf(obj)

    def _reference(self, ref: generic.IndirectObject, depth: int) -> bytes:
        if ref.idnum in self._page_index:
            return b"p%d" % self._page_index[ref.idnum]
        if ref.idnum in self._opaque:
            return b"tree"
        if ref.idnum in self._memo:
            return self._memo[ref.idnum]
        if ref.idnum in self._open:
            return b"cycle"
        self._open.add(ref.idnum)
        try:
            encoded = self.value(ref.get_object(), depth + 1)
        finally:
            self._open.discard(ref.idnum)
        self._memo[ref.idnum] = encoded
        return encoded

    def _dict_parts(
        self, obj: generic.DictionaryObject, depth: int, skip: frozenset[str] = frozenset()
    ) -> list[bytes]:
        parts: list[bytes] = []
        for key in sorted(k for k in obj if k not in skip):
            parts.append(_leaf(generic.NameObject(key)))
            parts.append(self.value(obj.raw_get(key), depth + 1))
        return parts

    def _stream(self, stream: generic.StreamObject, depth: int) -> bytes:
        try:
            data, skip = stream.get_data(), _STREAM_CODING
        except NotImplementedError:  # a filter pypdf cannot decode: the encoded bytes count
            data, skip = stream._data, frozenset({"/Length"})  # no public accessor
        self._decoded += len(data)
        if self._decoded > MAX_DECODED_BYTES:
            msg = f"page content larger than {MAX_DECODED_BYTES} decoded bytes"
            raise UnreadablePdfError(msg)
        parts = self._dict_parts(stream, depth, skip)
        parts.append(b"data" + hashlib.sha256(data).digest())
        return self._composite(b"stream", parts)

    @staticmethod
    def _composite(kind: bytes, parts: list[bytes]) -> bytes:
        digest = hashlib.sha256(kind + b"%d;" % len(parts))
        for part in parts:
            digest.update(b"%d:" % len(part))
            digest.update(part)
        return b"h" + digest.digest()


def _leaf(obj: object) -> bytes:
    """A scalar's canonical bytes (type tag + value); numbers by value, 1 and 1.0 alike,
    reals to :data:`REAL_DIGITS` significant digits."""
    if isinstance(obj, generic.NameObject):
        return b"/" + obj.encode("utf-8", "surrogatepass")
    if isinstance(obj, generic.TextStringObject):
        return b"s" + obj.original_bytes
    if isinstance(obj, generic.ByteStringObject):
        return b"s" + bytes(obj)
    if isinstance(obj, generic.BooleanObject):
        return b"true" if obj.value else b"false"
    if isinstance(obj, bool):
        return b"true" if obj else b"false"
    if isinstance(obj, int):
        return b"n%d" % obj
    if isinstance(obj, float):  # writers print reals to different precisions: 6 digits count
        number = float(f"{obj:.{REAL_DIGITS}g}")
        if number.is_integer() and abs(number) < 2**53:
            return b"n%d" % int(number)
        return b"n" + repr(number).encode("ascii")
    return b"null"  # NullObject, None, a reference to a missing object


def _read(pdf: bytes) -> pypdf.PdfReader:
    try:
        return pypdf.PdfReader(io.BytesIO(pdf))
    except (pypdf.errors.PyPdfError, ValueError, KeyError, TypeError) as exc:
        msg = f"unreadable PDF: {type(exc).__name__}: {exc}"
        raise UnreadablePdfError(msg) from exc


class PdfPages:
    """A parsed PDF: the digest of its pages, and the PDF with a file attached.

    One parse serves both (:mod:`certificates.binding` needs the digest, then the attachment).

    Raises:
        UnreadablePdfError: ``pdf`` is not a readable PDF.
    """

    def __init__(self, pdf: bytes) -> None:
        self.pdf = pdf
        self._reader = _read(pdf)

    def digest(self) -> str:
        """Hex SHA-256 of the canonical form of the pages (see the module docstring).

        Raises:
            UnreadablePdfError: unreadable pages, no pages, or over the size/nesting limits.
        """
        try:
            hasher = _PageHasher(self._reader)
            pages = [hasher.page(page) for page in self._reader.pages]
        except UnreadablePdfError:
            raise
        except (pypdf.errors.PyPdfError, ValueError, KeyError, TypeError, AttributeError,
                RecursionError) as exc:  # fmt: skip
            msg = f"unreadable PDF: {type(exc).__name__}: {exc}"
            raise UnreadablePdfError(msg) from exc
        if not pages:
            msg = "the PDF has no pages"
            raise UnreadablePdfError(msg)
        digest = hashlib.sha256(f"{PAGES_FORM};{len(pages)};".encode("ascii"))
        for page in pages:
            digest.update(page)
        return digest.hexdigest()

    def with_files(self, files: Sequence[EmbeddedFile], modified: datetime | None = None) -> bytes:
        """The PDF with ``files`` embedded as PDF/A-3 style associated files, pages untouched.

        Each file is an embedded file stream (``/Subtype`` its MIME type, ``/Params`` its size,
        MD5 and ``modified`` time) with a file specification (``/AFRelationship``, ``/Desc``)
        listed both in the document's ``EmbeddedFiles`` name tree (viewers' attachment panel,
        ``pdfdetach -list``) and in the catalog's ``/AF`` array. They are appended as an
        incremental update (the original bytes stay a prefix of the result): the files, their
        specifications, the name tree, the catalog pointing at them, and a cross-reference
        stream. A PDF that already has embedded or associated files, or is encrypted, is left
        to pypdf's own (slower) incremental writer.

        Raises:
            UnreadablePdfError: the PDF's trailer or catalog cannot be read.
            ValueError: no files, or two with the same name.
        """
        names = [f.name for f in files]
        if not names or len(set(names)) != len(names):
            msg = f"files to embed must be one or more, with distinct names: {names}"
            raise ValueError(msg)
        stamp = _pdf_date(modified or datetime.now(UTC))
        try:
            update = _AttachmentUpdate(self._reader, len(self.pdf), _startxref(self.pdf))
            return self.pdf + update.encode(sorted(files, key=lambda f: f.name), stamp)
        except _NotSimple:
            return _pypdf_attach(self.pdf, files, stamp)
        except (pypdf.errors.PyPdfError, ValueError, KeyError, TypeError) as exc:
            msg = f"cannot attach {names} to the PDF: {type(exc).__name__}: {exc}"
            raise UnreadablePdfError(msg) from exc


def pages_digest(pdf: bytes) -> str:
    """Hex SHA-256 of the canonical form of ``pdf``'s pages (see the module docstring).

    Raises:
        UnreadablePdfError: not a readable PDF, no pages, or over the size/nesting limits.
    """
    return PdfPages(pdf).digest()


# -- the incremental update -------------------------------------------------------------------


class _NotSimple(Exception):
    """The PDF needs pypdf's general incremental writer."""


def _startxref(pdf: bytes) -> int:
    """The offset after the last ``startxref`` keyword (where the newest xref section is)."""
    at = pdf.rfind(b"startxref")
    if at < 0:
        raise _NotSimple
    return int(pdf[at + len(b"startxref") :].split(maxsplit=1)[0])


def _serialise(obj: generic.PdfObject) -> bytes:
    out = io.BytesIO()
    obj.write_to_stream(out)
    return out.getvalue()


class _AttachmentUpdate:
    """The bytes of an incremental update that adds embedded, associated files to a PDF."""

    def __init__(self, reader: pypdf.PdfReader, end: int, prev: int) -> None:
        trailer = reader.trailer
        root = trailer.raw_get("/Root")
        if "/Encrypt" in trailer or not isinstance(root, generic.IndirectObject):
            raise _NotSimple
        catalog = root.get_object()
        if not isinstance(catalog, generic.DictionaryObject) or "/AF" in catalog:
            raise _NotSimple
        names = catalog.get("/Names", generic.DictionaryObject())
        names = names.get_object() if isinstance(names, generic.IndirectObject) else names
        size = trailer.get("/Size")
        if not isinstance(names, generic.DictionaryObject) or "/EmbeddedFiles" in names:
            raise _NotSimple
        if not isinstance(size, int) or size < 1:
            raise _NotSimple
        self._reader, self._root, self._trailer = reader, root, trailer
        self._catalog, self._names = catalog, names
        self._size, self._end, self._prev = size, end, prev

    def _ref(self, number: int) -> generic.IndirectObject:
        return generic.IndirectObject(number, 0, self._reader)

    def _bodies(self, files: list[EmbeddedFile], stamp: str) -> dict[tuple[int, int], bytes]:
        """Object bodies: per file its stream and specification, then the tree and catalog."""
        bodies: dict[tuple[int, int], bytes] = {}
        listed: list[generic.PdfObject] = []
        specs: list[generic.PdfObject] = []
        for i, file in enumerate(files):
            file_no, spec_no = self._size + 2 * i, self._size + 2 * i + 1
            bodies[(file_no, 0)] = _file_stream(file, stamp)
            bodies[(spec_no, 0)] = _serialise(_filespec(file, self._ref(file_no)))
            listed += [generic.TextStringObject(file.name), self._ref(spec_no)]
            specs.append(self._ref(spec_no))
        tree_no = self._size + 2 * len(files)
        tree = generic.DictionaryObject({generic.NameObject("/Names"): generic.ArrayObject(listed)})
        names = generic.DictionaryObject(self._names)
        names[generic.NameObject("/EmbeddedFiles")] = self._ref(tree_no)
        catalog = generic.DictionaryObject(self._catalog)
        catalog[generic.NameObject("/Names")] = names
        catalog[generic.NameObject("/AF")] = generic.ArrayObject(specs)
        bodies[(tree_no, 0)] = _serialise(tree)
        bodies[(self._root.idnum, self._root.generation)] = _serialise(catalog)
        return bodies

    def encode(self, files: list[EmbeddedFile], stamp: str) -> bytes:
        """The update: the new objects, then a cross-reference stream for them."""
        out = io.BytesIO()
        out.write(b"\n")  # in case the file does not end with an end-of-line
        offsets: dict[tuple[int, int], int] = {}
        for (number, generation), body in self._bodies(files, stamp).items():
            offsets[(number, generation)] = self._end + out.tell()
            out.write(b"%d %d obj\n" % (number, generation) + body + b"\nendobj\n")
        xref_no = self._size + 2 * len(files) + 1
        offsets[(xref_no, 0)] = self._end + out.tell()
        out.write(self._xref_stream(xref_no, offsets))
        out.write(b"startxref\n%d\n%%%%EOF\n" % offsets[(xref_no, 0)])
        return out.getvalue()

    def _xref_stream(self, xref_no: int, offsets: dict[tuple[int, int], int]) -> bytes:
        rows = sorted(offsets.items())
        index: list[int] = []
        for (number, _gen), _ in rows:  # runs of consecutive object numbers
            if index and index[-2] + index[-1] == number:
                index[-1] += 1
            else:
                index += [number, 1]
        entries = b"".join(
            b"\x01" + o.to_bytes(4, "big") + g.to_bytes(2, "big") for (_n, g), o in rows
        )
        extra = b"".join(
            b"/%s %s " % (key[1:].encode("ascii"), _serialise(self._trailer.raw_get(key)))
            for key in ("/Info", "/ID") if key in self._trailer
        )  # fmt: skip
        head = (
            b"%d 0 obj\n<< /Type /XRef /Size %d /Root %d %d R %s/Prev %d /Index [%s] /W [1 4 2] /Length %d >>\nstream\n"
            % (xref_no, xref_no + 1, self._root.idnum, self._root.generation, extra, self._prev,
               b" ".join(b"%d" % i for i in index), len(entries))
        )  # fmt: skip
        return head + entries + b"\nendstream\nendobj\n"


def _pdf_date(when: datetime) -> str:
    """``when`` as a PDF date string in UTC (``D:YYYYMMDDHHmmSSZ``)."""
    return when.astimezone(UTC).strftime("D:%Y%m%d%H%M%SZ")


def _file_stream(file: EmbeddedFile, stamp: str) -> bytes:
    """The embedded file stream's object body: dictionary, then the data unfiltered."""
    size = len(file.data)
    checksum = hashlib.md5(file.data, usedforsecurity=False).hexdigest().encode("ascii")
    subtype = _serialise(generic.NameObject("/" + file.mime))
    head = (
        b"<< /Type /EmbeddedFile /Subtype %s /Length %d /Params << /Size %d /ModDate %s "
        b"/CheckSum <%s> >> >>\nstream\n"
    ) % (subtype, size, size, _serialise(generic.TextStringObject(stamp)), checksum)
    return head + file.data + b"\nendstream"


def _filespec(file: EmbeddedFile, stream: generic.PdfObject) -> generic.DictionaryObject:
    """The file specification of ``file`` whose embedded file stream is ``stream``."""
    title = generic.TextStringObject(file.name)
    spec = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Filespec"),
        generic.NameObject("/F"): title,
        generic.NameObject("/UF"): title,
        generic.NameObject("/EF"): generic.DictionaryObject(
            {generic.NameObject("/F"): stream, generic.NameObject("/UF"): stream}
        ),
        generic.NameObject("/AFRelationship"): generic.NameObject("/" + file.relationship),
    })  # fmt: skip
    if file.description:
        spec[generic.NameObject("/Desc")] = generic.TextStringObject(file.description)
    return spec


def _pypdf_attach(pdf: bytes, files: Sequence[EmbeddedFile], stamp: str) -> bytes:
    """``pdf`` with ``files`` attached by pypdf's incremental writer, listed in ``/AF`` too."""
    try:
        writer = pypdf.PdfWriter(io.BytesIO(pdf), incremental=True)
        associated = writer.root_object.get("/AF")
        if not isinstance(associated, generic.ArrayObject):
            associated = generic.ArrayObject()
            writer.root_object[generic.NameObject("/AF")] = associated
        for file in files:
            spec = writer.add_attachment(file.name, file.data).pdf_object
            holder = spec.get("/EF")
            ref = holder.raw_get("/F") if isinstance(holder, generic.DictionaryObject) else None
            if not isinstance(ref, generic.IndirectObject) or not isinstance(
                stream := ref.get_object(), generic.StreamObject
            ):
                msg = f"pypdf wrote no embedded file stream for {file.name}"
                raise TypeError(msg)
            stream[generic.NameObject("/Subtype")] = generic.NameObject("/" + file.mime)
            stream[generic.NameObject("/Params")] = generic.DictionaryObject({
                generic.NameObject("/Size"): generic.NumberObject(len(file.data)),
                generic.NameObject("/ModDate"): generic.TextStringObject(stamp),
            })  # fmt: skip
            for key, value in _filespec(file, ref).items():
                if key != "/EF":
                    spec[generic.NameObject(key)] = value
            associated.append(spec.indirect_reference)
        out = io.BytesIO()
        writer.write(out)
    except (pypdf.errors.PyPdfError, ValueError, KeyError, TypeError) as exc:
        msg = f"cannot attach {[f.name for f in files]} to the PDF: {type(exc).__name__}: {exc}"
        raise UnreadablePdfError(msg) from exc
    return out.getvalue()
