"""Fetching certificate templates: where they may come from, size limits, and an LRU cache.

:class:`TemplateCache` reads templates only from ``file://`` URLs and local paths (optionally
confined to some folders) and from ``http(s)`` URLs on allowed hosts, following redirects only
to allowed hosts; every template is passed through :func:`certificates.sanitize.sanitize_svg`
before it is cached. Failures raise :class:`certificates.sanitize.TemplateError` (``retryable``
for timeouts, connection errors, HTTP 429 and 5xx).
"""

from __future__ import annotations

import collections
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from certificates.sanitize import TemplateError, host_allowed, sanitize_svg

logger = logging.getLogger(__name__)

MAX_TEMPLATE_BYTES = 5_000_000
"""Templates larger than this are refused (a certificate SVG is a few hundred kB at most)."""


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
        if parsed.scheme.lower() not in ("http", "https") or not host_allowed(
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
        if not host_allowed(parsed, self.allowed_hosts):
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
