"""The pure planner of certificate-generator: what a round makes, and what it then records.

No I/O: the enrolments, profiles and course batches, the clock and the random ids are
arguments. :func:`to_make` decides per request (skip as ``already-issued`` / ``no-enrolment``,
park when its dates cannot be read, or the certificates to make, one per recipient, each with
its stable id); :func:`notification` plans each certificate's notification as Sunbird's notifier
sends it (or why none is sent, or why the request must wait); :func:`records` turns the made
certificates into the ``cert_registry`` rows, the AUDIT and notification events and the
``issued_certificates`` rewrites (docs/flows/certificate-generator.md#9-registry-audit-and-notification).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lernflow.certificates.model import CertificateData, Signatory, normalize_issued_date
from lernflow.certificates.storage import object_key
from lernflow.flows.certificate_generator import rules
from lernflow.flows.certificate_generator.revocation import Revocation

FLOW = "certificate-generator"

IssuedCertificates = list[dict[str, str]]  # an enrolment's issued_certificates
CertTemplates = dict[str, dict[str, str]]  # a batch's cert_templates, by template id

# skip kinds of a notification not sent (the certificate is made; Sunbird's
# skipped-notify-user-count); they count notifications, not input events
NOTIFY_NO_PROFILE = "notify-no-profile"
NOTIFY_USER_BLOCKED = "notify-user-blocked"
NO_NOTIFY_TEMPLATE = "no-notify-template"


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
class Enrolment:
    """What the generator reads of one ``user_enrolments`` row."""

    issued: IssuedCertificates  # issued_certificates ([] when null)
    completed_on: datetime | None  # completedon: the notification's heldDate


@dataclass(frozen=True)
class BatchKey:
    """The ``course_batch`` row of a batch."""

    course_id: str
    batch_id: str


@dataclass(frozen=True)
class Profile:
    """What the notification needs of a learner's profile (``sunbird.user``)."""

    first_name: str | None
    masked_phone: str | None
    blocked: bool  # a deleted (blocked) account: Sunbird's user read answers USER_ACCOUNT_BLOCKED


