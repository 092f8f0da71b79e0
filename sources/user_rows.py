"""Pure mapping from Sunbird's user tables to the user-read API's ``result.response`` shape.

The Cassandra user source reads the rows Sunbird's user service and bulk indexer read
(``sunbird.user``, ``user_organisation``, ``organisation``, ``location``,
``user_declarations``, ``system_settings``) and turns them into the same dictionary the
user-read API answers with, so one field mapping (``rules.profile_fields``) serves both sources
and both write the same hash fields.

What comes from where:

* ``firstName``, ``lastName``, ``language``, ``rootOrgId``, ``userId``, ``framework`` — the
  user row; ``encEmail`` / ``encPhone`` — the ``email`` / ``phone`` columns (stored encrypted).
* ``rootOrg.orgName`` — the organisation row of ``rootorgid``.
* ``userLocations`` — the location rows of the user's ``profilelocation`` ids (the current
  column), else of ``locationids`` (older rows), else of the school organisation's
  ``locationids``; in that order of preference, each location's own ``type`` and ``name``.
* the school (``type: school``, ``name``, ``code``) — a ``profilelocation`` entry of type
  school (an organisation id), else the user's teacher declaration made to a root org
  (``declared-school-name`` / ``declared-school-udise-code``), else the first organisation the
  user belongs to that is not a root org (``orgname`` / ``externalid``).
* ``profileUserTypes`` — the ``profileusertypes`` JSON column, else ``usertype`` /
  ``usersubtype``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.jsondoc import decode

Row = Mapping[str, Any]


@dataclass(frozen=True)
class UserRows:
    """Everything read for one user."""

    user: Row
    organisation_ids: tuple[str, ...] = ()  # from user_organisation, isdeleted rows excluded
    declarations: tuple[Row, ...] = ()  # user_declarations rows (orgid, persona, userinfo)
    refs: tuple[tuple[str, str], ...] = field(init=False)  # parsed profilelocation (id, type)

    def __post_init__(self) -> None:
        refs = tuple((r["id"], r["type"]) for r in profile_location_refs(self.user))
        object.__setattr__(self, "refs", refs)


@dataclass(frozen=True)
class Lookups:
    """Shared rows the mapping needs, keyed by id (absent ids are simply missing)."""

    organisations: Mapping[str, Row] = field(default_factory=dict)
    locations: Mapping[str, Row] = field(default_factory=dict)


def _stored_json(text: object, column: str) -> Any:
    """A JSON text column as data; unreadable text (not a string, not JSON, too deep) is None."""
    if not isinstance(text, str | bytes):
        return None
    try:
        return decode(text, what=column, stored=True)
    except InvalidEvent:
        return None


def profile_location_refs(user: Row) -> list[dict[str, str]]:
    """The ``[{id, type}]`` entries of ``profilelocation`` (unparseable text counts as none)."""
    text = user.get("profilelocation")
    if not text:
        return []
    value = _stored_json(text, "profilelocation")
    if not isinstance(value, list):
        return []
    return [
        {"id": str(v["id"]), "type": str(v.get("type") or "")}
        for v in value
        if isinstance(v, dict) and v.get("id")
    ]


def needs(rows: UserRows, custodian_org: str | None) -> tuple[bool, bool]:
    """Which extra rows the school of ``user`` may come from: (declarations, memberships).

    A school in ``profilelocation`` needs neither; otherwise a user of the custodian org
    declares a school (``user_declarations``), any other user is a member of one
    (``user_organisation``) — the split Sunbird's Cassandra-era job made.
    """
    if any(t.lower() == "school" for _i, t in rows.refs):
        return False, False
    custodian = bool(custodian_org) and rows.user.get("rootorgid") == custodian_org
    return custodian, not custodian


def needed_ids(rows: UserRows) -> tuple[set[str], set[str]]:
    """Organisation ids and location ids the mapping of ``rows`` will look up."""
    user = rows.user
    orgs = set(rows.organisation_ids)
    if user.get("rootorgid"):
        orgs.add(str(user["rootorgid"]))
    orgs.update(str(d.get("orgid")) for d in rows.declarations if d.get("orgid"))
    locations: set[str] = set()
    for ref_id, ref_type in rows.refs:
        (orgs if ref_type.lower() == "school" else locations).add(ref_id)
    locations.update(str(i) for i in user.get("locationids") or ())
    return orgs, locations


def school_org_location_ids(rows: UserRows, lookups: Lookups) -> list[str]:
    """Location ids of the user's school organisation (used when the user row has none)."""
    org = _member_school(rows, lookups)
    return [str(i) for i in (org or {}).get("locationids") or ()]


