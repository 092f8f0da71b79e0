"""Making certificates: fill and render the SVG to PDF, sign the W3C credential bound to those
pages and embed it, store both.

Templates are read from allowed places only, bounded in bytes and time, then cached
(:class:`certificates.fetch.TemplateCache`, configured from ``LERNFLOW_CERT_TEMPLATE_*``); a
template host that fails is backed off, and the requests that need it fail at once with
:class:`~certificates.fetch.TemplateUnavailable` (the flow parks them for a later requeue)
while the others go on.

Rendering is CPU work and its time depends on the template, so certificates are made in a
pool of worker processes (which load the signing key once) and each one is waited for at most
``LERNFLOW_CERT_RENDER_TIMEOUT_S``: a certificate that takes longer is given up (the pool is
killed and the unfinished certificates of the round are made again in a new one), and a
template or value the renderer cannot draw fails that certificate alone
(:class:`MakeFailed`). With the timeout at 0, rounds of fewer than four certificates are made
in this process, unbounded. An error of the storage (a full disk) is raised: the flow stops
rather than park good requests.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.pool
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from lernflow.certificates import binding, signing
from lernflow.certificates import credential as cred
from lernflow.certificates.fetch import HostBackoff, TemplateCache, templates_dir
from lernflow.certificates.model import CertificateData
from lernflow.certificates.qr import qr_data_uri
from lernflow.certificates.sanitize import TemplateError
from lernflow.certificates.storage import LocalStorage, Storage
from lernflow.certificates.template import fill_svg
from lernflow.certificates.values import placeholder_values
from lernflow.config import Settings
from lernflow.flows.certificate_generator import rules
from lernflow.flows.certificate_generator.plan import Certificate
from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    """``LERNFLOW_CERT_TEMPLATE_HOSTS`` as a tuple of host names."""
    return tuple(h.strip() for h in settings.certificates.template_hosts.split(",") if h.strip())


def template_roots(settings: Settings) -> tuple[Path, ...]:
    """The folders local templates may be read from: the packaged templates and
    ``LERNFLOW_CERT_TEMPLATE_ROOTS`` (comma-separated)."""
    extra = (r.strip() for r in settings.certificates.template_roots.split(","))
    return (templates_dir(), *(Path(r) for r in extra if r))


def template_cache(settings: Settings) -> TemplateCache:
    """The flow's template cache, with the configured hosts, folders, limits and backoff."""
    c = settings.certificates
    return TemplateCache(
        allowed_hosts=allowed_hosts(settings),
        timeout=c.template_timeout_s,
        local_roots=template_roots(settings),
        max_bytes=c.template_max_bytes,
        backoff=HostBackoff(c.template_host_backoff_s, c.template_host_backoff_max_s),
    )


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


class RenderError(LernflowError):
    """The renderer could not draw a certificate from this template and these values."""


@dataclass(frozen=True)
class ToMake:
    """One certificate to make: its data and its (fetched, sanitised) template text."""

    data: CertificateData
    template: str


@dataclass(frozen=True)
class MakeFailed:
    """A certificate that could not be made: why, and the error type for the failed topic."""

    reason: str
    error_type: str


@dataclass(frozen=True)
class MakeJob:
    """Everything one certificate needs, picklable for the render pool."""

    data: CertificateData
    svg_template: str
    renderer: Literal["weasyprint", "cairosvg"]
    hosts: tuple[str, ...]
    issuer_id: str
    storage: Storage
    vc_version: cred.VcVersion = "1.1"


_WORKER_KEY: signing.SigningKey | None = None  # the signing key inside a pool process


def _init_worker(key_path: str, kid: str) -> None:
    global _WORKER_KEY
    _WORKER_KEY = signing.load_signing_key(Path(key_path), kid=kid)


def make_certificate(job: MakeJob, key: signing.SigningKey | None = None) -> Certificate:
    """Fill, render, sign (bound to the rendered pages: :func:`certificates.binding.issue_pdf`)
    and store one certificate (runs in a pool process).

    Raises:
        TemplateError, RenderError: this template or these values cannot be drawn.
        OSError: the storage failed.
    """
    signer = key or _WORKER_KEY
    assert signer is not None, "the pool initializer loads the signing key"
    data = job.data
    issued_at = datetime.fromisoformat(data.issued_date).replace(tzinfo=UTC)
    credential = cred.build_credential(
        data, issuer_id=job.issuer_id, kid=signer.kid, issued_at=issued_at, version=job.vc_version
    )
    qr = qr_data_uri(f"{data.verify_base_url}/{data.cert_id}")
    svg = fill_svg(job.svg_template, placeholder_values(data, qr))
    try:
        issued = binding.issue_pdf(svg, credential, signer, job.renderer, job.hosts)
    except TemplateError:
        raise
    except Exception as exc:  # whatever the renderer library raises for what it cannot draw
        msg = f"rendering failed: {type(exc).__name__}: {str(exc)[:500]}"
        raise RenderError(msg) from None
    base = f"{data.batch_id}/{data.cert_id}"
    pdf_url = job.storage.put(f"{base}.pdf", issued.pdf, "application/pdf")
    json_url = job.storage.put(f"{base}.jwt", issued.token.encode(), "application/jwt")
    return Certificate(data.cert_id, pdf_url, json_url, rules.access_code(data.cert_id), credential)


