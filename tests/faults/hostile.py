"""Hostile events made from a flow's good event, drawn by Hypothesis with a fixed seed.

Each is the good event with one thing broken: a value of the wrong type, a huge value (up to
~800 KB, or 400,000 quote characters that double when JSON-escaped into a failed-topic
envelope), nesting far deeper than allowed, an id of 65,536-100,000 characters, bytes that are
not UTF-8 or a lone surrogate, ``NaN``/``Infinity``/``1e999``; or the whole message is empty, a
tombstone, another JSON type, cut short or random bytes. A fixed set covers every kind on every
id field; Hypothesis adds ``EXAMPLES`` more (``derandomize``: the same events every run).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

Path = tuple[str | int, ...]
EXAMPLES = 24
_MARK = "__lernflow_hostile__"
_MAX_BYTES = 900_000  # below the broker's 1 MB message limit


@dataclass(frozen=True)
class Hostile:
    """One hostile message: what is wrong with it, and whether a flow must refuse it.

    ``must_refuse``: parked or skipped, never applied (a value of the wrong type in a field
    the flow does not read may be accepted).
    """

    kind: str
    what: str
    value: bytes | None
    must_refuse: bool = True


# ---- the id fields of each flow's event (what becomes a Cassandra or Redis key) --------------

ID_PATHS: dict[str, list[Path]] = {
    "activity-aggregate-updater": [("edata", "userId"), ("edata", "courseId"),
                                   ("edata", "batchId"), ("edata", "contents", 0, "contentId")],
    "assessment-aggregator": [("userId",), ("courseId",), ("batchId",), ("contentId",),
                              ("attemptId",)],
    "relation-cache-updater": [("edata", "identifier")],
    "user-cache-updater": [("object", "id"), ("actor", "id")],
    "certificate-pre-processor": [("edata", "userIds", 0), ("edata", "batchId"),
                                  ("edata", "courseId")],
    "certificate-generator": [("edata", "userId"), ("edata", "data", 0, "recipientId"),
                              ("edata", "related", "courseId"), ("edata", "related", "batchId")],
}  # fmt: skip

# templates that must never be read: a device (D3), a secret, a process's environment
GENERATOR_TEMPLATES = ["/dev/zero", "/etc/shadow", "file:///proc/self/environ"]


def leaves(doc: Any, path: Path = ()) -> list[Path]:
    """Every path of ``doc`` (objects and lists, at any depth)."""
    out: list[Path] = [path] if path else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += leaves(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += leaves(v, (*path, i))
    return out


def _get(doc: Any, path: Path) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _with(doc: Any, path: Path, value: Any) -> Any:
    """A deep copy of ``doc`` with ``value`` at ``path``."""
    out = json.loads(json.dumps(doc))
    target = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


def spliced(doc: Any, path: Path, raw: bytes) -> bytes:
    """``doc`` as JSON with the raw bytes ``raw`` as the value at ``path``."""
    text = json.dumps(_with(doc, path, _MARK), ensure_ascii=False).encode()
    return text.replace(json.dumps(_MARK).encode(), raw, 1)


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


# ---- the kinds ------------------------------------------------------------------------------


def huge_id(doc: Any, path: Path, chars: int = 70_000, char: str = "x") -> Hostile:
    return Hostile("huge id", f"{_dotted(path)} = {chars:,} x {char!r}",
                   json.dumps(_with(doc, path, char * chars), ensure_ascii=False).encode())  # fmt: skip


def deep(doc: Any, path: Path, depth: int) -> Hostile:
    raw = b"[" * depth + b"]" * depth
    return Hostile(
        "deep nesting", f"{_dotted(path)} nested {depth:,} deep", spliced(doc, path, raw)
    )


def huge_value(doc: Any, path: Path, chars: int, char: str, ids: Sequence[Path] = ()) -> Hostile:
    """A huge string at ``path``: refused in an id; elsewhere a flow may ignore the field."""
    raw = json.dumps(char * chars).encode()
    return Hostile("huge value", f"{_dotted(path)} = {chars:,} x {char!r}",
                   spliced(doc, path, raw), must_refuse=path in ids)  # fmt: skip


def not_utf8(doc: Any, path: Path, raw: bytes, ids: Sequence[Path] = ()) -> Hostile:
    """Bytes that are not UTF-8 (the message is refused), or an escaped lone surrogate: valid
    JSON text but not a Unicode string (refused in an id, which becomes a key)."""
    escaped = raw.startswith(b'"\\u')
    return Hostile("invalid UTF-8", f"{_dotted(path)} = {raw!r}", spliced(doc, path, raw),
                   must_refuse=not escaped or path in ids)  # fmt: skip


def not_a_number(doc: Any, path: Path, raw: bytes) -> Hostile:
    return Hostile("NaN/Infinity", f"{_dotted(path)} = {raw.decode()}", spliced(doc, path, raw))


def whole(kind: str, value: bytes | None) -> Hostile:
    shown = "tombstone (no value)" if value is None else repr(value[:40])
    return Hostile(kind, shown, value)


_OTHER_TYPES = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(), st.none(), st.text(max_size=12), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)  # fmt: skip


@st.composite
def _hostile(draw: st.DrawFn, doc: Any, ids: Sequence[Path]) -> Hostile:
    paths = leaves(doc)
    kind = draw(st.sampled_from(["wrong type", "huge value", "deep nesting", "huge id",
                                 "invalid UTF-8", "NaN/Infinity", "whole message"]))  # fmt: skip
    if kind == "wrong type":
        path = draw(st.sampled_from(paths))
        old = _get(doc, path)
        new = draw(_OTHER_TYPES.filter(lambda v: _json_type(v) != _json_type(old)))
        value = json.dumps(_with(doc, path, new)).encode()
        return Hostile(kind, f"{_dotted(path)} = {new!r}"[:80], value, must_refuse=path in ids)
    if kind == "huge value":
        char = draw(st.sampled_from(['"', "x", "é"]))
        limit = {'"': _MAX_BYTES // 2, "x": _MAX_BYTES, "é": _MAX_BYTES // 2}[char] - 10_000
        path = draw(st.sampled_from(paths))
        return huge_value(doc, path, draw(st.integers(100_000, limit)), char, ids)
    if kind == "deep nesting":
        return deep(doc, draw(st.sampled_from(paths)), draw(st.integers(65, 50_000)))
    if kind == "huge id":
        char = draw(st.sampled_from(["x", "é", "中"]))
        chars = draw(st.sampled_from([65_536, 70_000, 100_000]))
        return huge_id(doc, draw(st.sampled_from(list(ids))), chars, char)
    if kind == "invalid UTF-8":
        raw = draw(st.sampled_from([b'"ab\xff\xfe"', b'"\xc3"', b'"\xed\xa0\x80"', b'"\\ud800"']))
        return not_utf8(doc, draw(st.sampled_from(paths)), raw, ids)
    if kind == "NaN/Infinity":
        raw = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"]))
        return not_a_number(doc, draw(st.sampled_from(paths)), raw)
    text = json.dumps(doc).encode()
    return whole("whole message", draw(st.one_of(
        st.sampled_from([None, b"", b" ", b"null", b"{}", b"[]", b'"text"', b"0", b"true",
                         b"[" + text + b"]"]),
        st.integers(1, len(text) - 1).map(lambda n: text[:n]),
        st.binary(min_size=1, max_size=64),
    )))  # fmt: skip


def drawn(doc: Any, ids: Sequence[Path], n: int = EXAMPLES) -> list[Hostile]:
    """``n`` hostile events from Hypothesis, the same ones every run."""
    out: list[Hostile] = []

    @hsettings(max_examples=n, database=None, derandomize=True, phases=[Phase.generate],
               deadline=None, suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(_hostile(doc, ids))
    def collect(example: Hostile) -> None:
        out.append(example)

    collect()
    return out


def fixed(flow: str, doc: Any) -> list[Hostile]:
    """Every kind at least once: a 70,000-character value in every id field, and the rest."""
    ids = ID_PATHS[flow]
    first = ids[0]
    out = [huge_id(doc, p) for p in ids]
    out += [
        not_a_number(doc, first, b"NaN"),
        deep(doc, first, 10_000),
        huge_value(doc, first, 440_000, '"', ids),  # 880 KB escaped, ~1.8 MB in an envelope
        not_utf8(doc, first, b'"ab\xff\xfe"'),
        whole("tombstone", None),
        whole("empty", b""),
        whole("not JSON", json.dumps(doc).encode()[:-7]),
    ]
    if flow == "certificate-generator":
        out += [Hostile("template", f"svgTemplate = {t}", json.dumps(
            _with(doc, ("edata", "svgTemplate"), t)).encode()) for t in GENERATOR_TEMPLATES]  # fmt: skip
    return out


def hostile_events(flow: str, good_event: bytes) -> list[Hostile]:
    """The fixed set and the drawn ones for ``flow``, made from one of its good events."""
    doc = json.loads(good_event)
    return fixed(flow, doc) + drawn(doc, ID_PATHS[flow])


@dataclass(frozen=True)
class Mixed:
    """Good and hostile messages in one input order (``bad[i]`` is None for a good one)."""

    messages: list[tuple[bytes | None, bytes | None]]
    bad: list[Hostile | None]


def mixed(good: Sequence[tuple[bytes, bytes]], bad: Sequence[Hostile], seed: int = 15) -> Mixed:
    """The hostile messages spread among the good ones at fixed random places, each with the key
    of the good message before it (so it shares that entity's partition and worker)."""
    rng = random.Random(seed)
    places = sorted(rng.randrange(1, len(good)) for _ in bad)
    messages: list[tuple[bytes | None, bytes | None]] = []
    marks: list[Hostile | None] = []
    queue = list(zip(places, bad, strict=True))
    for i, (key, value) in enumerate(good):
        while queue and queue[0][0] == i:
            _place, h = queue.pop(0)
            messages.append((messages[-1][0], h.value))
            marks.append(h)
        messages.append((key, value))
        marks.append(None)
    return Mixed(messages, marks)