@dataclass(frozen=True)
class Decision:
    """What to do with one request: skip it (``skip`` is the kind), park it (``problem`` is the
    reason) or make ``certificates``."""

    skip: str | None
    certificates: list[CertificateData]
    problem: str | None = None


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
        cert_id=rules.certificate_id(rid, req.course_id, req.batch_id, req.name, req.old_id),
        recipient_id=rid,
        recipient_name=str(recipient.get("recipientName") or ""),
        course_id=req.course_id,
        course_name=req.course_name,
        batch_id=req.batch_id,
        certificate_name=req.name,
        template_id=req.template_id,
        issued_date=normalize_issued_date(req.issued_date) if req.issued_date else today,
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
    A date that cannot be read (``issuedDate``, ``expiry``) parks the request with the reason.
    """
    if not rules.is_not_issued(req, issued):
        return Decision("already-issued" if issued is not None else "no-enrolment", [])
    try:
        made = [certificate_data(req, r, verify_base_url, today) for r in req.data]
        for data in made:  # the files' keys: a batch id that cannot name a folder parks too
            object_key(data.batch_id, data.cert_id)
    except (ValueError, OverflowError) as exc:
        return Decision(None, [], f"the certificate data cannot be built: {exc}")
    return Decision(None, made)


@dataclass(frozen=True)
class NotifyInputs:
    """What one certificate's notification is built from (read by the flow's store)."""

    profile: Profile | None  # None: no such user
    templates: CertTemplates | None  # the batch's cert_templates; None: no course_batch row
    completed_on: datetime | None  # the recipient's enrolment's completedon


@dataclass(frozen=True)
class NotifyPlan:
    """The requests to send (email, then SMS), or the skip kind, or why the request must wait."""

    messages: list[dict[str, Any]]
    skip: str | None = None
    problem: str | None = None


def _notify_template(req: rules.GenerateRequest, templates: CertTemplates) -> str | None:
    template = templates.get(req.template_id) if req.template_id.strip() else None
    text = (template or {}).get("notifyTemplate")
    return text if isinstance(text, str) and text.strip() else None


def notification(
    req: rules.GenerateRequest, data: CertificateData, inputs: NotifyInputs, cfg: rules.GenConfig
) -> NotifyPlan:
    """Sunbird's notifier, in its order (docs/flows/certificate-generator.md#9-registry-audit-and-notification).

    No profile or a blocked one → skipped; no course batch → the request waits (parked; Sunbird
    crashes); the template has no ``notifyTemplate`` → skipped; a ``notifyTemplate`` that is not
    a JSON object or no ``completedon`` → the request waits (Sunbird crashes); else the email
    request, and the SMS request when the profile has a ``maskedPhone``.
    """
    profile = inputs.profile
    if profile is None or profile.blocked:
        return NotifyPlan([], skip=NOTIFY_NO_PROFILE if profile is None else NOTIFY_USER_BLOCKED)
    where = f"course {req.course_id} batch {req.batch_id}"
    if inputs.templates is None:
        return NotifyPlan([], problem=f"notification: no course_batch row for {where}")
    text = _notify_template(req, inputs.templates)
    if text is None:
        return NotifyPlan([], skip=NO_NOTIFY_TEMPLATE)
    keys = rules.parse_notify_template(text)
    if keys is None:
        reason = f"notification: notifyTemplate of template {req.template_id} in {where} is not a JSON object"
        return NotifyPlan([], problem=reason)
    if inputs.completed_on is None:
        reason = (
            f"notification: the enrolment of {data.recipient_id} in {where} has no completion "
            "date (completedon is null), so no heldDate"
        )
        return NotifyPlan([], problem=reason)
    email = rules.notification_request(
        user_id=data.recipient_id, course_name=req.course_name,
        issued_date=rules.held_date(inputs.completed_on, cfg.zone),
        notify_template=rules.expand_state_image(keys, cfg.cloud_base_path_placeholder,
                                                 cfg.cloud_base_url),
        first_name=profile.first_name,
    )  # fmt: skip
    if not (profile.masked_phone or "").strip():
        return NotifyPlan([email])
    return NotifyPlan([email, rules.sms_request(email, instance_name=cfg.sms_instance_name)])


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
    """A made certificate with the request it answers, its enrolment's certificates and its
    notification."""

    req: rules.GenerateRequest
    data: CertificateData
    issued: IssuedCertificates
    cert: Certificate
    notify: NotifyPlan


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
    """The AUDIT event and the notification requests of one certificate, keyed by recipient."""

    recipient_id: str
    audit: dict[str, Any]
    notifications: list[dict[str, Any]]


@dataclass(frozen=True)
class IssuedUpdate:
    """The new ``issued_certificates`` of one enrolment."""

    key: EnrolmentKey
    issued: IssuedCertificates


@dataclass(frozen=True)
class Records:
    """What a round records, in this order: registry rows, the revocation of the certificates
    re-issues replace, announcements, enrolment rewrites."""

    registry: list[RegistryRow]
    announcements: list[Announcement]
    enrolments: list[IssuedUpdate]
    replaced: list[Revocation] = field(default_factory=list)


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
    """AUDIT (``mid`` stable per certificate) and the planned notification requests."""
    req, data, cert = m.req, m.data, m.cert
    audit = rules.audit_event(
        data.recipient_id, cert.cert_id, req.batch_id, req.course_id, now_ms=now_ms,
        mid_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"audit:{cert.cert_id}")),
        sid=new_id(), did=new_id(),
    )  # fmt: skip
    return Announcement(data.recipient_id, audit, list(m.notify.messages))


def records(
    made: list[Made],
    now: datetime,
    cfg: rules.GenConfig,
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
            m.req.name, m.cert.cert_id, m.cert.access_code, now, m.req.svg_template,
            cfg.issued_type, cfg.zone,
        )  # fmt: skip
        merged[key] = rules.merge_issued(merged.get(key, m.issued), entry)
    now_ms = int(now.timestamp() * 1000)
    return Records(
        [registry_row(m, now) for m in made],
        [announcement(m, now_ms, new_id) for m in made],
        [IssuedUpdate(k, v) for k, v in merged.items()],
        [replaced(m, now) for m in made if m.req.old_id and m.req.old_id != m.cert.cert_id],
    )


def replaced(m: Made, now: datetime) -> Revocation:
    """The revocation of the certificate a re-issue replaces (``oldId``), as Sunbird-RC marks
    it revoked; only when it is the same learner's."""
    return Revocation(
        m.req.old_id, f"replaced by {m.cert.cert_id} (re-issue)", FLOW, now,
        recipient=m.data.recipient_id,
    )  # fmt: skip
