"""Pure rules of collection-cert-pre-processor (``docs/flows/certificate-pre-processor.md``).

An "issue certificate request" (``edata.action = issue-certificate``) names a batch, a course and
the users to consider. For every certificate template of the batch and every user this module
decides whether a "generate certificate" event is due and builds it. It does no I/O: the
templates, enrolment rows, activity aggregates, content types, user profiles, course names,
the clock and the ids are all arguments.

How the flow uses this module
-----------------------------
1. ``parse_request(value)`` → :class:`IssueRequest` or :class:`Skipped`;
   :class:`~lernflow.kernel.errors.InvalidEvent` goes to the failed topic with its reason.
2. Read ``course_batch.cert_templates`` and call :func:`templates`: one entry per map key, in
   sorted key order (Cassandra's map order). A :class:`Rejected` entry is recorded for every
   user (``fatal=True``: park it on the failed topic; ``fatal=False``: not an SVG template,
   counted as skipped).
3. Read what the templates need (:class:`LearnerReads`):

   a. if :func:`needs_enrolment`, the ``user_enrolments`` row (a dict of its columns, or
      ``None``);
   b. if :func:`needs_assessment`, ``user_activity_agg`` (``agg`` then ``aggregates``,
      :func:`merged_aggregates`) and the type of each :func:`assessment_content_ids` (content
      cache via :func:`normalise_content_metadata` and :func:`content_type`);
   c. the user profile (``None`` when not found or blocked);
   d. the raw course name (collection cache, else the published hierarchy, each via
      :func:`stored_course_name`).

4. Per user and :class:`Template`, :func:`decide_template` stops at the first
   :class:`Rejected` of :func:`check_enrolment`, :func:`check_assessment`, :func:`check_user`,
   the course name, then :func:`build_decision`, which applies :func:`course_name`,
   :func:`issued_date` and :func:`generate_event` and turns their
   :class:`~lernflow.kernel.errors.InvalidEvent` into a recorded :class:`Rejected`.

   Use :func:`generate_mid` for the event ``mid`` so that a replay rebuilds the same event.

Fixes over Sunbird
------------------
* **Every user of the request.** Sunbird uses only ``edata.userIds[0]``; here every entry is
  processed (in order, duplicates once).
* **A request without users is rejected, not dropped.** Sunbird silently skips a request
  without ``userIds`` (the manual "whole batch" issue does nothing); here it is an
  :class:`~lernflow.kernel.errors.InvalidEvent` with a reason. Unparseable JSON and wrongly typed
  fields are too (Sunbird turns them into an empty event and skips it).
* **No crash loops.** Where Sunbird throws and restarts the job forever, the outcome here is a
  :class:`Rejected` with ``fatal=True`` and a reason, for that user and template only: an
  invalid template (no url, empty criteria, none of the criteria keys, criteria/issuer/
  signatoryList/additionalProps JSON of the wrong shape, including lms-service's
  signatory-list-in-``issuer`` bug, case Q17), a malformed score threshold (decimal, string, bare
  number, empty object, unknown operator), missing content metadata with
  ``suppress_missing_metadata=False``, an ``additionalProps.enrollment`` name that is not a
  column, a null completion date and a course name with a bad escape. An unknown
  operator, an empty threshold and a non-numeric ``enrollment.status`` (e.g. ``"2"``) are
  "never eligible" in Sunbird; they are fatal here so the misconfiguration is visible.
  Template shape is checked once per template (before any user), not only when an eligible
  user reaches event construction.
* **``user`` vs ``users``.** Validation accepts ``enrollment``, ``assessment``, ``users``
  (as Sunbird) and also ``user``, the key :func:`check_user` evaluates (Sunbird rejects a
  template whose only criteria is ``user``). ``users`` stays accepted but is never evaluated,
  exactly as in Sunbird. A template without ``enrollment`` criteria (e.g. only ``user`` or
  ``users``) still has no completion date, so it ends as a fatal "date" rejection, as Sunbird's
  null-date failure.
* **Non-SVG templates are visible.** Sunbird drops templates whose url lacks ``.svg`` without a
  trace; here they are :class:`Rejected` (``fatal=False``) so ``cert why`` can show them.
* **No division by zero.** A content whose ``max_score`` is 0 is left out of the best score
  (Sunbird computes Infinity/NaN).
* **Configurable zone.** ``issuedDate`` uses ``PreConfig.zone`` (Sunbird: the JVM zone, UTC in
  its images). Naive datetimes (what the Cassandra driver returns) are taken as UTC.
* **Deterministic ``mid``.** :func:`generate_mid` derives it from the request and template
  instead of a random UUID.
"""

