"""Pure rules of user-cache-updater (``docs/flows/user-cache-updater.md``).

An AUDIT event about a user (``object.type`` = ``User``, ``edata.state`` Create/Created/
Update/Updated) becomes one Redis hash write on ``user:<object.id>``:

* *general info* (every accepted event, any producer) comes from ``context.cdata``:
  ``SignupType`` → ``usersignintype`` (``Self-Signed-In`` / ``Validated``), ``UserRole`` →
  ``userlogintype`` (docs/flows/user-cache-updater.md#4-general-info);
* *registered info* (only when ``context.pdata.pid`` is the user service, ``learner-service``)
  comes from the user-read API response: names, root org, encrypted contacts, framework,
  locations/school and profile user types (docs/flows/user-cache-updater.md#52-field-mapping).
  A blocked account (``CLIENT_ERROR`` + ``UOS_USRRED0006``) contributes nothing but is not an
  error (docs/flows/user-cache-updater.md#51-answers);
* both are merged (general info wins on a clash) and every value is turned into a Redis string:
  strings get ``[``/``]`` escaped as ``\\[``/``\\]``, nulls become ``""``, lists and maps become
  compact HTML-safe Gson JSON (docs/flows/user-cache-updater.md#6-value-encoding);
* for registered events the location/school fields (``state``, ``district``, ``block``,
  ``cluster``, ``schooludisecode``, ``schoolname``) that the new data no longer has are HDEL'd
  when their current value is non-empty, then the map is HSET-merged: every other existing
  field stays (docs/flows/user-cache-updater.md#7-write).

The module only decides (:func:`plan_event` is the flow's planner); :func:`apply` is a pure model
of the Redis result (the rebuild's dry run, the in-memory store of the unit tests). No I/O.

Fixes over Sunbird (``docs/fixes-over-sunbird.md``)
----------------------------------------------------
* A message that is not JSON (or not UTF-8, or not an object), a wrongly typed event field, a
  ``cdata`` element that is not an object or has no string ``type`` (Sunbird: NullPointerException
  → crash loop), and every user-read answer that Sunbird throws on (other error codes, empty or
  non-JSON body, ``params`` null) raise :class:`InvalidEvent` with a reason naming the field or
  the response code, so the event is parked on the failed topic instead of failing the job.
  Sunbird counts an unparseable Kafka record as skipped; we park it with the parse error.
* A profile without ``rootOrg`` (or without ``rootOrg.orgName``) gets ``orgname = ""`` instead of
  a NullPointerException that crash-loops the job.
* Skips are counted once: Sunbird counts an unsupported ``edata.state`` twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import gson_json, java_hashmap_order
from lernflow.kernel.jsondoc import DEFAULT_LIMITS, Limits, check_id, decode

REMOVABLE_FIELDS: tuple[str, ...] = (
    "state",
    "district",
    "block",
    "cluster",
    "schooludisecode",
    "schoolname",
)
BLOCKED_USER_ERROR = "UOS_USRRED0006"
KEY_PREFIX = "user:"

_STATES = ("CREATE", "CREATED", "UPDATE", "UPDATED")
_DELETE_STATES = ("DELETE", "DELETED")
_READ_FAILED = "User Read API does not have details for user: "


@dataclass(frozen=True)
class RulesConfig:
    """The job settings the rules depend on (Sunbird's config keys).

    See docs/flows/user-cache-updater.md#1-inputs.
    """

    regd_pid: str = "learner-service"
    self_signin_types: tuple[str, ...] = ("google", "self")
    validated_types: tuple[str, ...] = ("sso",)
    self_signin_key: str = "Self-Signed-In"
    valid_key: str = "Validated"
    api_error_codes: tuple[str, ...] = ("CLIENT_ERROR",)
    removable_fields: tuple[str, ...] = REMOVABLE_FIELDS
    accept_delete: bool = False  # UC-L8 also accepts Delete/Deleted states


@dataclass(frozen=True)
class AuditUser:
    """An accepted user event."""

    user_id: str
    state: str
    registered: bool
    general: dict[str, str]
    mid: str | None


@dataclass(frozen=True)
class Blocked:
    """The user-read API said the account is blocked (CLIENT_ERROR + UOS_USRRED0006)."""

    user_id: str


@dataclass(frozen=True)
class NotFound:
    """The profile source has no usable profile for the user; ``reason`` says why."""

    user_id: str
    reason: str


@dataclass(frozen=True)
class Profile:
    """Registered-user info, values not yet stringified.

    See docs/flows/user-cache-updater.md#52-field-mapping.
    """

    fields: dict[str, object]


@dataclass(frozen=True)
class Write:
    """What one event does to Redis: HDEL stale removable fields, then HSET ``hset``."""

    key: str
    hset: dict[str, str]
    delete_if_stale: tuple[str, ...]


@dataclass(frozen=True)
class Parked:
    """An event to park on the failed topic; ``write`` is still applied (or None)."""

    reason: str
    error_type: str
    write: Write | None


# --------------------------------------------------------------------------- events


def _invalid(reason: str) -> InvalidEvent:
    return InvalidEvent(reason)


def _optional_object(parent: Mapping[str, Any], name: str, path: str) -> dict[str, Any] | None:
    value = parent.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        msg = f"{path} must be an object, got {value!r}"
        raise _invalid(msg)
    return value


def _optional_str(parent: Mapping[str, Any], name: str, path: str) -> str | None:
    value = parent.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"{path} must be a string, got {value!r}"
        raise _invalid(msg)
    return value


def _accepted_states(cfg: RulesConfig) -> tuple[str, ...]:
    return _STATES + _DELETE_STATES if cfg.accept_delete else _STATES


def parse_event(
    raw: bytes, cfg: RulesConfig = RulesConfig(), *, limits: Limits = DEFAULT_LIMITS
) -> AuditUser | Skipped:
    """Select the AUDIT events this job handles; bad input raises InvalidEvent.

    See docs/flows/user-cache-updater.md#3-event-selection. An event over ``limits`` (size,
    nesting, an ``object.id`` or ``actor.id`` longer than ``max_id_chars``) is invalid too.
    """
    doc = decode(raw, limits)
    if not isinstance(doc, dict):
        msg = f"the event must be a JSON object, got {type(doc).__name__}"
        raise _invalid(msg)

    obj = _optional_object(doc, "object", "object") or {}
    user_id, obj_type = obj.get("id"), obj.get("type")
    if not (isinstance(user_id, str) and user_id and isinstance(obj_type, str) and obj_type):
        return Skipped("not-a-user", "object.id and object.type must be non-empty strings")
    if obj_type.lower() != "user":
        return Skipped("not-a-user", f"object.type is {obj_type!r}, not 'User'")
    check_id(user_id, "object.id", limits)  # the Redis key user:<object.id>
    actor = doc.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("id"), str):
        check_id(actor["id"], "actor.id", limits)

    edata = _optional_object(doc, "edata", "edata") or {}
    state = _optional_str(edata, "state", "edata.state")
    if state is None:
        return Skipped("no-state", f"edata.state is missing for user {user_id}")
    if state.upper() not in _accepted_states(cfg):
        return Skipped("unsupported-state", f"edata.state {state!r} is not handled")

    context = _optional_object(doc, "context", "context") or {}
    pdata = _optional_object(context, "pdata", "context.pdata") or {}
    pid = _optional_str(pdata, "pid", "context.pdata.pid")
    registered = pid == cfg.regd_pid
    general = general_info(context.get("cdata"), cfg)
    mid = doc.get("mid") if isinstance(doc.get("mid"), str) else None  # logging only
    if not registered and not general:
        return Skipped(
            "no-data",
            f"producer {pid!r} is not {cfg.regd_pid!r} and context.cdata has no "
            "SignupType/UserRole",
        )
    return AuditUser(user_id=user_id, state=state, registered=registered, general=general, mid=mid)


def general_info(cdata: object, cfg: RulesConfig = RulesConfig()) -> dict[str, str]:
    """``usersignintype`` / ``userlogintype`` from ``context.cdata`` (last element wins).

    See docs/flows/user-cache-updater.md#4-general-info.
    """
    if cdata is None:
        return {}
    if not isinstance(cdata, list):
        msg = f"context.cdata must be a list, got {cdata!r}"
        raise _invalid(msg)
    signup: dict[str, Any] | None = None
    role: dict[str, Any] | None = None
    for i, element in enumerate(cdata):
        if not isinstance(element, dict):
            msg = f"context.cdata[{i}] must be an object, got {element!r}"
            raise _invalid(msg)
        kind = element.get("type")
        if not isinstance(kind, str):
            msg = f"context.cdata[{i}].type must be a string, got {kind!r}"
            raise _invalid(msg)
        if kind.lower() == "signuptype":
            signup = element
        elif kind.lower() == "userrole":
            role = element
        else:
            continue
        ident = element.get("id")
        if ident is not None and not isinstance(ident, str):
            msg = f"context.cdata[{i}].id must be a string, got {ident!r}"
            raise _invalid(msg)

    info: dict[str, str] = {}
    if signup is not None:
        ident = signup.get("id")
        if ident in cfg.self_signin_types:
            info["usersignintype"] = cfg.self_signin_key
        if ident in cfg.validated_types:
            info["usersignintype"] = cfg.valid_key
    if role is not None:
        ident = role.get("id")
        info["userlogintype"] = ident if isinstance(ident, str) else ""
    return info


# --------------------------------------------------------------------------- user read


def parse_user_read(
    body: bytes, user_id: str, cfg: RulesConfig = RulesConfig()
) -> Profile | Blocked:
    """The user-read API answer → profile, blocked account, or InvalidEvent.

    See docs/flows/user-cache-updater.md#51-answers.
    """
    prefix = _READ_FAILED + user_id
    if not body.strip():
        msg = f"{prefix} (empty response body)"
        raise _invalid(msg)
    try:
        doc = decode(body, what="response", stored=True)
    except InvalidEvent as exc:
        msg = f"{prefix} ({exc.reason})"
        raise _invalid(msg) from None
    if not isinstance(doc, dict):
        msg = f"{prefix} (response is not a JSON object)"
        raise _invalid(msg)

    code = doc.get("responseCode")
    params = doc.get("params")
    err = params.get("err") if isinstance(params, dict) else None
    seen = f"responseCode={code!r}, err={err!r}"
    code_upper = code.upper() if isinstance(code, str) else None

    if code_upper == "OK":
        result = doc.get("result")
        if isinstance(result, dict) and isinstance(result.get("response"), dict):
            try:
                return Profile(profile_fields(result["response"]))
            except InvalidEvent as exc:
                msg = f"{prefix} ({seen}, {exc.reason})"
                raise _invalid(msg) from None
        msg = f"{prefix} ({seen}, result.response missing)"
        raise _invalid(msg)
    if code_upper is not None and code_upper in {c.upper() for c in cfg.api_error_codes}:
        if not isinstance(params, dict):
            msg = f"{prefix} ({seen}, params missing)"
            raise _invalid(msg)
        if isinstance(err, str) and err.upper() == BLOCKED_USER_ERROR.upper():
            return Blocked(user_id)
    msg = f"{prefix} ({seen})"
    raise _invalid(msg)


def _list_or_none(parent: Mapping[str, Any], name: str, path: str) -> list[Any] | None:
    value = parent.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        msg = f"user read: {path} must be a list, got {value!r}"
        raise _invalid(msg)
    return value


def profile_fields(response: Mapping[str, Any]) -> dict[str, object]:
    """The Redis fields (unstringified) of ``result.response``.

    See docs/flows/user-cache-updater.md#52-field-mapping.
    """
    fields: dict[str, object] = {
        "firstname": response.get("firstName"),
        "lastname": response.get("lastName"),
        "language": response.get("language"),
    }
    root_org = response.get("rootOrg")
    if root_org is not None and not isinstance(root_org, dict):
        msg = f"user read: rootOrg must be an object, got {root_org!r}"
        raise _invalid(msg)
    org_name = root_org.get("orgName") if root_org else None
    fields["orgname"] = "" if org_name is None else org_name
    fields["rootorgid"] = response.get("rootOrgId")
    fields["phone"] = response.get("encPhone")
    fields["email"] = response.get("encEmail")
    fields["userid"] = response.get("userId")
    _add_framework(fields, response.get("framework"))
    _add_locations(fields, _list_or_none(response, "userLocations", "userLocations") or [])
    _add_user_types(fields, _list_or_none(response, "profileUserTypes", "profileUserTypes"))
    return fields


def _add_framework(fields: dict[str, object], framework: object) -> None:
    """``board``, ``medium``, ``grade``, ``subject``, ``framework`` (when there is a framework)."""
    if framework is not None and not isinstance(framework, dict):
        msg = f"user read: framework must be an object, got {framework!r}"
        raise _invalid(msg)
    if framework:
        board = _list_or_none(framework, "board", "framework.board") or []
        ids = _list_or_none(framework, "id", "framework.id") or []
        fields["board"] = board[0] if board else ""
        fields["medium"] = _list_or_none(framework, "medium", "framework.medium") or []
        fields["grade"] = _list_or_none(framework, "gradeLevel", "framework.gradeLevel") or []
        fields["subject"] = _list_or_none(framework, "subject", "framework.subject") or []
        fields["framework"] = ids[0] if ids else ""


def _add_locations(fields: dict[str, object], locations: list[Any]) -> None:
    """One field per location type (its name); the school gives ``schoolname`` and its code."""
    for i, loc in enumerate(locations):
        if not isinstance(loc, dict):
            msg = f"user read: userLocations[{i}] must be an object, got {loc!r}"
            raise _invalid(msg)
        loc_type = loc.get("type", "")
        if not isinstance(loc_type, str):
            msg = f"user read: userLocations[{i}].type must be a string, got {loc_type!r}"
            raise _invalid(msg)
        if loc_type.lower() == "school":
            fields["schoolname"] = loc.get("name", "")
            fields["schooludisecode"] = loc.get("code", "")
        else:
            fields[loc_type] = loc.get("name", "")


def _add_user_types(fields: dict[str, object], put: list[Any] | None) -> None:
    """``usertype``, ``usersubtype`` (distinct, in order) and ``profileusertypes`` (Gson JSON)."""
    if not put:
        return
    types: list[str] = []
    sub_types: list[str] = []
    elements: list[dict[str, Any]] = []
    for i, element in enumerate(put):
        if not isinstance(element, dict):
            msg = f"user read: profileUserTypes[{i}] must be an object, got {element!r}"
            raise _invalid(msg)
        for name, seen in (("type", types), ("subType", sub_types)):
            value = element.get(name)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                msg = f"user read: profileUserTypes[{i}].{name} must be a string, got {value!r}"
                raise _invalid(msg)
            if value not in seen:
                seen.append(value)
        elements.append(java_hashmap_order(element))
    fields["usertype"] = ",".join(types)
    fields["usersubtype"] = ",".join(sub_types)
    fields["profileusertypes"] = gson_json(elements)


# --------------------------------------------------------------------------- value codec


def stringify(fields: Mapping[str, object]) -> dict[str, str]:
    """Redis string values (strings bracket-escaped, null → "", others Gson JSON).

    See docs/flows/user-cache-updater.md#6-value-encoding.
    """
    out: dict[str, str] = {}
    for name, value in fields.items():
        if isinstance(value, str):
            out[name] = value.replace("[", "\\[").replace("]", "\\]")
        elif value is None:
            out[name] = ""
        else:
            out[name] = gson_json(value)
    return out


# --------------------------------------------------------------------------- writes


def plan(
    event: AuditUser, info: Profile | Blocked | None, cfg: RulesConfig = RulesConfig()
) -> Write | Skipped:
    """The Redis write of one accepted event (``info`` only for registered ones).

    See docs/flows/user-cache-updater.md#3-event-selection and #7-write.
    """
    regd: dict[str, object] = {}
    if event.registered:
        if info is None:
            msg = f"registered event for {event.user_id} needs the user-read result"
            raise ValueError(msg)
        if isinstance(info, Profile):
            regd = dict(info.fields)
    merged: dict[str, object] = {**regd, **event.general}
    if not merged:
        return Skipped("no-data", f"nothing to write for user {event.user_id}")
    hset = stringify(merged)
    stale = tuple(f for f in cfg.removable_fields if f not in hset) if event.registered else ()
    return Write(key=KEY_PREFIX + event.user_id, hset=hset, delete_if_stale=stale)


def plan_event(
    event: AuditUser,
    found: Profile | Blocked | NotFound | None,
    cfg: RulesConfig = RulesConfig(),
) -> Write | Skipped | Parked:
    """What the flow does with one event, given what the profile source answered for its user.

    An unknown user's event is parked (to be requeued once the profile exists) and, as Sunbird
    does, its sign-in fields are still written (docs/flows/user-cache-updater.md#51-answers).
    """
    if isinstance(found, NotFound):
        write = plan(replace(event, registered=False), None, cfg)
        return Parked(found.reason, "UserNotFound", write if isinstance(write, Write) else None)
    return plan(event, found, cfg)


def stale_fields(existing: Mapping[str, str], write: Write) -> list[str]:
    """The fields of ``write.delete_if_stale`` to HDEL given the current hash.

    See docs/flows/user-cache-updater.md#7-write.
    """
    return [f for f in write.delete_if_stale if existing.get(f, "") != ""]


def apply(existing: Mapping[str, str], write: Write) -> dict[str, str]:
    """The hash after HDEL of the stale fields and the HSET merge (a pure model of Redis)."""
    stale = set(stale_fields(existing, write))
    result = {k: v for k, v in existing.items() if k not in stale}
    result.update(write.hset)
    return result
