"""Fetching certificate templates: where they may come from, how much and how long, an LRU cache.

A template location arrives in a Kafka event, so it is untrusted
(docs/flows/certificate-generator.md#7-svg-template). :class:`TemplateCache` accepts:

* ``http(s)`` URLs on the allowed hosts (redirects only to allowed hosts);
* ``data:`` URIs of type ``image/svg+xml`` (base64 or percent-encoded);
* ``file://`` URLs and local paths **under the template folders** (``local_roots``), and only
  regular files: the file is opened without following a final symlink and without blocking
  (``O_NOFOLLOW | O_NONBLOCK``) and checked with ``fstat`` before a byte is read, so a device
  (``/dev/zero``), a FIFO or a socket is refused at once. Whether a path is inside the folders
  is decided from the path alone, so the error for a path outside them is the same whether or
  not a file is there.

Every read is **bounded in bytes** (``max_bytes``, whatever ``st_size`` or ``Content-Length``
say) **and in time** (``timeout``: the whole read of one template; a network read may overrun it
by at most one socket timeout, itself at most ``timeout``; name resolution is the system
resolver's). Every template then passes :func:`certificates.sanitize.sanitize_svg` before it
is cached.

A template host that fails with a timeout, a connection error, HTTP 429 or 5xx is **backed off**:
for ``host_backoff_s`` (doubling with each further failure, up to ``host_backoff_max_s``) every
template of that host that is not cached fails at once with :class:`TemplateUnavailable`, without
a connection; the first request after the pause tries the host again. Other hosts are not
affected.
"""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import http.client
import logging
import os
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lernflow.certificates.sanitize import TemplateError, host_allowed, sanitize_svg

logger = logging.getLogger(__name__)

MAX_TEMPLATE_BYTES = 2 * 1024 * 1024
"""Templates larger than this are refused (a certificate SVG is a few hundred kB at most)."""

_CHUNK = 64 * 1024
_SVG_MEDIA_TYPE = "image/svg+xml"
_CHARSETS = ("utf-8", "utf8", "us-ascii")


def templates_dir() -> Path:
    """The folder of the templates shipped with the package (always a template folder)."""
    return Path(__file__).resolve().parent / "templates"


def bundled_template_path() -> Path:
    """Path of the sample template shipped with the package (``lernflow-completion.svg``)."""
    return templates_dir() / "lernflow-completion.svg"