from __future__ import annotations

import json
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lernflow.flows.fields import required_id
from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import java_equals_ignore_case, java_trim
from lernflow.kernel.jsondoc import DEFAULT_LIMITS, Limits, check_id, decode

ACTION = "issue-certificate"
ENROLLMENT = "enrollment"
ASSESSMENT = "assessment"
USER = "user"
USERS = "users"
DEFAULT_STATUS = 2
CRITERIA_KEYS = frozenset({ENROLLMENT, ASSESSMENT, USERS, USER})
SCORE_PREFIX = "score:"
MAX_SCORE_PREFIX = "max_score:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "EQ": operator.eq,
    "eq": operator.eq,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
    "ne": operator.ne,
    "!=": operator.ne,
}


# -- configuration and results ---------------------------------------------------------------
@dataclass(frozen=True)
class PreConfig:
    """The job settings the rules depend on."""

    supported_content_types: tuple[str, ...] = ("SelfAssess",)
    suppress_missing_metadata: bool = True  # Sunbird enable.suppress.exception
    cert_domain_url: str = "http://127.0.0.1:8080"  # basePath = cert_domain_url + "/certs"
    cloud_base_path_placeholder: str = "CLOUD_BASE_PATH"
    cloud_base_url: str = ""  # replacement for the placeholder ("" = leave url as is)
    zone: str = "UTC"


@dataclass(frozen=True)
class IssueRequest:
    """A valid issue-certificate request."""

    batch_id: str
    course_id: str
    user_ids: tuple[str, ...]
    re_issue: bool
    mid: str | None


@dataclass(frozen=True)
class Rejected:
    """Why a template yields no certificate for a user.

    ``step`` is one of ``request, template, enrollment, assessment, user, course, date``.
    ``fatal`` is True when the input or the template is malformed (Sunbird would crash the job;
    the caller parks it on the failed topic) and False when the user is simply not eligible.
    """

    step: str
    reason: str
    fatal: bool = False


@dataclass(frozen=True)
class Template:
    """One parsed certificate template of ``course_batch.cert_templates``."""

    identifier: str
    name: str
    url: str
    criteria: dict[str, Any]
    issuer: dict[str, Any]
    signatory_list: list[Any]
    additional_props: dict[str, list[str]]
    notify_template: dict[str, Any] | None
    raw: dict[str, str]


@dataclass(frozen=True)
class EnrolmentOutcome:
    """An eligible enrolment: the re-issued certificate id, completion time, extra props."""

    old_id: str
    issued_on: datetime | None
    props: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """The outcome for one user and template: an event to emit or the rejection."""

    user_id: str
    template_id: str
    event: dict[str, Any] | None
    rejected: Rejected | None


