"""Making certificates: sign the W3C credential, fill and render the SVG to PDF, store both.

Rendering is CPU work, so four or more certificates at once go to a process pool whose
processes load the signing key once; fewer are made in this process. Templates are fetched
from allowed places once, then cached; a template host that is down is retried with backoff
(``TemplateError`` for anything else, which the flow parks).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from certificates import credential as cred
from certificates import render, signing
from certificates.fetch import TemplateCache
from certificates.model import CertificateData
from certificates.qr import qr_data_uri
from certificates.sanitize import TemplateError
from certificates.storage import LocalStorage, Storage
from certificates.template import fill_svg
from certificates.values import placeholder_values
from config import Settings
from flows.certificate_generator import rules
from flows.certificate_generator.plan import Certificate
from lernflow.kernel.errors import TransientError
from lernflow.kernel.retry import retry


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    """``LERNFLOW_CERT_TEMPLATE_HOSTS`` as a tuple of host names."""
    return tuple(h.strip() for h in settings.certificates.template_hosts.split(",") if h.strip())


def signer_path(settings: Settings) -> Path:
    """The configured private key file (``LERNFLOW_CERT_SIGNING_KID``, else the newest one)."""
    c = settings.certificates
    keys = sorted(c.keys_dir.glob("*.private.pem"), key=lambda p: p.stat().st_mtime)
    if c.signing_kid:
        keys = [p for p in keys if p.name == f"{c.signing_kid}.private.pem"]
    if not keys:
        msg = (
            f"no certificate signing key in {c.keys_dir} (LERNFLOW_CERT_KEYS_DIR): run "
            "'lernflow cert keys init'"
        )
        raise RuntimeError(msg)
    return keys[-1]


@dataclass(frozen=True)
class MakeJob:
    """Everything one certificate needs, picklable for the render pool."""

    data: CertificateData
    svg_template: str
    renderer: str
    hosts: tuple[str, ...]
    issuer_id: str
    storage: Storage


_WORKER_KEY: signing.SigningKey | None = None  # the signing key inside a pool process


def _init_worker(key_path: str, kid: str) -> None:
    global _WORKER_KEY
    _WORKER_KEY = signing.load_signing_key(Path(key_path), kid=kid)


def make_certificate(job: MakeJob, key: signing.SigningKey | None = None) -> Certificate:
    """Sign, fill, render and store one certificate (runs in a pool process)."""
    signer = key or _WORKER_KEY
    assert signer is not None, "the pool initializer loads the signing key"
    data = job.data
    issued_at = datetime.fromisoformat(data.issued_date).replace(tzinfo=UTC)
    credential = cred.build_credential(
        data, issuer_id=job.issuer_id, kid=signer.kid, issued_at=issued_at
    )
    token = signing.sign_credential(credential, signer)
    qr = qr_data_uri(f"{data.verify_base_url}/{data.cert_id}")
    svg = fill_svg(job.svg_template, placeholder_values(data, qr))
    pdf = render.render_pdf(svg, job.renderer, attachment=token.encode(), allowed_hosts=job.hosts)  # type: ignore[arg-type]
    base = f"{data.batch_id}/{data.cert_id}"
    pdf_url = job.storage.put(f"{base}.pdf", pdf, "application/pdf")
    json_url = job.storage.put(f"{base}.jwt", token.encode(), "application/jwt")
    return Certificate(data.cert_id, pdf_url, json_url, rules.access_code(data.cert_id), credential)


class CertificateMaker:
    """Renders, signs and stores certificates (``storage``: the configured folder by default)."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self._s = settings
        self._signer_path = signer_path(settings)
        self._signer = signing.load_signing_key(
            self._signer_path, kid=self._signer_path.name.removesuffix(".private.pem")
        )
        self._templates = TemplateCache(allowed_hosts=allowed_hosts(settings))
        self.storage = storage or LocalStorage(settings.certificates.storage_dir)
        self._pool: ProcessPoolExecutor | None = None

    def template(self, url: str) -> str:
        """The template text: fetched once, then cached; a host that is down is retried."""
        return retry(functools.partial(self._fetch, url), self._s.run, "template fetch")

    def _fetch(self, url: str) -> str:
        try:
            return self._templates.get(url)
        except TemplateError as exc:
            if exc.retryable:
                raise TransientError(str(exc)) from exc
            raise

    def make(self, items: list[tuple[CertificateData, str]]) -> list[Certificate]:
        """Make every (data, template url), in parallel processes when several."""
        c = self._s.certificates
        jobs = [
            MakeJob(data, self._templates.get(url), c.renderer, allowed_hosts(self._s),
                    f"{c.cert_domain_url}/certs/issuer", self.storage)
            for data, url in items
        ]  # fmt: skip
        if len(jobs) < 4 or (os.cpu_count() or 1) < 2:
            return [make_certificate(j, self._signer) for j in jobs]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=os.cpu_count() or 2,
                initializer=_init_worker,
                initargs=(str(self._signer_path), self._signer.kid),
            )
        return list(self._pool.map(make_certificate, jobs, chunksize=max(1, len(jobs) // 16)))

    def close(self) -> None:
        """Stop the render pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