def _failed(exc: BaseException) -> MakeFailed:
    """A certificate's own failure; anything else (storage, a bug) is raised again."""
    if isinstance(exc, LernflowError) and not exc.retryable:
        return MakeFailed(str(exc), type(exc).__name__)
    raise exc


class CertificateMaker:
    """Renders, signs and stores certificates (``storage``: the configured folder by default)."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self._s = settings
        self._signer_path = signer_path(settings)
        self._signer = signing.load_signing_key(
            self._signer_path, kid=self._signer_path.name.removesuffix(".private.pem")
        )
        self.templates = template_cache(settings)
        self.storage = storage or LocalStorage(settings.certificates.storage_dir)
        self._timeout = settings.certificates.render_timeout_s
        self._pool: multiprocessing.pool.Pool | None = None

    def template(self, url: str) -> str:
        """The template text (fetched once, then cached).

        Raises:
            TemplateUnavailable: its host is down or backed off (worth a later replay).
            TemplateError: it is not allowed, not readable or not an acceptable SVG.
        """
        return self.templates.get(url)

    def make(self, items: list[ToMake]) -> list[Certificate | MakeFailed]:
        """Make every certificate; each is a :class:`Certificate` or its :class:`MakeFailed`."""
        c = self._s.certificates
        issuer = f"{c.cert_domain_url}/certs/issuer"
        hosts = allowed_hosts(self._s)
        jobs = [
            MakeJob(i.data, i.template, c.renderer, hosts, issuer, self.storage, c.vc_version)
            for i in items
        ]
        if not self._timeout and (len(jobs) < 4 or (os.cpu_count() or 1) < 2):
            return [self._here(j) for j in jobs]
        results: dict[int, Certificate | MakeFailed] = {}
        todo = list(range(len(jobs)))
        while todo:  # each pass finishes at least one certificate
            todo = self._pass(jobs, todo, results)
        return [results[i] for i in range(len(jobs))]

    def _here(self, job: MakeJob) -> Certificate | MakeFailed:
        try:
            return make_certificate(job, self._signer)
        except Exception as exc:
            return _failed(exc)

    def _pass(
        self, jobs: list[MakeJob], todo: list[int], results: dict[int, Certificate | MakeFailed]
    ) -> list[int]:
        """Submit ``todo`` to the pool and collect; after a timeout, the pool is killed and the
        unfinished certificates are returned to be made again."""
        pool = self._worker_pool()
        pending = [(i, pool.apply_async(make_certificate, (jobs[i],))) for i in todo]
        timeout = self._timeout or None
        for n, (i, result) in enumerate(pending):
            try:
                results[i] = result.get(timeout)
            except multiprocessing.TimeoutError:
                data = jobs[i].data
                logger.error("certificate %s: render timed out after %gs", data.cert_id, timeout)
                results[i] = MakeFailed(
                    f"rendering took longer than {timeout:g} s (LERNFLOW_CERT_RENDER_TIMEOUT_S)",
                    "RenderTimeout",
                )
                again = [j for j, r in pending[n + 1 :] if not r.ready()]
                for j, r in pending[n + 1 :]:
                    if r.ready():
                        results[j] = self._collect(r)
                self._kill_pool()
                return again
            except Exception as exc:
                results[i] = _failed(exc)
        return []

    @staticmethod
    def _collect(result: multiprocessing.pool.AsyncResult[Certificate]) -> Certificate | MakeFailed:
        try:
            return result.get(0)
        except Exception as exc:
            return _failed(exc)

    def _worker_pool(self) -> multiprocessing.pool.Pool:
        if self._pool is None:
            self._pool = multiprocessing.Pool(
                processes=os.cpu_count() or 2,
                initializer=_init_worker,
                initargs=(str(self._signer_path), self._signer.kid),
            )
        return self._pool

    def _kill_pool(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def close(self) -> None:
        """Stop the render pool."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
