"""The pure planner of certificate-generator: what a round makes, and what it then records.

No I/O: the enrolments' ``issued_certificates``, the clock and the random ids are arguments.
:func:`to_make` decides per request (skip as ``already-issued`` / ``no-enrolment``, or the
certificates to make, one per recipient, each with its stable id); :func:`records` turns the
made certificates into the ``cert_registry`` rows, the AUDIT and notification events and the
``issued_certificates`` rewrites (docs/flows/certificate-generator.md#9-registry-audit-and-notification).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certificates.model import CertificateData, Signatory
from flows.certificate_generator import rules

FLOW = "certificate-generator"
CERT_TYPE = "lernflow-certificate"

IssuedCertificates = list[dict[str, str]]  # an enrolment's issued_certificates


@dataclass(frozen=True)
class EnrolmentKey:
    """The ``user_enrolments`` row of one learner in one batch."""

    user_id: str
    course_id: str
    batch_id: str


def enrolment_of(req: rules.GenerateRequest) -> EnrolmentKey:
    """The enrolment a request is about (its dedup reads that row's certificates)."""
    return EnrolmentKey(req.user_id, req.course_id, req.batch_id)


@dataclass(frozen=True)
class Decision:
    """What to do with one request: skip it (``skip`` is the kind) or make ``certificates``."""

    skip: str | None
    certificates: list[CertificateData]


def certificate_data(
    req: rules.GenerateRequest, recipient: dict[str, Any], verify_base_url: str, today: str
) -> CertificateData:
    """One recipient's certificate, with its stable id (``rules.certificate_id``)."""
    rid = str(recipient.get("recipientId") or req.user_id)
    sigs = tuple(
        Signatory(str(s.get("name") or ""), str(s.get("id") or ""),
                  str(s.get("designation") or ""), str(s.get("image") or ""))
        for s in req.signatory_list if isinstance(s, dict)
    )  # fmt: skip
    return CertificateData(
        cert_id=rules.certificate_id(rid, req.course_id, req.batch_id, req.name),
        recipient_id=rid,
        recipient_name=str(recipient.get("recipientName") or ""),
        course_id=req.course_id,
        course_name=req.course_name,
        batch_id=req.batch_id,
        certificate_name=req.name,
        template_id=req.template_id,
        issued_date=req.issued_date or today,
        issuer_name=str(req.issuer.get("name") or ""),
        issuer_url=str(req.issuer.get("url") or ""),
        signatories=sigs,
        description=req.description,
        expiry=req.expiry,
        verify_base_url=verify_base_url,
    )


def to_make(
    req: rules.GenerateRequest, issued: IssuedCertificates | None, verify_base_url: str, today: str
) -> Decision:
    """Skip a request whose name is issued (or with no enrolment), else one certificate per recipient.

    ``issued`` is the enrolment's ``issued_certificates`` (None: no enrolment row).
    """
    if not rules.is_not_issued(req, issued):
        return Decision("already-issued" if issued is not None else "no-enrolment", [])
    return Decision(None, [certificate_data(req, r, verify_base_url, today) for r in req.data])


@dataclass(frozen=True)
class Certificate:
    """One certificate made (signed, rendered and stored) for one recipient."""

    cert_id: str
    pdf_url: str
    json_url: str
    access_code: str
    credential: dict[str, Any]


@dataclass(frozen=True)
class Made:
    """A made certificate with the request it answers and its enrolment's certificates."""

    req: rules.GenerateRequest
    data: CertificateData
    issued: IssuedCertificates
    cert: Certificate


@dataclass(frozen=True)
class RegistryRow:
    """One ``sunbird.cert_registry`` row; ``replace`` for a re-issue, else insert if absent."""

    cert_id: str
    access_code: str
    at: datetime
    credential: str
    json_url: str
    pdf_url: str
    recipient: str
    related: str
    replace: bool


@dataclass(frozen=True)
class Announcement:
    """The AUDIT event and the notification request of one certificate, keyed by recipient."""

    recipient_id: str
    audit: dict[str, Any]
    notification: dict[str, Any]


@dataclass(frozen=True)
class IssuedUpdate:
    """The new ``issued_certificates`` of one enrolment."""

    key: EnrolmentKey
    issued: IssuedCertificates


@dataclass(frozen=True)
class Records:
    """What a round records, in this order: registry rows, announcements, enrolment rewrites."""

    registry: list[RegistryRow]
    announcements: list[Announcement]
    enrolments: list[IssuedUpdate]


def registry_row(m: Made, now: datetime) -> RegistryRow:
    """The ``cert_registry`` row of a made certificate."""
    req, data, cert = m.req, m.data, m.cert
    recipient = {"name": data.recipient_name, "id": data.recipient_id, "type": "user"}
    related = {"type": "course", "batchId": req.batch_id, "courseId": req.course_id}
    return RegistryRow(
        cert.cert_id, cert.access_code, now, json.dumps(cert.credential), cert.json_url,
        cert.pdf_url, json.dumps(recipient), json.dumps(related), replace=bool(req.old_id),
    )  # fmt: skip


def announcement(m: Made, now_ms: int, new_id: Callable[[], str]) -> Announcement:
    """AUDIT (``mid`` stable per certificate) and notification (with where the certificate is)."""
    req, data, cert = m.req, m.data, m.cert
    audit = rules.audit_event(
        data.recipient_id, cert.cert_id, req.batch_id, req.course_id, now_ms=now_ms,
        mid_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"audit:{cert.cert_id}")),
        sid=new_id(), did=new_id(),
    )  # fmt: skip
    note = rules.notification_request(
        user_id=data.recipient_id, course_name=req.course_name, issued_date=data.issued_date,
        first_name=data.recipient_name.split(" ")[0],
    )  # fmt: skip
    # where the certificate is, for the notifier (Sunbird's notifier reads it back itself)
    note["certificate"] = {"id": cert.cert_id, "pdfUrl": cert.pdf_url, "courseId": req.course_id,
                           "batchId": req.batch_id, "templateId": req.template_id}  # fmt: skip
    return Announcement(data.recipient_id, audit, note)


def records(
    made: list[Made],
    now: datetime,
    zone: str,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Records:
    """Everything the round writes and sends for its made certificates.

    Each recipient's enrolment gets every entry of the same name replaced by the new one
    (several certificates of one enrolment in a round are merged in order).
    """
    merged: dict[EnrolmentKey, IssuedCertificates] = {}
    for m in made:
        key = EnrolmentKey(m.data.recipient_id, m.req.course_id, m.req.batch_id)
        entry = rules.issued_entry(
            m.req.name, m.cert.cert_id, m.cert.access_code, now, m.req.svg_template, CERT_TYPE, zone
        )
        merged[key] = rules.merge_issued(merged.get(key, m.issued), entry)
    now_ms = int(now.timestamp() * 1000)
    return Records(
        [registry_row(m, now) for m in made],
        [announcement(m, now_ms, new_id) for m in made],
        [IssuedUpdate(k, v) for k, v in merged.items()],
    )