def _member_school(rows: UserRows, lookups: Lookups) -> Row | None:
    for org_id in rows.organisation_ids:
        org = lookups.organisations.get(org_id)
        if org is not None and not org.get("isrootorg"):
            return org
    return None


def _declared_school(rows: UserRows, lookups: Lookups) -> dict[str, str] | None:
    for decl in rows.declarations:
        if str(decl.get("persona") or "").lower() != "teacher":
            continue
        org = lookups.organisations.get(str(decl.get("orgid") or ""))
        if org is None or not org.get("isrootorg"):
            continue
        info = decl.get("userinfo") or {}
        if not info:
            return None
        return {
            "type": "school",
            "name": str(info.get("declared-school-name") or ""),
            "code": str(info.get("declared-school-udise-code") or ""),
        }
    return None


def _school(rows: UserRows, lookups: Lookups) -> dict[str, str] | None:
    for ref_id, ref_type in rows.refs:
        if ref_type.lower() == "school":
            org = lookups.organisations.get(ref_id)
            if org is not None:
                return {
                    "type": "school",
                    "name": str(org.get("orgname") or ""),
                    "code": str(org.get("externalid") or ""),
                }
    declared = _declared_school(rows, lookups)
    if declared is not None:
        return declared
    member = _member_school(rows, lookups)
    if member is not None:
        return {
            "type": "school",
            "name": str(member.get("orgname") or ""),
            "code": str(member.get("externalid") or ""),
        }
    return None


def _location_ids(rows: UserRows, lookups: Lookups) -> list[str]:
    refs = [ref_id for ref_id, ref_type in rows.refs if ref_type.lower() != "school"]
    if refs:
        return refs
    ids = [str(i) for i in rows.user.get("locationids") or ()]
    return ids or school_org_location_ids(rows, lookups)


def _user_types(user: Row) -> list[dict[str, Any]] | None:
    text = user.get("profileusertypes")
    if text:
        value = _stored_json(text, "profileusertypes")
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
    if user.get("usertype"):
        return [{"type": user["usertype"], "subType": user.get("usersubtype")}]
    return None


def _framework(value: Any) -> dict[str, list[str]]:
    if not value:
        return {}
    return {str(k): list(v or ()) for k, v in dict(value).items()}


def response_from_rows(rows: UserRows, lookups: Lookups) -> dict[str, Any]:
    """The user-read API's ``result.response`` for this user, built from the table rows."""
    user = rows.user
    root_id = user.get("rootorgid")
    root = lookups.organisations.get(str(root_id)) if root_id else None
    locations: list[dict[str, str]] = []
    for loc_id in _location_ids(rows, lookups):
        loc = lookups.locations.get(loc_id)
        if loc is not None:
            locations.append(
                {
                    "id": loc_id,
                    "type": str(loc.get("type") or ""),
                    "name": str(loc.get("name") or ""),
                    "code": str(loc.get("code") or ""),
                }
            )
    school = _school(rows, lookups)
    if school is not None:
        locations.append(school)
    language: Sequence[str] | None = user.get("language")
    return {
        "userId": user.get("userid") or user.get("id"),
        "firstName": user.get("firstname"),
        "lastName": user.get("lastname"),
        "language": list(language) if language is not None else None,
        "rootOrgId": root_id,
        "rootOrg": {"orgName": root.get("orgname")} if root is not None else None,
        "encEmail": user.get("email"),
        "encPhone": user.get("phone"),
        "framework": _framework(user.get("framework")),
        "userLocations": locations,
        "profileUserTypes": _user_types(user),
    }