# -- helpers ---------------------------------------------------------------------------------
def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC (the Cassandra driver's convention)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def epoch_millis(moment: datetime) -> int:
    """Milliseconds since the epoch (how Jackson writes a ``java.util.Date``)."""
    return (_as_utc(moment) - _EPOCH) // timedelta(milliseconds=1)


def _jsonable(value: Any) -> Any:
    """A Cassandra column value as JSON data: datetimes become epoch millis."""
    if isinstance(value, datetime):
        return epoch_millis(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


# -- input -----------------------------------------------------------------------------------
def _user_ids(edata: Mapping[str, Any], limits: Limits) -> tuple[str, ...]:
    users = edata.get("userIds")
    if users is None or users == []:
        msg = (
            "edata.userIds is missing or empty: a request must name the users to issue for "
            "(Sunbird silently skipped such requests)"
        )
        raise InvalidEvent(msg)
    if not isinstance(users, list):
        msg = f"edata.userIds must be a list of user ids, got {users!r}"
        raise InvalidEvent(msg)
    out: dict[str, None] = {}  # in order, duplicates once (a set: linear for long lists)
    for i, user in enumerate(users):
        if not isinstance(user, str) or not user.strip():
            msg = f"edata.userIds[{i}] must be a non-empty string, got {user!r}"
            raise InvalidEvent(msg)
        out.setdefault(check_id(user, f"edata.userIds[{i}]", limits))
    return tuple(out)


def parse_request(raw: bytes, *, limits: Limits = DEFAULT_LIMITS) -> IssueRequest | Skipped:
    """Validate one issue-certificate request.

    See docs/flows/certificate-pre-processor.md#3-request-validation.

    Returns :class:`Skipped` for another action; raises :class:`InvalidEvent` for bad JSON,
    wrong types, a missing batch/course id or no users, and for a request over ``limits``
    (size, nesting, a batch, course or user id longer than ``max_id_chars``).
    """
    doc = decode(raw, limits)
    if not isinstance(doc, dict):
        msg = f"the event must be a JSON object, got {type(doc).__name__}"
        raise InvalidEvent(msg)
    edata = doc.get("edata")
    if not isinstance(edata, dict):
        msg = "edata is missing" if edata is None else f"edata must be an object, got {edata!r}"
        raise InvalidEvent(msg)
    action = edata.get("action")
    if action is not None and not isinstance(action, str):
        msg = f"edata.action must be a string, got {action!r}"
        raise InvalidEvent(msg)
    if action is None or action.lower() != ACTION:
        return Skipped("other-action", f"edata.action is {action!r}, not {ACTION!r}")
    batch_id = required_id(edata, "batchId", limits)
    course_id = required_id(edata, "courseId", limits)
    user_ids = _user_ids(edata, limits)
    re_issue = edata.get("reIssue", False)
    if re_issue is None:
        re_issue = False
    if not isinstance(re_issue, bool):
        msg = f"edata.reIssue must be a boolean, got {re_issue!r}"
        raise InvalidEvent(msg)
    mid = doc.get("mid")
    if mid is not None and not isinstance(mid, str):
        msg = f"mid must be a string, got {mid!r}"
        raise InvalidEvent(msg)
    return IssueRequest(batch_id, course_id, user_ids, re_issue, mid)


# -- templates -------------------------------------------------------------------------------
class _BadTemplate(Exception):
    pass


def _json_field(raw: Mapping[str, str], key: str, default: str, kind: type) -> Any:
    text = raw.get(key)
    if text is None:
        text = default
    try:
        value = decode(text, what=key, stored=True, constants=True)
    except InvalidEvent:
        msg = f"{key} is not valid JSON: {text!r}"
        raise _BadTemplate(msg) from None
    if not isinstance(value, kind):
        wanted = "an object" if kind is dict else "a list"
        msg = f"{key} must be {wanted}, got {value!r}"
        raise _BadTemplate(msg)
    return value


def _criteria(raw: Mapping[str, str]) -> dict[str, Any]:
    criteria: dict[str, Any] = _json_field(raw, "criteria", "{}", dict)
    if not criteria:
        msg = "criteria is missing or empty"
        raise _BadTemplate(msg)
    if not CRITERIA_KEYS.intersection(criteria):
        msg = f"criteria has none of enrollment, assessment, user, users: {sorted(criteria)}"
        raise _BadTemplate(msg)
    for section in (ENROLLMENT, ASSESSMENT, USER):
        if section in criteria and not isinstance(criteria[section], dict):
            msg = f"criteria.{section} must be an object, got {criteria[section]!r}"
            raise _BadTemplate(msg)
    return criteria


def _additional_props(raw: Mapping[str, str]) -> dict[str, list[str]]:
    props: dict[str, Any] = _json_field(raw, "additionalProps", "{}", dict)
    for key, names in props.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            msg = f"additionalProps.{key} must be a list of strings, got {names!r}"
            raise _BadTemplate(msg)
    return props


def _notify_template(raw: Mapping[str, str]) -> dict[str, Any] | None:
    """Parsed ``notifyTemplate`` or None (the pre-processor never uses it, so never fatal)."""
    text = raw.get("notifyTemplate")
    if text is None:
        return None
    try:
        value = decode(text, what="notifyTemplate", stored=True, constants=True)
    except InvalidEvent:
        return None
    return value if isinstance(value, dict) else None


def _template(key: str, inner: Any, batch_id: str) -> Template | Rejected:
    prefix = f"Invalid template for batch : {batch_id}" if batch_id else "Invalid template"

    def invalid(what: str) -> Rejected:
        return Rejected("template", f"{prefix} (template {key}: {what})", fatal=True)

    if not isinstance(inner, Mapping):
        return invalid("not a map of strings")
    raw = {str(k): v for k, v in inner.items()}
    bad = sorted(k for k, v in raw.items() if not isinstance(v, str))
    if bad:
        return invalid(f"values of {bad} are not strings")
    url = raw.get("url", "")
    if ".svg" not in url:
        reason = f"template {key}: url {url!r} does not contain '.svg' (not an SVG template)"
        return Rejected("template", reason)
    try:
        criteria = _criteria(raw)
        issuer: dict[str, Any] = _json_field(raw, "issuer", "{}", dict)
        signatories: list[Any] = _json_field(raw, "signatoryList", "[]", list)
        additional = _additional_props(raw)
    except _BadTemplate as exc:
        return invalid(str(exc))
    return Template(
        identifier=raw.get("identifier", ""),
        name=raw.get("name", ""),
        url=url,
        criteria=criteria,
        issuer=issuer,
        signatory_list=signatories,
        additional_props=additional,
        notify_template=_notify_template(raw),
        raw=raw,
    )


def templates(
    cert_templates: Mapping[str, Mapping[str, str]] | None, *, batch_id: str = ""
) -> list[Template | Rejected]:
    """Parse ``course_batch.cert_templates`` (docs/flows/certificate-pre-processor.md#4-templates).

    One entry per map key, in sorted key order (zip with ``sorted(cert_templates)`` to know
    which key an entry belongs to). Urls without ``.svg`` give a non-fatal :class:`Rejected`;
    an invalid template a fatal ``Rejected`` whose reason starts
    ``Invalid template for batch : <batch_id>`` and names what is wrong.
    """
    if not cert_templates:
        return []
    return [_template(key, cert_templates[key], batch_id) for key in sorted(cert_templates)]


def needs_enrolment(template: Template) -> bool:
    """Whether the template has enrolment criteria (else no enrolment row is read)."""
    return bool(template.criteria.get(ENROLLMENT))


def needs_assessment(template: Template) -> bool:
    """Whether the template has assessment criteria (else no aggregates are read)."""
    return bool(template.criteria.get(ASSESSMENT))


# -- enrolment -------------------------------------------------------------------------------
def check_enrolment(
    template: Template, row: Mapping[str, Any] | None, re_issue: bool
) -> EnrolmentOutcome | Rejected:
    """Enrolment criteria (docs/flows/certificate-pre-processor.md#5-enrolment-criteria).

    ``row`` = the ``user_enrolments`` columns, or None.
    """
    criteria = template.criteria.get(ENROLLMENT)
    if not criteria:
        return EnrolmentOutcome("", None, {})
    if row is None:
        return Rejected("enrollment", "no enrolment of this user in the batch")
    props: dict[str, Any] = {}
    for name in template.additional_props.get(ENROLLMENT, []):
        column = name.lower()
        if column not in row:
            reason = f"additionalProps.enrollment names {name!r}, not a user_enrolments column"
            return Rejected("enrollment", reason, fatal=True)
        props[name] = row[column]
    wanted = criteria.get("status", DEFAULT_STATUS)
    if not _is_number(wanted):
        reason = f"criteria.enrollment.status must be a number, got {wanted!r}"
        return Rejected("enrollment", reason, fatal=True)
    active = row.get("active") is True
    status = row.get("status")
    if status is None:
        status = 0
    issued = [c for c in (row.get("issued_certificates") or []) if isinstance(c, Mapping)]
    same = [c for c in issued if java_equals_ignore_case(str(c.get("name") or ""), template.name)]
    if not active:
        return Rejected("enrollment", "enrolment is not active")
    if status != wanted:
        return Rejected("enrollment", f"enrolment status {status} is not {wanted}")
    if same and not re_issue:
        reason = (
            f"certificate {template.name!r} already issued "
            f"({same[0].get('identifier') or ''!s}) and this is not a re-issue"
        )
        return Rejected("enrollment", reason)
    old_id = str(same[0].get("identifier") or "") if same and re_issue else ""
    return EnrolmentOutcome(old_id, row.get("completedon"), props)


# -- assessment ------------------------------------------------------------------------------
def merged_aggregates(
    agg: Mapping[str, float] | None, aggregates: Mapping[str, float] | None
) -> dict[str, float]:
    """``agg`` (ints) then ``aggregates`` (doubles) overriding, as floats."""
    merged = {k: float(v) for k, v in (agg or {}).items()}
    merged.update({k: float(v) for k, v in (aggregates or {}).items()})
    return merged


def assessment_content_ids(aggregates: Mapping[str, float]) -> list[str]:
    """The content ids of the ``score:<id>`` keys, in key order."""
    return [
        key[len(SCORE_PREFIX) :]
        for key in aggregates
        if key.startswith(SCORE_PREFIX) and len(key) > len(SCORE_PREFIX)
    ]


def normalise_content_metadata(json_text: str | bytes | None) -> dict[str, Any]:
    """Content-cache value as Sunbird reads it: keys lower-cased without ``_``, no ``""`` values.

    Nothing, invalid JSON or a non-object gives ``{}`` (treated as "no metadata").
    """
    if not json_text:
        return {}
    try:  # Gson-written: NaN and Infinity are numbers there
        doc = decode(json_text, what="content metadata", stored=True, constants=True)
    except InvalidEvent:
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k).lower().replace("_", ""): v for k, v in doc.items() if v != ""}


