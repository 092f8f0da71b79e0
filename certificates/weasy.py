"""The WeasyPrint renderer: the certificate SVG drawn inside an HTML page.

Imported only when ``LERNFLOW_CERT_RENDERER=weasyprint`` (see :func:`certificates.render.render_pdf`):
WeasyPrint takes about half a second to import.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from typing import Any

import weasyprint

from lernflow.certificates.sanitize import FETCH_TIMEOUT_SECONDS, RefusedURLError, is_allowed_url

logger = logging.getLogger(__name__)


class GuardedWeasyFetcher(weasyprint.URLFetcher):  # type: ignore[misc]
    """WeasyPrint URL fetcher that only fetches ``data:`` URIs and allowed http(s) hosts.

    Refused URLs are logged and recorded in :attr:`refused`; WeasyPrint then skips the
    resource. Redirects are not followed.
    """

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        super().__init__(
            timeout=FETCH_TIMEOUT_SECONDS,
            allowed_protocols=("data", "http", "https"),
            allow_redirects=False,
        )
        self.allowed_hosts = tuple(allowed_hosts)
        self.refused: list[str] = []

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
        """Fetch ``url`` if the policy allows it, else raise :class:`RefusedURLError`."""
        if not is_allowed_url(url, self.allowed_hosts):
            self.refused.append(url)
            logger.warning("render: refused to fetch %s", url[:200])
            msg = f"URL not allowed: {url[:200]}"
            raise RefusedURLError(msg)
        return super().fetch(url, headers)


def weasyprint_pdf(svg: str, size: tuple[float, float], hosts: tuple[str, ...]) -> bytes:
    """WeasyPrint's one-page PDF of ``svg`` (the credential is attached by
    :func:`certificates.binding.issue_pdf`, as for CairoSVG)."""
    width, height = size
    image = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    html = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><style>"
        f"@page {{ size: {width:.3f}pt {height:.3f}pt; margin: 0 }}"
        "html, body { margin: 0; padding: 0 }"
        f"img {{ display: block; width: {width:.3f}pt; height: {height:.3f}pt }}"
        f"</style></head><body><img src='{image}' alt=''></body></html>"
    )
    fetcher = GuardedWeasyFetcher(hosts)
    document = weasyprint.HTML(string=html, url_fetcher=fetcher).render()
    if len(document.pages) != 1:
        logger.warning(
            "render: weasyprint laid the certificate out on %d pages", len(document.pages)
        )
        document = document.copy(document.pages[:1])
    pdf: bytes = document.write_pdf()
    return pdf