class TemplateUnavailable(TemplateError):
    """The template's host did not answer usefully (timeout, refused, HTTP 429/5xx) or is backed
    off after such a failure: a later attempt may succeed, so the request is worth replaying."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=True)


@dataclass(frozen=True)
class Limits:
    """How much of one template is read (bytes) and for how long (seconds, the whole read)."""

    max_bytes: int = MAX_TEMPLATE_BYTES
    timeout: float = 10.0


def read_bounded(
    read: Callable[[int], bytes],
    what: str,
    limits: Limits,
    deadline: float,
    late: Callable[[], TemplateError],
) -> bytes:
    """Call ``read`` (returning what one system call gives, ``b""`` at the end) until the end,
    refusing more than ``limits.max_bytes`` bytes; ``late()`` is raised for a read past
    ``deadline`` (``time.monotonic``)."""
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = read(min(_CHUNK, limits.max_bytes + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > limits.max_bytes:
            msg = f"template {what} is larger than {limits.max_bytes} bytes"
            raise TemplateError(msg)
        if time.monotonic() > deadline:
            raise late()


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    """The bytes of a ``data:image/svg+xml[;charset=utf-8][;base64],…`` URI (at most ``max_bytes``).

    Raises:
        TemplateError: another media type or charset, bad encoding, or too large.
    """
    header, sep, payload = uri[5:].partition(",")
    params = [p.strip().lower() for p in header.split(";")]
    if not sep or params[0] != _SVG_MEDIA_TYPE:
        msg = f"data: template must be {_SVG_MEDIA_TYPE}, got {header[:100]!r}"
        raise TemplateError(msg)
    is_base64 = params[-1] == "base64"
    for p in params[1 : len(params) - is_base64]:
        if not (p.startswith("charset=") and p.removeprefix("charset=") in _CHARSETS):
            msg = f"data: template parameter {p[:50]!r} is not supported (only charset=utf-8)"
            raise TemplateError(msg)
    # at most 4/3 (base64) or 3 (percent-encoding) characters per byte, plus some slack
    if len(payload) > 3 * max_bytes + 1024:
        msg = f"data: template is larger than {max_bytes} bytes"
        raise TemplateError(msg)
    try:
        raw = (
            base64.b64decode("".join(payload.split()), validate=True)
            if is_base64
            else urllib.parse.unquote_to_bytes(payload)
        )
    except (binascii.Error, ValueError) as exc:
        msg = f"data: template is not valid base64: {exc}"
        raise TemplateError(msg) from exc
    if len(raw) > max_bytes:
        msg = f"data: template is larger than {max_bytes} bytes"
        raise TemplateError(msg)
    return raw


@dataclass
class _Outcome:
    value: bytes = b""
    error: BaseException | None = None


def within(seconds: float, fn: Callable[[], bytes], late: Callable[[], TemplateError]) -> bytes:
    """``fn()``, or ``late()`` raised when it has not returned after ``seconds``.

    ``fn`` runs in a daemon thread, so a read that hangs (a server sending its headers one
    byte at a time, a stuck network file system) cannot hold the caller; the abandoned thread
    ends at its own socket timeout or bounded read.
    """
    outcome = _Outcome()

    def run() -> None:
        try:
            outcome.value = fn()
        except BaseException as exc:  # handed to the caller's thread
            outcome.error = exc

    worker = threading.Thread(target=run, name="template-read", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise late()
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def _slow_file(path: str, limits: Limits) -> TemplateError:
    return TemplateError(f"template {path[:200]} took longer than {limits.timeout:g} s to read")


def _slow_host(host: str, limits: Limits) -> TemplateError:
    return TemplateUnavailable(
        f"template host unavailable: {host}: no complete answer within {limits.timeout:g} s"
    )


class LocalTemplates:
    """Local template files: only regular files under ``roots`` (None: anywhere — the CLI's
    preview of an operator's own file; the flow always passes its folders)."""

    def __init__(self, roots: Iterable[Path] | None, limits: Limits) -> None:
        self.roots = None if roots is None else tuple(Path(os.path.realpath(r)) for r in roots)
        self._limits = limits

    def read(self, path: str) -> bytes:
        """The bytes of the file at ``path``; :class:`TemplateError` when not allowed or readable."""
        try:
            resolved = Path(os.path.realpath(path))
        except ValueError as exc:  # a NUL byte
            msg = f"local template {path[:200]!r} is not a valid path"
            raise TemplateError(msg) from exc
        if self.roots is not None and not any(resolved.is_relative_to(r) for r in self.roots):
            # decided on the path alone: says nothing about whether such a file exists
            msg = (
                f"local template {path[:200]} is outside the template folders "
                "(LERNFLOW_CERT_TEMPLATE_ROOTS)"
            )
            raise TemplateError(msg)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(resolved, flags)
        except OSError as exc:
            msg = f"cannot read template {path[:200]}: {exc.strerror or exc}"
            raise TemplateError(msg) from exc
        with os.fdopen(fd, "rb", buffering=0) as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                msg = f"local template {path[:200]} is not a regular file"
                raise TemplateError(msg)
            if info.st_size > self._limits.max_bytes:
                msg = f"template {path[:200]} is larger than {self._limits.max_bytes} bytes"
                raise TemplateError(msg)
            deadline = time.monotonic() + self._limits.timeout
            try:
                return read_bounded(
                    f.read,
                    path[:200],
                    self._limits,
                    deadline,
                    lambda: _slow_file(path, self._limits),
                )
            except OSError as exc:
                msg = f"cannot read template {path[:200]}: {exc.strerror or exc}"
                raise TemplateError(msg) from exc


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
        if parsed.scheme.lower() not in ("http", "https") or not host_allowed(
            parsed, self._allowed
        ):
            error = f"redirect to a host that is not allowed: {newurl[:200]}"
            raise TemplateError(error)
        return super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]


@dataclass
class _HostDown:
    """A template host that failed: its consecutive failures, until when it is left alone, why."""

    failures: int
    until: float
    reason: str


@dataclass(frozen=True)
class HostBackoff:
    """How long a failing template host is left alone: ``base_s`` doubling up to ``max_s``."""

    base_s: float = 30.0
    max_s: float = 600.0