def content_type(metadata: Mapping[str, Any]) -> str | None:
    """Content type of normalised metadata; None when there is no metadata at all.

    Metadata without a type gives ``""`` (not supported, but not "missing" either).
    """
    if not metadata:
        return None
    value = metadata.get("contenttype", "")
    return value if isinstance(value, str) else str(value)


def _threshold(criteria: Mapping[str, Any]) -> tuple[str, int] | Rejected:
    score = criteria.get("score")
    if not isinstance(score, dict):
        reason = f"criteria.assessment.score must be an object {{operator: integer}}, got {score!r}"
        return Rejected("assessment", reason, fatal=True)
    if not score:
        reason = "criteria.assessment.score is empty: no operator and threshold"
        return Rejected("assessment", reason, fatal=True)
    op, value = next(iter(score.items()))
    if op not in _OPERATORS:
        reason = f"criteria.assessment.score has unknown operator {op!r} (use one of {', '.join(_OPERATORS)})"
        return Rejected("assessment", reason, fatal=True)
    if not isinstance(value, int) or isinstance(value, bool):
        reason = f"criteria.assessment.score threshold must be an integer, got {value!r}"
        return Rejected("assessment", reason, fatal=True)
    return op, value


def check_assessment(
    template: Template,
    aggregates: Mapping[str, float],
    content_types: Mapping[str, str | None],
    cfg: PreConfig,
) -> dict[str, float] | Rejected:
    """Assessment criteria: the score map when eligible.

    See docs/flows/certificate-pre-processor.md#6-assessment-criteria.

    ``aggregates`` = merged ``agg`` + ``aggregates``; ``content_types`` = content id → type
    (None or absent = no metadata). No assessment criteria → ``{}``.
    """
    criteria = template.criteria.get(ASSESSMENT)
    if not criteria:
        return {}
    threshold = _threshold(criteria)
    if isinstance(threshold, Rejected):
        return threshold
    op, limit = threshold
    scores: dict[str, float] = {}
    for content in assessment_content_ids(aggregates):
        kind = content_types.get(content)
        if kind is None:
            if cfg.suppress_missing_metadata:
                continue
            reason = f"Metadata not available in cache or API {content}"
            return Rejected("assessment", reason, fatal=True)
        if kind not in cfg.supported_content_types:
            continue
        total = float(aggregates.get(MAX_SCORE_PREFIX + content, 1.0))
        if total == 0:
            continue
        scores[content] = float(aggregates[SCORE_PREFIX + content]) * 100 / total
    best = max(scores.values(), default=0.0)
    if not _OPERATORS[op](best, float(limit)):
        return Rejected("assessment", f"best score {best} does not satisfy {op} {limit}")
    return scores


