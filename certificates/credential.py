"""The certificate as a W3C Verifiable Credential (data model v1), ready to be signed as a JWT.

Sunbird's legacy path builds an Open Badges 2.0 assertion that is never signed; its RC path lets
Sunbird-RC sign a W3C VC outside the job
(docs/flows/certificate-generator.md#6-credential-and-signature). We build the W3C VC ourselves and
sign it as a VC-JWT (:mod:`certificates.signing`). The shape borrows Sunbird's names where they
exist (``badge``, ``batchId``, ``signatory``, issuer ``publicKey`` holding the key id).

:func:`build_credential` is a pure function: the same inputs give an equal dict (and the same
JSON bytes with ``sort_keys``), so a replayed event produces the same credential.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lernflow.certificates.model import CertificateData

W3C_CREDENTIALS_V1 = "https://www.w3.org/2018/credentials/v1"
CREDENTIAL_TYPE = "TrainingCertificate"


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
    data: CertificateData, issuer_id: str, kid: str, issued_at: datetime
) -> dict[str, Any]:
    """Build the W3C Verifiable Credential (v1 context) for one certificate.

    Args:
        data: the certificate.
        issuer_id: the issuer's identifier (a URL or DID); becomes ``issuer.id`` and JWT ``iss``.
        kid: id of the key that will sign it; listed as the issuer's ``publicKey``.
        issued_at: the issuance instant (timezone-aware); ``issuanceDate`` and JWT ``iat``/``nbf``.

    Returns:
        A JSON-serialisable dict. ``credentialSubject`` carries the recipient and the course
        (``badge``); ``evidence`` the completion; ``expirationDate`` is present only when the
        certificate has an expiry.

    Raises:
        ValueError: ``issued_at`` is naive.
    """
    base = data.verify_base_url.rstrip("/")
    credential: dict[str, Any] = {
        "@context": [W3C_CREDENTIALS_V1, f"{base}/v1/context.json"],
        "id": credential_id(data.cert_id),
        "type": ["VerifiableCredential", CREDENTIAL_TYPE],
        "issuer": {
            "id": issuer_id,
            "type": "Issuer",
            "name": data.issuer_name,
            "url": data.issuer_url,
            "publicKey": [kid],
        },
        "issuanceDate": iso_utc(issued_at),
        "credentialSubject": {
            "id": data.recipient_id,
            "type": "Learner",
            "name": data.recipient_name,
            "badge": _badge(data),
        },
        "evidence": [_evidence(data)],
        "signatory": _signatories(data),
    }
    expiry = data.expiry_at()
    if expiry is not None:
        credential["expirationDate"] = iso_utc(expiry)
    return credential
