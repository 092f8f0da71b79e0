"""The documents a credential points to: JSON-LD contexts, the issuer profile, and an offline
JSON-LD document loader.

A credential names ``{verify_base_url}/v1/context.json`` (``/v2/`` for VC 2.0), an issuer at
``{verify_base_url}/issuer`` with its key ids, and a status list at
``{verify_base_url}/status/revocation``; the keys are published as a JWKS at
``{cert_domain_url}/.well-known/jwks.json``. These pure functions build those documents so a server
(``lernflow serve``) can publish them and a verifier can resolve them without a network
(docs/flows/certificate-generator.md#6-credential-and-signature).

The context files live in ``certificates/contexts/`` (package data, like the templates):

* ``lernflow-v1.jsonld`` — our terms for VC 1.1 credentials (course, batch, signatories, and
  the Bitstring Status List entry, which the W3C v1 context does not define);
* ``lernflow-v2.jsonld`` — the same terms without those the W3C v2 context already defines
  and protects (``name``, ``description``, ``BitstringStatusListEntry``);
* ``w3c-credentials-v1.jsonld`` / ``w3c-credentials-v2.jsonld`` — the W3C Verifiable
  Credentials contexts (``https://www.w3.org/2018/credentials/v1``,
  ``https://www.w3.org/ns/credentials/v2``), unmodified copies of W3C's published documents,
  shipped under the W3C Software and Document License (see ``certificates/contexts/README.md``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from lernflow.certificates.credential import (
    W3C_CREDENTIALS_V1,
    W3C_CREDENTIALS_V2,
    VcVersion,
    context_url,
)
from lernflow.kernel.errors import LernflowError

logger = logging.getLogger(__name__)

_FILES = {
    "lernflow-1.1": "lernflow-v1.jsonld",
    "lernflow-2.0": "lernflow-v2.jsonld",
    W3C_CREDENTIALS_V1: "w3c-credentials-v1.jsonld",
    W3C_CREDENTIALS_V2: "w3c-credentials-v2.jsonld",
}


class DocumentNotPreloaded(LernflowError):
    """A JSON-LD processor asked for a document the offline loader does not hold."""


def contexts_dir() -> Path:
    """The folder of the shipped JSON-LD context files."""
    return Path(__file__).resolve().parent / "contexts"


@cache
def _read(name: str) -> str:
    return (contexts_dir() / name).read_text(encoding="utf-8")


def context_document(version: VcVersion = "1.1") -> dict[str, Any]:
    """Our JSON-LD context for credentials of that VC version (a fresh dict)."""
    parsed: dict[str, Any] = json.loads(_read(_FILES[f"lernflow-{version}"]))
    return parsed


def issuer_url(verify_base_url: str) -> str:
    """The issuer id the generator signs with (``{verify_base_url}/issuer``)."""
    return f"{verify_base_url.rstrip('/')}/issuer"


def jwks_url(verify_base_url: str) -> str:
    """Where the public keys are published as a JWKS: ``/.well-known/jwks.json`` beside
    ``/certs`` (``lernflow serve`` answers both at ``cert_domain_url``)."""
    return f"{verify_base_url.rstrip('/').removesuffix('/certs')}/.well-known/jwks.json"


def issuer_profile(verify_base_url: str, name: str, url: str, kids: list[str]) -> dict[str, Any]:
    """The issuer profile served at :func:`issuer_url`: id, name, url, the key ids credentials
    name as ``publicKey`` and the JWKS location (a VC 1.1 JSON-LD document).

    ``name``/``url`` come from ``LERNFLOW_CERT_ISSUER_NAME``/``…_ISSUER_URL`` (each credential
    also carries the issuer name and url of its request).
    """
    base = verify_base_url.rstrip("/")
    profile: dict[str, Any] = {
        "@context": [W3C_CREDENTIALS_V1, context_url(base, "1.1")],
        "id": issuer_url(base),
        "type": "Issuer",
        "name": name,
        "publicKey": sorted(kids),
        "jwks": jwks_url(base),
    }
    if url:
        profile["url"] = url
    return profile


def preloaded_documents(verify_base_url: str) -> dict[str, dict[str, Any]]:
    """URL → JSON document of every context a credential of this deployment names."""
    base = verify_base_url.rstrip("/")
    return {
        W3C_CREDENTIALS_V1: json.loads(_read(_FILES[W3C_CREDENTIALS_V1])),
        W3C_CREDENTIALS_V2: json.loads(_read(_FILES[W3C_CREDENTIALS_V2])),
        context_url(base, "1.1"): context_document("1.1"),
        context_url(base, "2.0"): context_document("2.0"),
    }


def document_loader(
    verify_base_url: str,
) -> Callable[[str, dict[str, Any] | None], dict[str, Any]]:
    """A JSON-LD document loader (pyld's ``documentLoader`` signature) that serves only the
    shipped contexts, at the URLs credentials name, and refuses anything else: a processor
    expands our credentials with no network.

    Raises (from the loader):
        DocumentNotPreloaded: any other URL.
    """
    documents = preloaded_documents(verify_base_url)

    def load(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        if url not in documents:
            msg = f"{url} is not one of the preloaded JSON-LD contexts ({sorted(documents)})"
            raise DocumentNotPreloaded(msg)
        return {"contextUrl": None, "documentUrl": url, "document": documents[url]}

    return load