# -- user ------------------------------------------------------------------------------------
def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return bool(left == right)


def check_user(template: Template, profile: Mapping[str, Any] | None) -> Rejected | None:
    """User criteria: every ``criteria.user`` entry equals the profile's value.

    See docs/flows/certificate-pre-processor.md#7-user-criteria.
    """
    if not profile:
        return Rejected("user", "user profile not found (unknown, deleted or blocked user)")
    criteria = template.criteria.get(USER) or {}
    for key, wanted in criteria.items():
        actual = profile.get(key)
        if not _equal(wanted, actual):
            return Rejected("user", f"user {key} is {actual!r}, the template requires {wanted!r}")
    return None


def recipient_name(profile: Mapping[str, Any]) -> str:
    """``trim(firstName + " " + lastName)``; missing, null or "null" parts are empty.

    See docs/flows/certificate-pre-processor.md#9-recipient-name.
    """

    def part(key: str) -> str:
        value = profile.get(key)
        if value is None:
            return ""
        text = value if isinstance(value, str) else str(value)
        return "" if text.lower() == "null" else text

    return java_trim(part("firstName") + " " + part("lastName"))


# -- course name -----------------------------------------------------------------------------
_SIMPLE_ESCAPES = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_OCTAL = "01234567"


def course_name(raw_name: str) -> str:
    """The course name as Sunbird prints it (docs/flows/certificate-pre-processor.md#8-course-name).

    Backslash escapes ``\\b \\t \\n \\f \\r \\" \\' \\\\`` and octal ``\\NNN`` are interpreted (as
    Scala's ``processEscapes``), then every character below U+0020 is removed. Any other
    backslash sequence raises :class:`InvalidEvent`.
    """
    out: list[str] = []
    i, end = 0, len(raw_name)
    while i < end:
        char = raw_name[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= end:
            msg = f"course name {raw_name!r} ends with a lone backslash"
            raise InvalidEvent(msg)
        code = raw_name[i + 1]
        if code in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[code])
            i += 2
            continue
        if code in _OCTAL:
            limit = 3 if code <= "3" else 2
            j = i + 2
            while j < end and j - (i + 1) < limit and raw_name[j] in _OCTAL:
                j += 1
            out.append(chr(int(raw_name[i + 1 : j], 8)))
            i = j
            continue
        msg = (
            f"course name {raw_name!r} has an invalid escape '\\{code}' at index {i} "
            "(only \\b \\t \\n \\f \\r \\\" \\' \\\\ and octal escapes are allowed)"
        )
        raise InvalidEvent(msg)
    return "".join(c for c in out if c >= " ")


