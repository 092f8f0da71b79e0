"""Pure rules of collection-certificate-generator (``docs/flows/certificate-generator.md``).

A "generate certificate" event (built by the pre-processor) describes one certificate. This
module parses it, validates it with Sunbird's checks and messages, decides whether it is a
duplicate, and builds what the job writes: the certificate id, the ``issued_certificates``
entry, the AUDIT event, the notification request and the access code. It does no I/O: the
enrolment row, the clock and the random ids are arguments.

How the flow uses this module
-----------------------------
1. ``parse_request(value)`` → :class:`GenerateRequest`; :class:`~lernflow.kernel.errors.InvalidEvent`
   (bad JSON, wrong types) goes to the failed topic with its reason.
2. ``validate(req, cfg)`` → ``None`` or Sunbird's exact message of the first failed check;
   a message means the event is parked on the failed topic with it.
3. Read ``user_enrolments.issued_certificates`` of (``userId``, ``related.courseId``,
   ``related.batchId``) and call ``is_not_issued`` (``None`` when there is no row).
4. Per ``data`` item: ``certificate_id`` and ``access_code``; create the certificate; then
   ``issued_entry`` + ``merge_issued`` for the enrolment write-back, ``audit_event`` for the
   telemetry topic and ``notification_request`` / ``sms_request`` for the notifier.

Fixes over Sunbird
------------------
* **Public-key check works (rule 9).** Sunbird appends key ids to an immutable list and
  discards the result, so whenever ``issuer.publicKey`` is non-empty and ``keys`` is given the
  check always fails. Here ``keys.id`` is checked against the public-key ids for real (a URL
  entry contributes its last path segment without ``_publicKey.json``, not just its first
  character). The failure message keeps Sunbird's wording, including the Scala ``List(…)``
  rendering of the key list.
* **Strict signatories by default.** ``GenConfig.suppress_signatory_errors`` defaults to False
  (Sunbird's job conf says true, its ansible deployment says false): an empty or incomplete
  ``signatoryList`` is a validation failure unless suppressed.
* **No crash loops.** Unparseable JSON and wrongly typed fields are an
  :class:`~lernflow.kernel.errors.InvalidEvent` with a reason (Sunbird turns unparseable JSON into an
  empty event, fails validation and restarts forever); validation failures are returned, not
  raised.
* **Stable certificate ids.** :func:`certificate_id` is a UUIDv5 of (user, course, batch,
  lower-cased name), so a retry or replay after a crash re-creates the same certificate instead
  of an orphan with a new random id.
* **Access code without busy-waiting.** :func:`access_code` is derived from the
  certificate id by a hash (same alphabet and letter-digit pattern), instead of waiting for a
  wall-clock millisecond whose code fits the pattern (~128 ms per certificate).
* **Configurable zone.** ``lastIssuedOn`` and ``heldDate`` use a configurable zone (Sunbird: the
  JVM zone, UTC in its images); naive datetimes are taken as UTC.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import java_equals_ignore_case
from lernflow.kernel.jsondoc import DEFAULT_LIMITS, Limits, check_id, decode

AUDIT_TYPE = "certificate-issued-svg"
ACCESS_CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_ACCESS_LETTERS = "".join(c for c in ACCESS_CODE_ALPHABET if c.isalpha())
_ACCESS_DIGITS = "".join(c for c in ACCESS_CODE_ALPHABET if c.isdigit())
SMS_BODY = (
    "Congratulations! Download your course certificate from your profile page. If you have a "
    "problem downloading it on the mobile, update your {instance} app"
)
# Characters Sunbird refuses in edata.tag: ! @ # $ % ^ & * ( ) + = , . ? / " : ; ' { } | < >,
# Java's \s (ASCII whitespace only) and '-'.
_TAG_FORBIDDEN = re.compile(r"[!@#$%^&*()+=,.?/\":;'{}|<> \t\n\x0b\f\r-]")
# Schemes java.net.URL knows out of the box.
_URL_SCHEMES = frozenset({"http", "https", "ftp", "file", "jar", "mailto"})
_URI_ILLEGAL = re.compile(r"[\x00-\x20\"<>\\^`{|}\x7f]|%(?![0-9A-Fa-f]{2})")
_PUBLIC_KEY_SUFFIX = "_publicKey.json"


@dataclass(frozen=True)
class GenConfig:
    """The job settings the rules depend on."""

    suppress_signatory_errors: bool = False  # Sunbird enable.suppress.exception (strict here)
    zone: str = "UTC"
    issued_type: str = "TrainingCertificate"  # issued_certificates[].type (service.rc.entity)
    cloud_base_path_placeholder: str = "CLOUD_BASE_PATH"  # expanded in stateImgUrl
    cloud_base_url: str = ""  # what replaces it ("" leaves the URL as it is)
    sms_instance_name: str = "Sunbird"  # sunbird_instance_name in the SMS text


@dataclass(frozen=True)
class GenerateRequest:
    """A parsed generate-certificate event, with the defaults of docs/flows/certificate-generator.md#1-inputs."""

    user_id: str
    old_id: str
    name: str
    svg_template: str
    template_id: str
    course_name: str
    issued_date: str
    expiry: str
    data: list[dict[str, Any]]
    issuer: dict[str, Any]
    signatory_list: list[Any]
    criteria: dict[str, Any]
    keys: dict[str, Any]
    related: dict[str, Any]
    batch_id: str
    course_id: str
    base_path: str
    tag: str
    description: str
    logo: str
    raw: dict[str, Any]


