"""What the ``lernflow serve`` tests share: a certificate issued by the generator's own issue
function (fill, render, sign bound to the pages, store), a tampered copy, and the settings of
an app serving that store (docs/serve.md)."""

from __future__ import annotations

import dataclasses
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypdf
from pypdf.generic import DecodedStreamObject, NameObject
from starlette.exceptions import StarletteDeprecationWarning

from lernflow.certificates import signing
from lernflow.certificates.fetch import bundled_template_path
from lernflow.certificates.storage import LocalStorage
from lernflow.config import Settings, load_settings
from lernflow.flows.certificate_generator.maker import MakeJob, make_certificate
from tests.unit.test_certificates_signing import data_from_event

with warnings.catch_warnings():  # Starlette 1.x would rather have httpx2; httpx works the same
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

ISSUER_ID = "http://127.0.0.1:8080/certs/Issuer.json"
LEARNER = "Priya Natarajan"  # tests/data/certificates/gen.request.first.json
COURSE = "Geometry Essentials"
SIGNATORY = "Noor Haddad"
ISSUER = "Lernflow Open School"
CERT_ID = "5e7a1c2d-0b3f-4c8e-9a61-7d2f4e8b9c10"


@dataclass(frozen=True)
class Issued:
    """One genuine certificate in a store of its own."""

    settings: Settings
    cert_id: str
    batch_id: str
    pdf: bytes
    token: str

    @property
    def pdf_path(self) -> Path:
        return self.settings.certificates.storage_dir / self.batch_id / f"{self.cert_id}.pdf"


def issue(folder: Path, cert_id: str = CERT_ID, **serve: Any) -> Issued:
    """Issue one certificate into ``folder``/store with a key in ``folder``/keys; the settings
    point there (``serve``: ``LERNFLOW_SERVE_*`` overrides, e.g. ``max_upload_bytes``)."""
    base = load_settings()
    certs = base.certificates.model_copy(
        update={"keys_dir": folder / "keys", "storage_dir": folder / "store"}
    )
    settings = base.with_overrides(certificates=certs, serve=base.serve.model_copy(update=serve))
    key = signing.generate_keys(certs.keys_dir, kid="serve-test")
    data = dataclasses.replace(
        data_from_event("gen.request.first.json", cert_id=cert_id),
        verify_base_url=f"{certs.cert_domain_url}/certs",
    )
    job = MakeJob(
        data=data,
        svg_template=bundled_template_path().read_text(encoding="utf-8"),
        renderer="cairosvg",
        hosts=(),
        issuer_id=ISSUER_ID,
        storage=LocalStorage(certs.storage_dir),
    )
    made = make_certificate(job, key)
    pdf = Path(made.pdf_url).read_bytes()
    token = Path(made.json_url).read_text(encoding="ascii").strip()
    return Issued(settings, cert_id, data.batch_id, pdf, token)


def tampered(pdf: bytes) -> bytes:
    """``pdf`` with a black box drawn over page 1, its credential kept: a forger's edit."""
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(pdf))
    page = writer.pages[0]
    contents = page.get_contents()
    assert contents is not None
    stream = DecodedStreamObject()
    stream.set_data(contents.get_data() + b"\nq 0 g 40 40 220 60 re f Q\n")
    page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