def stored_course_name(json_text: str | bytes | None) -> str | None:
    """``name`` of a stored collection: its collection-cache value or its published hierarchy.

    None when there is nothing usable (no JSON object, no name, or an empty one): the flow then
    tries the next source, and with none left the rejection is fatal (a ``course`` step).
    """
    value = normalise_content_metadata(json_text).get("name")
    return value if isinstance(value, str) else None


# -- the generate event ----------------------------------------------------------------------
def issued_date(completed_on: datetime | None, zone: str) -> str:
    """``completedon`` as ``yyyy-MM-dd`` in ``zone``; :class:`InvalidEvent` if it is null."""
    if completed_on is None:
        msg = "the enrolment has no completion date (completedon is null), so no issuedDate"
        raise InvalidEvent(msg)
    local = _as_utc(completed_on).astimezone(ZoneInfo(zone))
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}"


def generate_mid(request: IssueRequest, user_id: str, template_id: str) -> str:
    """``LMS.<uuid>``, the same for the same request, user and template (replay-stable)."""
    key = json.dumps([request.mid or "", request.batch_id, request.course_id, user_id, template_id])
    return f"LMS.{uuid.uuid5(uuid.NAMESPACE_URL, 'lernflow:generate-certificate:' + key)}"


def _svg_template(url: str, cfg: PreConfig) -> str:
    if cfg.cloud_base_url and cfg.cloud_base_path_placeholder:
        return url.replace(cfg.cloud_base_path_placeholder, cfg.cloud_base_url)
    return url


def _locations(profile: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, Any]:
    by_type: dict[str, Any] = {}
    for location in profile.get("userLocations") or []:
        if isinstance(location, Mapping):
            by_type[str(location.get("type") or "")] = location.get("name", "")
    return {t: by_type[t] for t in wanted if by_type.get(t) is not None}


def _related(
    request: IssueRequest,
    template: Template,
    enrolment: EnrolmentOutcome,
    scores: dict[str, float],
    profile: Mapping[str, Any],
    course: str,
) -> dict[str, Any]:
    props = template.additional_props
    related: dict[str, Any] = {
        "batchId": request.batch_id,
        "courseId": request.course_id,
        "type": template.name,
    }
    if props.get("location"):
        locations = _locations(profile, props["location"])
        if locations:
            related["location"] = locations
    if enrolment.props:
        related[ENROLLMENT] = _jsonable(enrolment.props)
    if needs_assessment(template) and "score" in props.get(ASSESSMENT, []):
        related[ASSESSMENT] = {"score": dict(scores)}
    for name in props.get(USER, []):
        if name in profile:
            related[name] = profile[name]
    if props.get("course"):
        related["course"] = {"name": course}
    return related


