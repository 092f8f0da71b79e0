"""Pure rules of relation-cache-updater (``docs/flows/relation-cache-updater.md``).

From a published collection's hierarchy JSON, compute the Redis writes Sunbird makes:
DB 10 SETs ``<root>:<collection>:leafnodes``, ``<root>:<collection>:optionalnodes``,
``<root>:<content>:ancestors`` and DB 5 STRINGs ``<unitId>`` (the compact JSON of each
``visibility: Parent`` unit with children). No I/O.

Fixes over Sunbird (``docs/fixes-over-sunbird.md``)
----------------------------------------------------
* Wrongly typed event fields and a malformed hierarchy are rejected with a reason
  (:class:`InvalidEvent` → failed topic) instead of crash-looping the job.
* Each key's DEL+SADD is meant to run in one MULTI/EXEC with the rest of the event (readers never
  see a missing key); the flow does that.
* Nodes without an ``identifier`` are skipped instead of producing ``null`` keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lernflow.flows.skipped import Skipped
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.java import java_double_to_string
from lernflow.kernel.jsondoc import DEFAULT_LIMITS, Limits, check_id, decode

COLLECTION_MIME = "application/vnd.ekstep.content-collection"
ACTIONS = ("post-publish-process", "relation-cache-update")


@dataclass(frozen=True)
class PublishEvent:
    """A collection publish this job handles."""

    identifier: str


@dataclass(frozen=True)
class CacheWrites:
    """Everything one event writes: DB 10 sets (DEL then SADD) and DB 5 strings (SET)."""

    sets: dict[str, tuple[str, ...]]
    strings: dict[str, str]


def _field(edata: Mapping[str, Any], name: str) -> str:
    value = edata.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        msg = f"edata.{name} must be a string, got {value!r}"
        raise InvalidEvent(msg)
    return value


def parse_event(value: bytes | str, *, limits: Limits = DEFAULT_LIMITS) -> PublishEvent | Skipped:
    """The filter of docs/flows/relation-cache-updater.md#3-filter.

    Malformed input, and input over ``limits`` (size, nesting, an ``edata.identifier`` longer
    than ``max_id_chars``), raises :class:`InvalidEvent`.
    """
    doc = decode(value, limits)
    if not isinstance(doc, dict):
        msg = f"the event must be a JSON object, got {type(doc).__name__}"
        raise InvalidEvent(msg)
    edata = doc.get("edata") or {}
    if not isinstance(edata, dict):
        msg = f"edata must be an object, got {edata!r}"
        raise InvalidEvent(msg)
    action, mime, ident = (
        _field(edata, "action"),
        _field(edata, "mimeType"),
        _field(edata, "identifier"),
    )
    if action not in ACTIONS:
        return Skipped("other-action", f"edata.action {action!r} is not one of {ACTIONS}")
    if mime.lower() != COLLECTION_MIME:
        return Skipped("not-a-collection", f"edata.mimeType {mime!r} is not a collection")
    if not ident.strip():
        return Skipped("no-identifier", "edata.identifier is blank")
    return PublishEvent(check_id(ident, "edata.identifier", limits))


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def parse_hierarchy(text: str | None) -> dict[str, Any] | None:
    """Parse a stored hierarchy like Jackson does; None when empty (no row, null, blank, ``{}``)."""
    if text is None or not text.strip():
        return None

    def keep(m: re.Match[str]) -> str:
        return m.group(0) if m.group(1) in '"\\/bfnrtu' else m.group(1)

    doc = decode(_ESCAPE.sub(keep, text), what="hierarchy", stored=True)
    if doc is None or doc == {}:
        return None
    if not isinstance(doc, dict):
        msg = f"hierarchy must be a JSON object, got {type(doc).__name__}"
        raise InvalidEvent(msg)
    return doc


def _is_collection(n: Mapping[str, Any]) -> bool:
    mime = n.get("mimeType")
    if mime is None:
        return False
    if not isinstance(mime, str):
        msg = f"node {n.get('identifier')!r}: mimeType must be a string"
        raise InvalidEvent(msg)
    return mime.lower() == COLLECTION_MIME


def _kids(n: Mapping[str, Any]) -> list[dict[str, Any]]:
    kids = n.get("children")
    if not kids:
        return []
    if not isinstance(kids, list) or not all(isinstance(k, dict) for k in kids):
        msg = f"node {n.get('identifier')!r}: children must be an array of objects"
        raise InvalidEvent(msg)
    return kids


def _id(n: Mapping[str, Any]) -> str | None:
    ident = n.get("identifier")
    return ident if isinstance(ident, str) and ident.strip() else None


def _is_optional(n: Mapping[str, Any]) -> bool:
    rm = n.get("relationalMetadata", {})
    if not isinstance(rm, dict):
        msg = f"node {n.get('identifier')!r}: relationalMetadata must be an object"
        raise InvalidEvent(msg)
    value = rm.get("optional", "")
    if value is None:
        msg = f"node {n.get('identifier')!r}: relationalMetadata.optional is null"
        raise InvalidEvent(msg)
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    return text.lower() == "true"


def _compose(n: Mapping[str, Any]) -> list[str]:
    acc: list[str] = []
    for c in _kids(n):
        if _is_collection(c):
            acc += _compose(c)
    acc += [i for c in _kids(n) if not _is_collection(c) and (i := _id(c))]
    return acc


def _own_leaves(n: Mapping[str, Any]) -> list[str]:
    if "leafNodes" in n:
        stored = n["leafNodes"]
        if not isinstance(stored, list):
            msg = f"node {n.get('identifier')!r}: leafNodes must be an array"
            raise InvalidEvent(msg)
        return [str(x) for x in stored]
    return _compose(n)


def leafnodes(ident: str, n: Mapping[str, Any]) -> dict[str, list[str]]:
    """``collectionId → leaf ids``: stored ``leafNodes`` wins, else composition.

    See docs/flows/relation-cache-updater.md#6-leaf-nodes.
    """
    if not _is_collection(n):
        return {}
    out: dict[str, list[str]] = {}
    own = _own_leaves(n)
    if own:
        out[ident] = own
    for c in _kids(n):
        if (cid := _id(c)) is not None:
            out.update(leafnodes(cid, c))
    return {k: v for k, v in out.items() if v}


def _optional_below(n: Mapping[str, Any]) -> list[str]:
    acc: list[str] = []
    for c in _kids(n):
        if not _is_optional(c):
            acc += _optional_below(c)
    acc += [i for c in _kids(n) if _is_optional(c) and (i := _id(c))]
    return acc


def optionalnodes(ident: str, n: Mapping[str, Any]) -> dict[str, list[str]]:
    """``collectionId → optional ids`` (docs/flows/relation-cache-updater.md#7-optional-nodes)."""
    if not _is_collection(n):
        return {}
    out: dict[str, list[str]] = {}
    own = _optional_below(n)
    if own:
        out[ident] = own
    for c in _kids(n):
        if (cid := _id(c)) is not None:
            out.update(optionalnodes(cid, c))
    return {k: v for k, v in out.items() if v}


def ancestors(
    ident: str, n: Mapping[str, Any], parents: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    """``contentId → collections above it``, nearest first, root last, merged.

    See docs/flows/relation-cache-updater.md#8-ancestors.
    """
    if not _is_collection(n):
        return {ident: list(parents)} if parents else {}
    chain = (ident, *parents)
    result: dict[str, list[str]] = {}
    for c in _kids(n):
        if (cid := _id(c)) is None:
            continue
        for key, members in ancestors(cid, c, chain).items():
            merged = result.setdefault(key, [])
            merged += [m for m in members if m not in merged]
    return {k: v for k, v in result.items() if v}


def _java_json(node: Any) -> str:
    """Compact JSON as Jackson writes it (doubles printed the Java way)."""

    def fmt(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return json.dumps(value)
        if isinstance(value, float):
            if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
                return java_double_to_string(value)
            return repr(value)
        if isinstance(value, dict):
            return (
                "{"
                + ",".join(
                    f"{json.dumps(k, ensure_ascii=False)}:{fmt(v)}" for k, v in value.items()
                )
                + "}"
            )
        if isinstance(value, list):
            return "[" + ",".join(fmt(v) for v in value) + "]"
        return json.dumps(value, ensure_ascii=False)

    return fmt(node)


def units(n: Mapping[str, Any]) -> dict[str, str]:
    """``unitId → compact JSON`` of each Parent-visibility unit with children.

    See docs/flows/relation-cache-updater.md#9-unit-cache-db-5.
    """
    if not _is_collection(n) or not _kids(n):
        return {}
    out: dict[str, str] = {}
    visibility = n.get("visibility")
    if isinstance(visibility, str) and visibility.lower() == "parent" and (uid := _id(n)):
        out[uid] = _java_json(n)
    for c in _kids(n):
        out.update(units(c))
    return out


def plan(root: str, hierarchy: Mapping[str, Any]) -> CacheWrites:
    """All writes for one collection, in Sunbird's order: leafnodes, optionalnodes, ancestors, units."""
    sets: dict[str, tuple[str, ...]] = {}
    for suffix, mapping in (
        ("leafnodes", leafnodes(root, hierarchy)),
        ("optionalnodes", optionalnodes(root, hierarchy)),
        ("ancestors", ancestors(root, hierarchy)),
    ):
        for ident, members in mapping.items():
            sets[f"{root}:{ident}:{suffix}"] = tuple(dict.fromkeys(members))
    return CacheWrites(sets, units(hierarchy))
