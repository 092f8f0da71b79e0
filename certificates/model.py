"""The data one certificate is made from: recipient, course, issuer and signatories.

:class:`CertificateData` is the single input of the credential builder
(:func:`certificates.credential.build_credential`) and of the SVG filler
(:func:`certificates.values.placeholder_values`). It is immutable and validated on creation,
so everything downstream can rely on ``cert_id`` being a UUID and ``issued_date`` a real
calendar date (:func:`normalize_issued_date` turns Sunbird's looser forms into one).
"""

from __future__ import annotations

import calendar
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_PREFIX = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_EXPIRY_TOKEN = re.compile(r"(\d{1,4})([dmy])", re.IGNORECASE)


def _add_months(day: date, months: int) -> date:
    years, month0 = divmod(day.month - 1 + months, 12)
    year = day.year + years
    return date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def _add_relative(start: date, expiry: str) -> date:
    tokens = expiry.split()
    if not tokens:
        msg = f"expiry must be an ISO date/datetime or <n>d|m|y tokens, got {expiry!r}"
        raise ValueError(msg)
    result = start
    for token in tokens:
        match = _EXPIRY_TOKEN.fullmatch(token)
        if not match:
            msg = f"expiry must be an ISO date/datetime or <n>d|m|y tokens, got {expiry!r}"
            raise ValueError(msg)
        amount, unit = int(match.group(1)), match.group(2).lower()
        try:
            if unit == "d":
                result += timedelta(days=amount)
            else:
                result = _add_months(result, amount if unit == "m" else 12 * amount)
        except (OverflowError, ValueError) as exc:  # past date.max
            msg = f"expiry {expiry!r} is beyond the year 9999"
            raise ValueError(msg) from exc
    return result


def normalize_issued_date(value: str) -> str:
    """Sunbird's issued-date valuator, reduced to the ``YYYY-MM-DD`` we keep.

    See docs/flows/certificate-generator.md#5-certificate-data (step 3).

    Accepts ``yyyy-MM-dd'T'HH:mm:ss'Z'`` and a ``yyyy-M-d`` prefix (so
    ``2021-05-27T10:11:11.123+0530`` → ``2021-05-27`` and ``2021-5-7`` → ``2021-05-07``).

    Raises:
        ValueError: no date can be read (e.g. ``2019-02``).
    """
    match = _DATE_PREFIX.match(value.strip())
    if not match:
        msg = f"issued date {value!r} does not start with yyyy-MM-dd"
        raise ValueError(msg)
    year, month, day = (int(g) for g in match.groups())
    return date(year, month, day).isoformat()


@dataclass(frozen=True)
class Signatory:
    """One person who signs the certificate (Sunbird ``edata.signatoryList[i]``).

    ``image`` is the URL of a signature image; it may be empty. Remote images are only drawn
    when their host is allowed at render time.
    """

    name: str
    id: str
    designation: str
    image: str


@dataclass(frozen=True)
class CertificateData:
    """Everything printed on, and signed into, one course certificate.

    Attributes:
        cert_id: stable certificate id chosen by the caller; must be a UUID string. It names
            the credential (``urn:uuid:<cert_id>``), the stored files and the verify URL.
        recipient_id: Sunbird user id of the learner.
        recipient_name: the learner's display name (printed as text, never as markup).
        course_id: the course (collection) id.
        course_name: the course name; may be empty.
        batch_id: the course batch id.
        certificate_name: Sunbird ``edata.name``, e.g. ``"Course Completion Certificate"``.
        template_id: id of the certificate template used.
        issued_date: the completion date, ``YYYY-MM-DD``.
        issuer_name: name of the issuing organisation.
        issuer_url: URL of the issuing organisation.
        signatories: up to two are drawn by the sample template; all are signed.
        description: certificate description (Sunbird ``edata.description``).
        expiry: ``""``, an ISO date / ``YYYY-MM-DDTHH:MM:SSZ`` datetime, or Sunbird's relative
            ``<n>d|m|y`` tokens (see :meth:`expiry_at`).
        verify_base_url: the QR code points to ``f"{verify_base_url}/{cert_id}"``.
        status_index: the certificate's bit in the revocation status list (allocated once per
            certificate id, docs/flows/certificate-generator.md#14-revocation-and-status-list);
            None: no ``credentialStatus`` (as certificates issued before it existed).

    Raises:
        ValueError: ``cert_id`` is not a UUID, ``issued_date`` is not a ``YYYY-MM-DD`` date or
            ``expiry`` is not empty and not readable by :meth:`expiry_at`.
    """

    cert_id: str
    recipient_id: str
    recipient_name: str
    course_id: str
    course_name: str
    batch_id: str
    certificate_name: str
    template_id: str
    issued_date: str
    issuer_name: str
    issuer_url: str
    signatories: tuple[Signatory, ...] = ()
    description: str = ""
    expiry: str = ""
    verify_base_url: str = "http://127.0.0.1:8080/certs"
    status_index: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.signatories, tuple):  # a list from JSON is accepted and frozen
            object.__setattr__(self, "signatories", tuple(self.signatories))
        try:
            uuid.UUID(self.cert_id)
        except (ValueError, TypeError, AttributeError):
            msg = f"cert_id must be a UUID string, got {self.cert_id!r}"
            raise ValueError(msg) from None
        if not _ISO_DATE.fullmatch(self.issued_date):
            msg = f"issued_date must be YYYY-MM-DD, got {self.issued_date!r}"
            raise ValueError(msg)
        try:
            date.fromisoformat(self.issued_date)
        except ValueError:
            msg = f"issued_date is not a calendar date: {self.issued_date!r}"
            raise ValueError(msg) from None
        if self.expiry:
            self.expiry_at()  # validates
        if self.status_index is not None and self.status_index < 0:
            msg = f"status_index must be >= 0, got {self.status_index}"
            raise ValueError(msg)

    def expiry_at(self) -> datetime | None:
        """The expiry as an aware UTC datetime, or None when there is none.

        ``expiry`` is either absolute (an ISO date or datetime, e.g. ``2023-05-27`` or
        ``2023-05-27T00:00:00Z``; a bare date means midnight UTC) or, as in Sunbird
        (docs/flows/certificate-generator.md#5-certificate-data, step 4), space-separated
        ``<n>d|m|y`` tokens added to ``issued_date`` (``"2m"``, ``"2D 2y"``; months clamp to the
        month's last day).

        Raises:
            ValueError: ``expiry`` is neither of these.
        """
        if not self.expiry:
            return None
        try:
            parsed = datetime.fromisoformat(self.expiry)
        except ValueError:
            return datetime.combine(
                _add_relative(date.fromisoformat(self.issued_date), self.expiry),
                datetime.min.time(),
                tzinfo=UTC,
            )
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)

    @property
    def verify_url(self) -> str:
        """The public verification URL the QR code encodes."""
        return f"{self.verify_base_url.rstrip('/')}/{self.cert_id}"