def generate_event(
    request: IssueRequest,
    user_id: str,
    template: Template,
    enrolment: EnrolmentOutcome,
    scores: dict[str, float],
    profile: Mapping[str, Any],
    course: str,
    cfg: PreConfig,
    *,
    now_ms: int,
    mid: str,
) -> dict[str, Any]:
    """The "generate certificate" event; ``mid`` is used as given.

    See docs/flows/certificate-pre-processor.md#10-the-generate-event.
    ``course`` is the already processed :func:`course_name`. Raises :class:`InvalidEvent` when
    the completion date is null (see :func:`build_decision`).
    """
    edata: dict[str, Any] = {
        "issuedDate": issued_date(enrolment.issued_on, cfg.zone),
        "data": [{"recipientName": recipient_name(profile), "recipientId": user_id}],
        "criteria": {"narrative": template.name},
        "svgTemplate": _svg_template(template.url, cfg),
        "oldId": enrolment.old_id,
        "templateId": template.identifier,
        "userId": user_id,
        "orgId": profile.get("rootOrgId", ""),
        "issuer": template.issuer,
        "signatoryList": template.signatory_list,
        "courseName": course,
        "basePath": cfg.cert_domain_url + "/certs",
        "related": _related(request, template, enrolment, scores, profile, course),
        "name": template.name,
        "tag": request.batch_id,
    }
    return {
        "actor": {"id": "Certificate Generator", "type": "System"},
        "eid": "BE_JOB_REQUEST",
        "edata": edata,
        "ets": now_ms,
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
        "mid": mid,
        "object": {"id": user_id, "type": "GenerateCertificate"},
    }


def build_decision(
    request: IssueRequest,
    user_id: str,
    template: Template,
    enrolment: EnrolmentOutcome,
    scores: dict[str, float],
    profile: Mapping[str, Any],
    raw_course_name: str,
    cfg: PreConfig,
    *,
    now_ms: int,
    mid: str,
) -> Decision:
    """Last step for an eligible user: course name, date and event, or a fatal rejection."""
    try:
        course = course_name(raw_course_name)
    except InvalidEvent as exc:
        return Decision(
            user_id, template.identifier, None, Rejected("course", exc.reason, fatal=True)
        )
    try:
        event = generate_event(
            request,
            user_id,
            template,
            enrolment,
            scores,
            profile,
            course,
            cfg,
            now_ms=now_ms,
            mid=mid,
        )
    except InvalidEvent as exc:
        return Decision(
            user_id, template.identifier, None, Rejected("date", exc.reason, fatal=True)
        )
    return Decision(user_id, template.identifier, event, None)


@dataclass(frozen=True)
class LearnerReads:
    """What was read for one user of a request: the inputs of :func:`decide_template`.

    ``content_types`` maps content id → type (None = no metadata); ``course_name`` is the raw
    stored name (None when no source has one).
    """

    enrolment: Mapping[str, Any] | None
    aggregates: Mapping[str, float]
    content_types: Mapping[str, str | None]
    profile: Mapping[str, Any] | None
    course_name: str | None


def decide_template(
    request: IssueRequest,
    user_id: str,
    template: Template,
    reads: LearnerReads,
    cfg: PreConfig,
    *,
    now_ms: int,
    mid: str,
) -> Decision:
    """One user and template: enrolment → assessment → user → course name → event.

    The first check that says no gives the :class:`Rejected` of the decision.
    """

    def no(rejected: Rejected) -> Decision:
        return Decision(user_id, template.identifier, None, rejected)

    enrolment = check_enrolment(template, reads.enrolment, request.re_issue)
    if isinstance(enrolment, Rejected):
        return no(enrolment)
    scores = check_assessment(template, reads.aggregates, reads.content_types, cfg)
    if isinstance(scores, Rejected):
        return no(scores)
    rejected = check_user(template, reads.profile)
    if rejected is not None:
        return no(rejected)
    assert reads.profile is not None
    if reads.course_name is None:
        reason = (
            f"course {request.course_id} has no name in the collection cache "
            "or a published hierarchy"
        )
        return no(Rejected("course", reason, fatal=True))
    return build_decision(
        request, user_id, template, enrolment, scores, reads.profile, reads.course_name, cfg,
        now_ms=now_ms, mid=mid,
    )  # fmt: skip