# -- parsing ---------------------------------------------------------------------------------
def _string(owner: Mapping[str, Any], key: str, where: str) -> str:
    value = owner.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        msg = f"{where}.{key} must be a string, got {value!r}"
        raise InvalidEvent(msg)
    return value


def _typed(owner: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = owner.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        wanted = "an object" if kind is dict else "a list"
        msg = f"{where}.{key} must be {wanted}, got {value!r}"
        raise InvalidEvent(msg)
    return value


def parse_request(raw: bytes, *, limits: Limits = DEFAULT_LIMITS) -> GenerateRequest:
    """Read a generate-certificate event; :class:`InvalidEvent` on bad JSON or wrong types.

    Missing fields take Sunbird's defaults (``""``, ``[]``, ``{}``) so that :func:`validate`
    reports them with Sunbird's messages. An event over ``limits`` (size, nesting, an id that
    becomes a key — ``userId``, ``related.courseId``/``batchId``, ``data[*].recipientId`` —
    longer than ``max_id_chars``) is invalid.
    """
    doc = decode(raw, limits)
    if not isinstance(doc, dict):
        msg = f"the event must be a JSON object, got {type(doc).__name__}"
        raise InvalidEvent(msg)
    edata: dict[str, Any] = _typed(doc, "edata", dict, "event")
    data: list[Any] = _typed(edata, "data", list, "edata")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            msg = f"edata.data[{i}] must be an object, got {item!r}"
            raise InvalidEvent(msg)
        if item.get("recipientId") is not None:  # the enrolment key of the write-back
            check_id(str(item["recipientId"]), f"edata.data[{i}].recipientId", limits)
    related: dict[str, Any] = _typed(edata, "related", dict, "edata")

    def text(key: str) -> str:
        return _string(edata, key, "edata")

    def key(owner: Mapping[str, Any], name: str, where: str) -> str:
        return check_id(_string(owner, name, where), f"{where}.{name}", limits)

    return GenerateRequest(
        user_id=key(edata, "userId", "edata"),
        old_id=text("oldId"),
        name=text("name"),
        svg_template=text("svgTemplate"),
        template_id=text("templateId"),
        course_name=text("courseName"),
        issued_date=text("issuedDate"),
        expiry=text("expiry"),
        data=data,
        issuer=_typed(edata, "issuer", dict, "edata"),
        signatory_list=_typed(edata, "signatoryList", list, "edata"),
        criteria=_typed(edata, "criteria", dict, "edata"),
        keys=_typed(edata, "keys", dict, "edata"),
        related=related,
        batch_id=key(related, "batchId", "edata.related"),
        course_id=key(related, "courseId", "edata.related"),
        base_path=text("basePath"),
        tag=text("tag"),
        description=text("description"),
        logo=text("logo"),
        raw=doc,
    )


# -- validation ------------------------------------------------------------------------------
def _blank(value: Any) -> bool:
    """StringUtils.isBlank of ``value.toString`` (a missing or null value is blank)."""
    return value is None or not str(value).strip()


def _missing(parameter: str) -> str:
    return f"Mandatory parameter {parameter} is missing."


def _invalid(value: str, parameter: str) -> str:
    return f"Invalid value {value} for parameter {parameter}."


def _children(items: list[Any], parent: str, keys: tuple[str, ...]) -> str | None:
    """Sunbird's mandatory check of a list of maps: non-empty, every item has every key."""
    if not items:
        return _missing(parent)
    for item in items:
        owner = item if isinstance(item, Mapping) else {}
        for key in keys:
            if _blank(owner.get(key)):
                return _missing(f"{parent}.{key}")
    return None


def _map(owner: Mapping[str, Any], parent: str, keys: tuple[str, ...]) -> str | None:
    """Sunbird's mandatory check of a map: non-empty, every key non-blank."""
    if not owner:
        return _missing(parent)
    for key in keys:
        if _blank(owner.get(key)):
            return _missing(f"{parent}.{key}")
    return None


def _valid_url(url: str) -> bool:
    """An approximation of ``new java.net.URL(url).toURI()`` succeeding."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)\Z", url, re.DOTALL)
    if match is None or _URI_ILLEGAL.search(url):
        return False
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme not in _URL_SCHEMES or (scheme == "jar" and "!/" not in rest):
        return False
    # "http://" has no authority: URL accepts it, toURI() does not.
    return not (rest.startswith("//") and scheme != "file" and not urlsplit(url).netloc)


def _key_ids(public_keys: list[Any]) -> list[str]:
    ids: list[str] = []
    for key in public_keys:
        text = str(key)
        if text.startswith("http"):
            segment = urlsplit(text).path.rsplit("/", 1)[-1]
            text = segment.removesuffix(_PUBLIC_KEY_SUFFIX)
        ids.append(text)
    return ids


def _scala_list(values: list[Any]) -> str:
    return "List(" + ", ".join(str(v) for v in values) + ")"


def validate(req: GenerateRequest, cfg: GenConfig) -> str | None:
    """Sunbird's CertValidator, in order: the first failure's message, or None.

    See docs/flows/certificate-generator.md#3-validation.
    """
    edata = req.raw.get("edata")
    if not edata:
        return _missing("edata")
    problem = (
        _map({"name": req.name, "svgTemplate": req.svg_template}, "edata", ("name", "svgTemplate"))
        or _children(req.data, "edata.data", ("recipientName",))
        or _map(req.issuer, "edata.issuer", ("name", "url"))
    )
    if problem:
        return problem
    signatories = _children(
        req.signatory_list, "edata.signatoryList", ("name", "id", "designation", "image")
    )
    if signatories and not cfg.suppress_signatory_errors:
        return signatories
    problem = _map(req.criteria, "edata.criteria", ("narrative",))
    if problem:
        return problem
    if not _blank(req.tag) and _TAG_FORBIDDEN.search(req.tag):
        return _invalid(req.tag, "tag")
    if not _blank(req.base_path) and not _valid_url(req.base_path):
        return _invalid(req.base_path, "certificate.basePath")
    if req.keys:
        if _blank(req.keys.get("id")):
            return _missing("edata.keys.id")
        public_keys = req.issuer.get("publicKey")
        if isinstance(public_keys, str):
            public_keys = [public_keys] if public_keys else []
        if (
            isinstance(public_keys, list)
            and public_keys
            and str(req.keys["id"]) not in _key_ids(public_keys)
        ):
            return (
                _invalid(_scala_list(public_keys), "edata.issuer.publicKey")
                + " ,public key attribute must contain keys.id value"
            )
    return None


# -- dedup and write-back --------------------------------------------------------------------
def _name_of(entry: Mapping[str, Any]) -> str:
    value = entry.get("name")
    return value if isinstance(value, str) else ""


def is_not_issued(
    req: GenerateRequest, issued_certificates: Sequence[Mapping[str, str]] | None
) -> bool:
    """Whether to issue (docs/flows/certificate-generator.md#4-dedup).

    ``None`` = no enrolment row → False (never issued). True for a re-issue (``oldId`` set)
    or when no issued certificate has the same name (case-insensitive). An enrolment row whose
    column is null is ``[]``.
    """
    if issued_certificates is None:
        return False
    issued = any(java_equals_ignore_case(_name_of(c), req.name) for c in issued_certificates)
    return req.old_id != "" or not issued


def certificate_id(user_id: str, course_id: str, batch_id: str, name: str, old_id: str = "") -> str:
    """Stable certificate id: UUIDv5 of (user, course, batch, lower-cased name), and of the
    replaced certificate's id for a re-issue (``oldId``).

    Every retry or replay of the same certificate gets the same id. A re-issue gets a new id
    (the same on its replays), so the certificate it replaces keeps its own and can be revoked
    (docs/flows/certificate-generator.md#14-revocation-and-status-list).
    """
    parts = [user_id, course_id, batch_id, name.lower()] + ([old_id] if old_id else [])
    key = json.dumps(parts)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "lernflow:certificate:" + key))


def _local(moment: datetime, zone: str) -> datetime:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(ZoneInfo(zone))


def last_issued_on(now: datetime, zone: str) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSSZ``, e.g. ``2021-05-27T10:25:05.836+0000``."""
    local = _local(now, zone)
    return f"{local.year:04d}-{local:%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}{local:%z}"


def issued_entry(
    name: str,
    cert_id: str,
    token: str,
    now: datetime,
    template_url: str,
    cert_type: str,
    zone: str,
) -> dict[str, str]:
    """The new ``issued_certificates`` entry.

    See docs/flows/certificate-generator.md#10-enrolment-write-back.

    ``templateUrl`` and ``type`` are present only when non-empty (Sunbird's legacy path writes
    neither; its RC path writes both).
    """
    entry = {
        "name": name,
        "identifier": cert_id,
        "token": token,
        "lastIssuedOn": last_issued_on(now, zone),
    }
    if template_url:
        entry["templateUrl"] = template_url
    if cert_type:
        entry["type"] = cert_type
    return entry


def merge_issued(
    existing: Sequence[Mapping[str, str]] | None, entry: dict[str, str]
) -> list[dict[str, str]]:
    """Drop every entry with the same name (case-insensitive), then append ``entry``."""
    name = entry.get("name", "")
    kept = [dict(c) for c in existing or [] if not java_equals_ignore_case(_name_of(c), name)]
    return [*kept, dict(entry)]


# -- outputs ---------------------------------------------------------------------------------
def audit_event(
    user_id: str,
    cert_id: str,
    batch_id: str,
    course_id: str,
    *,
    now_ms: int,
    mid_uuid: str,
    sid: str,
    did: str,
) -> dict[str, Any]:
    """The AUDIT telemetry of an issued certificate.

    See docs/flows/certificate-generator.md#9-registry-audit-and-notification.
    """
    return {
        "eid": "AUDIT",
        "ets": now_ms,
        "mid": f"LP.AUDIT.{now_ms}.{mid_uuid}",
        "ver": "3.0",
        "actor": {"id": user_id, "type": "User"},
        "context": {
            "channel": "in.ekstep",
            "env": "Course",
            "sid": sid,
            "did": did,
            "pdata": {
                "ver": "1.0",
                "id": "org.sunbird.learning.platform",
                "pid": "course-certificate-generator",
            },
            "cdata": [{"type": "CourseBatch", "id": batch_id}],
        },
        "object": {"id": cert_id, "type": "Certificate", "rollup": {"l1": course_id}},
        "edata": {"props": ["certificates"], "type": AUDIT_TYPE},
    }


def held_date(completed_on: datetime | None, zone: str) -> str:
    """``completedon`` as ``yyyy-MM-dd`` in ``zone`` (the ``heldDate`` of the notification)."""
    if completed_on is None:
        msg = "the enrolment has no completion date (completedon is null), so no heldDate"
        raise InvalidEvent(msg)
    local = _local(completed_on, zone)
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}"


def notification_request(
    *,
    user_id: str,
    course_name: str,
    issued_date: str,
    notify_template: Mapping[str, Any] | None = None,
    first_name: Any = "",
) -> dict[str, Any]:
    """The email request body of ``POST {learner}/v2/notification``.

    See docs/flows/certificate-generator.md#9-registry-audit-and-notification (step 3).

    ``{"request": {<notify_template keys>, firstName, TrainingName, heldDate,
    recipientUserIds, body: "email body"}}``.

    * ``notify_template``: the template's parsed ``notifyTemplate`` (its keys come first and are
      sent as they are; :func:`expand_state_image` expands ``stateImgUrl`` beforehand).
    * ``first_name``: the user-read profile's ``firstName`` (``""`` when absent; null is sent
      as null).
    * ``issued_date``: ``heldDate``, ``yyyy-MM-dd`` — the enrolment's ``completedon`` in the
      job zone, which is the event's ``edata.issuedDate`` (or use :func:`held_date`).
    """
    request: dict[str, Any] = dict(notify_template or {})
    request.update(
        {
            "firstName": first_name,
            "TrainingName": course_name,
            "heldDate": issued_date,
            "recipientUserIds": [user_id],
            "body": "email body",
        }
    )
    return {"request": request}


def parse_notify_template(text: str) -> dict[str, Any] | None:
    """A template's ``notifyTemplate`` JSON text as a map (None when it is not a JSON object)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def expand_state_image(
    notify_template: Mapping[str, Any], placeholder: str, base_url: str
) -> dict[str, Any]:
    """``notify_template`` with the cloud placeholder in ``stateImgUrl`` replaced by ``base_url``.

    Sunbird means to do this but looks for the key ``stateImageUrl`` while templates use
    ``stateImgUrl``, so its emails keep the placeholder (docs/fixes-over-sunbird.md). An empty
    ``placeholder`` or ``base_url`` leaves the value as it is.
    """
    keys = dict(notify_template)
    url = keys.get("stateImgUrl")
    if isinstance(url, str) and placeholder and base_url:
        keys["stateImgUrl"] = url.replace(placeholder, base_url)
    return keys


def sms_request(
    email_request: Mapping[str, Any], *, instance_name: str = "Sunbird"
) -> dict[str, Any]:
    """The SMS variant, sent when the profile has a ``maskedPhone``.

    See docs/flows/certificate-generator.md#9-registry-audit-and-notification (step 3).

    The inner ``body`` is the SMS text and a top-level ``"body": "sms"`` sits beside
    ``request`` (Sunbird's shape, kept although odd).
    """
    inner = dict(email_request.get("request") or {})
    inner["body"] = SMS_BODY.format(instance=instance_name)
    return {"request": inner, "body": "sms"}


def access_code(cert_id: str) -> str:
    """Six characters letter-digit-letter-digit-letter-digit from Sunbird's alphabet.

    Derived from a SHA-256 of the certificate id: the same id always gets the same code, and
    nothing waits for the clock (Sunbird busy-waits ~128 ms per certificate).
    """
    digest = hashlib.sha256(("lernflow:access-code:" + cert_id).encode("utf-8")).digest()
    chars = []
    for i in range(6):
        pool = _ACCESS_LETTERS if i % 2 == 0 else _ACCESS_DIGITS
        chars.append(pool[int.from_bytes(digest[4 * i : 4 * i + 4], "big") % len(pool)])
    return "".join(chars)