class HostHealth:
    """Per-host backoff after retryable failures (thread-safe; ``clock`` injectable for tests)."""

    def __init__(self, policy: HostBackoff, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._down: dict[str, _HostDown] = {}
        self._lock = threading.Lock()

    def check(self, host: str) -> None:
        """Raise :class:`TemplateUnavailable` while ``host`` is backed off."""
        with self._lock:
            down = self._down.get(host)
            if down is None or self._clock() >= down.until:
                return
            left = down.until - self._clock()
        msg = (
            f"template host unavailable: {host} (not tried again for {left:.0f} s after "
            f"{down.failures} failure(s); last: {down.reason})"
        )
        raise TemplateUnavailable(msg)

    def failed(self, host: str, reason: str) -> None:
        """Note a retryable failure of ``host``: leave it alone for the next backoff period."""
        with self._lock:
            failures = self._down[host].failures + 1 if host in self._down else 1
            pause = min(self._policy.max_s, self._policy.base_s * 2 ** (failures - 1))
            self._down[host] = _HostDown(failures, self._clock() + pause, reason)
        logger.warning("template host %s failed (%s); backing off %.0f s", host, reason, pause)

    def ok(self, host: str) -> None:
        """``host`` answered: forget its failures."""
        with self._lock:
            self._down.pop(host, None)


class TemplateCache:
    """Fetch, sanitise and cache certificate templates by URL (LRU, thread-safe).

    Accepted locations are listed in the module docstring; everything else raises
    :class:`TemplateError`. Like Sunbird (docs/flows/certificate-generator.md#7-svg-template)
    entries are never invalidated, only evicted (default 15 entries); :meth:`clear` drops them all.

    Args:
        allowed_hosts: hosts templates (and the images they reference) may come from.
        max_entries: LRU capacity.
        timeout: seconds for the whole read of one template (any scheme).
        local_roots: folders local templates must be in (None: any folder).
        max_bytes: size limit of one template.
        backoff: how long a failing host is left alone.
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str] = (),
        max_entries: int = 15,
        timeout: float = 10.0,
        local_roots: Iterable[Path] | None = None,
        max_bytes: int = MAX_TEMPLATE_BYTES,
        backoff: HostBackoff | None = None,
    ) -> None:
        if max_entries < 1:
            msg = f"max_entries must be at least 1, got {max_entries}"
            raise ValueError(msg)
        self.allowed_hosts = tuple(h.strip().lower() for h in allowed_hosts if h.strip())
        self._max_entries = max_entries
        self._limits = Limits(max_bytes, timeout)
        self._local = LocalTemplates(local_roots, self._limits)
        self.hosts = HostHealth(backoff or HostBackoff())
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
            TemplateUnavailable: the template's host is down or backed off (worth a replay).
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
            "data": lambda u: decode_data_uri(u.strip(), self._limits.max_bytes),
        }
        try:
            parsed = urllib.parse.urlparse(url)
        except ValueError as exc:  # e.g. an unclosed IPv6 bracket
            msg = f"template URL is not valid: {url[:200]}"
            raise TemplateError(msg) from exc
        scheme = parsed.scheme.lower()
        if not scheme:
            return self._read_local(url)
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
        return self._read_local(urllib.request.url2pathname(parsed.path))

    def _read_local(self, path: str) -> bytes:
        late = functools.partial(_slow_file, path, self._limits)
        return within(self._limits.timeout, lambda: self._local.read(path), late)

    def _fetch_http(self, url: str) -> bytes:
        parsed = urllib.parse.urlparse(url)
        if not host_allowed(parsed, self.allowed_hosts):
            msg = f"template host {parsed.hostname!r} is not in the allowed hosts: {url[:200]}"
            raise TemplateError(msg)
        host = parsed.netloc.lower()
        self.hosts.check(host)

        late = functools.partial(_slow_host, host, self._limits)
        try:
            raw = within(self._limits.timeout, lambda: self._get(url, late), late)
        except TemplateUnavailable as exc:
            self.hosts.failed(host, exc.reason)
            raise
        self.hosts.ok(host)
        return raw

    def _get(self, url: str, late: Callable[[], TemplateError]) -> bytes:
        limits = self._limits
        deadline = time.monotonic() + limits.timeout
        request = urllib.request.Request(url, headers={"User-Agent": "lernflow-certificates"})  # noqa: S310 - http(s) on an allowed host only
        where = urllib.parse.urlparse(url).netloc
        try:
            with self._opener.open(request, timeout=limits.timeout) as response:
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > limits.max_bytes:
                    msg = f"template {url[:200]} is larger than {limits.max_bytes} bytes"
                    raise TemplateError(msg)
                return read_bounded(response.read1, url[:200], limits, deadline, late)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:
                msg = f"template host unavailable: {where}: HTTP {exc.code}"
                raise TemplateUnavailable(msg) from exc
            msg = f"template fetch {url[:200]} failed: HTTP {exc.code}"
            raise TemplateError(msg) from exc
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, TLS, junk
            cause = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            msg = f"template host unavailable: {where}: {cause}"
            raise TemplateUnavailable(msg) from exc
