"""The certificate as a W3C Verifiable Credential (data model 1.1, or 2.0 as an option), ready
to be signed as a JWT.

Sunbird's legacy path builds an Open Badges 2.0 assertion that is never signed; its RC path lets
Sunbird-RC sign a W3C VC outside the job
(docs/flows/certificate-generator.md#6-credential-and-signature). We build the W3C VC ourselves and
sign it as a VC-JWT (:mod:`certificates.signing`). The shape borrows Sunbird's names where they
exist (``badge``, ``batchId``, ``signatory``, issuer ``publicKey`` holding the key id).

:func:`build_credential` is a pure function: the same inputs give an equal dict (and the same
JSON bytes with ``sort_keys``), so a replayed event produces the same credential.

Everything the credential points to resolves (docs/flows/certificate-generator.md#6-credential-and-signature):
the JSON-LD context ``{verify_base_url}/v1/context.json`` (``/v2/`` for a 2.0 credential) is a
file shipped with the package (:mod:`certificates.documents`), the issuer profile and the JWKS
are documents built from the settings, and ``credentialStatus`` names the revocation status
list (:mod:`certificates.status_list`). ``credentialSubject.id`` is the URI
``urn:lernflow:user:<user id>`` (:func:`subject_uri`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from lernflow.certificates.model import CertificateData

W3C_CREDENTIALS_V1 = "https://www.w3.org/2018/credentials/v1"
W3C_CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
CREDENTIAL_TYPE = "TrainingCertificate"
SUBJECT_PREFIX = "urn:lernflow:user:"
STATUS_PURPOSE = "revocation"

VcVersion = Literal["1.1", "2.0"]
"""The VC Data Model version of the output (``LERNFLOW_CERT_VC_VERSION``)."""


def context_url(verify_base_url: str, version: VcVersion = "1.1") -> str:
    """Our JSON-LD context's URL: ``/v1/context.json`` for 1.1, ``/v2/context.json`` for 2.0
    (the 2.0 file leaves out the terms the W3C v2 context already protects)."""
    major = "v2" if version == "2.0" else "v1"
    return f"{verify_base_url.rstrip('/')}/{major}/context.json"


def status_list_url(verify_base_url: str) -> str:
    """The URL of the revocation status list credential (a JWT)."""
    return f"{verify_base_url.rstrip('/')}/status/{STATUS_PURPOSE}"


def subject_uri(user_id: str) -> str:
    """``credentialSubject.id`` (and JWT ``sub``): ``urn:lernflow:user:`` + the user id,
    percent-encoded except for ``A-Z a-z 0-9 - . _ ~``. Stable: it depends on the user id alone."""
    return SUBJECT_PREFIX + quote(user_id, safe="-._~")


def status_entry(verify_base_url: str, index: int) -> dict[str, Any]:
    """The ``credentialStatus`` of a certificate whose revocation bit is ``index``
    (W3C Bitstring Status List, ``statusPurpose: revocation``)."""
    url = status_list_url(verify_base_url)
    return {
        "id": f"{url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": STATUS_PURPOSE,
        "statusListIndex": str(index),
        "statusListCredential": url,
    }


def iso_utc(moment: datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (whole seconds).

    Raises:
        ValueError: ``moment`` is naive (its instant would depend on the machine's zone).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"a timezone-aware datetime is required, got naive {moment.isoformat()}"
        raise ValueError(msg)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def credential_id(cert_id: str) -> str:
    """The credential's ``id`` (and JWT ``jti``) for a certificate id."""
    return f"urn:uuid:{cert_id}"


def cert_id_of(jti: str) -> str:
    """The certificate id in a credential ``id`` / JWT ``jti`` (inverse of :func:`credential_id`)."""
    return jti.removeprefix("urn:uuid:")


def _badge(data: CertificateData) -> dict[str, Any]:
    """``credentialSubject.badge``: the course (Sunbird's names)."""
    return {
        "id": data.course_id,
        "type": "Course",
        "name": data.course_name or data.certificate_name,
        "courseName": data.course_name,
        "batchId": data.batch_id,
        "certificateName": data.certificate_name,
        "templateId": data.template_id,
        "description": data.description,
    }


def _evidence(data: CertificateData) -> dict[str, Any]:
    """The one ``evidence`` entry: the completion, pointing at the verify URL."""
    return {
        "id": data.verify_url,
        "type": ["Evidence", "TrainingEvidence"],
        "name": data.course_name or data.certificate_name,
        "courseId": data.course_id,
        "batchId": data.batch_id,
        "completedOn": data.issued_date,
    }


def _signatories(data: CertificateData) -> list[dict[str, Any]]:
    return [
        {
            "id": s.id,
            "type": "Signatory",
            "name": s.name,
            "designation": s.designation,
            "image": s.image,
        }
        for s in data.signatories
    ]


def build_credential(
    data: CertificateData,
    issuer_id: str,
    kid: str,
    issued_at: datetime,
    version: VcVersion = "1.1",
) -> dict[str, Any]:
    """Build the W3C Verifiable Credential for one certificate.

    Args:
        data: the certificate; a ``status_index`` adds the ``credentialStatus`` entry.
        issuer_id: the issuer's identifier (a URL or DID); becomes ``issuer.id`` and JWT ``iss``.
        kid: id of the key that will sign it; listed as the issuer's ``publicKey``.
        issued_at: the issuance instant (timezone-aware); ``issuanceDate`` (1.1) or
            ``validFrom`` (2.0), and JWT ``iat``/``nbf``.
        version: ``"1.1"`` (W3C v1 context, ``issuanceDate``/``expirationDate``) or ``"2.0"``
            (W3C v2 context, ``validFrom``/``validUntil``).

    Returns:
        A JSON-serialisable dict. ``credentialSubject`` carries the recipient (``id`` a
        :func:`subject_uri`) and the course (``badge``); ``evidence`` the completion; the expiry
        is present only when the certificate has one.

    Raises:
        ValueError: ``issued_at`` is naive, or ``version`` is unknown.
    """
    if version not in ("1.1", "2.0"):
        msg = f"VC version must be 1.1 or 2.0, got {version!r}"
        raise ValueError(msg)
    v2 = version == "2.0"
    base = data.verify_base_url.rstrip("/")
    credential: dict[str, Any] = {
        "@context": [W3C_CREDENTIALS_V2 if v2 else W3C_CREDENTIALS_V1, context_url(base, version)],
        "id": credential_id(data.cert_id),
        "type": ["VerifiableCredential", CREDENTIAL_TYPE],
        "issuer": {
            "id": issuer_id,
            "type": "Issuer",
            "name": data.issuer_name,
            "url": data.issuer_url,
            "publicKey": [kid],
        },
        ("validFrom" if v2 else "issuanceDate"): iso_utc(issued_at),
        "credentialSubject": {
            "id": subject_uri(data.recipient_id),
            "type": "Learner",
            "name": data.recipient_name,
            "badge": _badge(data),
        },
        "evidence": [_evidence(data)],
        "signatory": _signatories(data),
    }
    expiry = data.expiry_at()
    if expiry is not None:
        credential["validUntil" if v2 else "expirationDate"] = iso_utc(expiry)
    if data.status_index is not None:
        credential["credentialStatus"] = status_entry(base, data.status_index)
    return credential
