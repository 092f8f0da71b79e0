"""Java, Gson and Jackson behaviours that Sunbird's outputs depend on, one implementation each.

Sunbird's jobs run on the JVM, so the exact bytes they write come from Java's ``String`` and
``Double`` methods, ``java.util.HashMap``'s iteration order and the Gson/Jackson writers. The
flows, reports and certificates reproduce them through this module. Pure, standard library only.

Strings are Python ``str`` (code points); where Java counts UTF-16 code units (``length``,
``hashCode``) the function says so.

Two Gson encodings, on purpose:

* :func:`gson_json` writes a Java value tree as it is (integers stay integers): Gson's
  ``toJson`` of maps and lists that Jackson parsed (user-cache-updater's ``profileusertypes``).
* :func:`gson_roundtrip_json` writes a value that went through Gson's own parse first, where
  every number became a ``Double`` (``1`` → ``1.0``): assessment-aggregator's ``params`` and
  ``resvalues`` texts.

Both use Gson's default HTML-safe string escaping (:func:`gson_string`).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Final, TypeVar

__all__ = [
    "gson_json",
    "gson_roundtrip_json",
    "gson_string",
    "jackson_string",
    "java_double_to_string",
    "java_equals_ignore_case",
    "java_hashmap_order",
    "java_length",
    "java_string_hash",
    "java_trim",
]

V = TypeVar("V")

# --------------------------------------------------------------------------- java.lang.String

_TRIM_CHARS: Final = "".join(chr(c) for c in range(0x21))


def java_trim(text: str) -> str:
    """Java ``String.trim``: strip every character up to U+0020 (controls included) from both ends.

    Unlike Python's ``str.strip()`` it keeps Unicode spaces (U+00A0, U+2003 …) and strips
    U+0000-U+001F that Python does not consider whitespace.
    """
    return text.strip(_TRIM_CHARS)


def java_equals_ignore_case(left: str, right: str) -> bool:
    """Java ``String.equalsIgnoreCase``: same length, each pair equal after upper- or lower-casing.

    Characters are compared one by one, as Java does (a pair matches if equal, equal upper-cased
    or equal lower-cased); no Unicode case folding (``"ß"`` never equals ``"SS"``).
    """
    if len(left) != len(right):
        return False
    return all(
        a == b or a.upper() == b.upper() or a.lower() == b.lower()
        for a, b in zip(left, right, strict=True)
    )


def java_length(text: str) -> int:
    """Java ``String.length``: the number of UTF-16 code units (a character beyond U+FFFF is 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@functools.lru_cache(maxsize=4096)
def java_string_hash(text: str) -> int:
    """Java ``String.hashCode``: ``s[0]*31^(n-1) + … + s[n-1]`` over UTF-16 code units, as the
    signed 32-bit ``int`` Java returns (overflow wraps)."""
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - 0x1_0000_0000 if h & 0x8000_0000 else h


# --------------------------------------------------------------------------- java.util.HashMap


def java_hashmap_order(mapping: Mapping[str, V]) -> dict[str, V]:
    """The same entries in the order a default ``java.util.HashMap`` (filled in this order)
    iterates them.

    Bucket = ``(h ^ (h >>> 16)) & (capacity - 1)`` with ``h = key.hashCode()``; capacity starts
    at 16 and doubles while the size exceeds 3/4 of it; keys sharing a bucket keep insertion
    order. (Treeified bins - 8+ keys in one bucket - are not modelled.)
    """
    capacity = 16
    while len(mapping) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: str) -> int:
        h = java_string_hash(key) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    order = sorted(enumerate(mapping), key=lambda item: (bucket(str(item[1])), item[0]))
    return {key: mapping[key] for _, key in order}


# --------------------------------------------------------------------------- java.lang.Double


def java_double_to_string(value: float) -> str:
    """Java ``Double.toString``: ``2.0``, ``1.33``, ``1.0E7``, ``1.0E-4``, ``NaN``, ``-Infinity``.

    Plain notation for magnitudes in [10^-3, 10^7), otherwise ``d.dddE±n``; always at least one
    digit after the point. The digits are the shortest that round-trip (JDK 19+). JDK 11 prints
    a longer form for a few rare values (JDK-4511638); those are not reproduced.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    dec = Decimal(repr(value))
    digits = "".join(str(d) for d in dec.as_tuple().digits).rstrip("0") or "0"
    exponent = dec.adjusted()
    sign = "-" if value < 0 else ""
    if 1e-3 <= abs(value) < 1e7:
        if exponent >= 0:
            whole = digits[: exponent + 1].ljust(exponent + 1, "0")
            fraction = digits[exponent + 1 :] or "0"
        else:
            whole = "0"
            fraction = "0" * (-exponent - 1) + digits
        return f"{sign}{whole}.{fraction}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


# --------------------------------------------------------------------------- Gson

# Gson's default writer (HTML-safe mode) escapes these; U+2028/U+2029 in every mode.
_GSON_HTML_SAFE_ESCAPES: Final = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("=", "\\u003d"),
    ("'", "\\u0027"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
_GSON_TABLE: Final = str.maketrans(
    {
        **{chr(c): f"\\u{c:04x}" for c in range(0x20)},
        '"': '\\"',
        "\\": "\\\\",
        "\t": "\\t",
        "\b": "\\b",
        "\n": "\\n",
        "\r": "\\r",
        "\f": "\\f",
        **dict(_GSON_HTML_SAFE_ESCAPES),
    }
)
# a string Gson writes verbatim between quotes (nothing to escape)
_GSON_PLAIN: Final = re.compile(r"""[^"\\\x00-\x1f<>&='\u2028\u2029]*""")


def gson_string(value: str) -> str:
    """A JSON string literal as Gson's default ``JsonWriter`` writes it (HTML-safe mode).

    Non-ASCII stays raw; ``"``, ``\\`` and ``\\t \\b \\n \\r \\f`` get short escapes, other
    controls ``\\u00xx`` (lower-case hex); ``< > & = '`` and U+2028/U+2029 become ``\\u003c`` ….
    """
    return '"' + value.translate(_GSON_TABLE) + '"'


def gson_json(value: object) -> str:
    """Gson's compact ``toJson`` of a Java value tree (maps, lists, strings, numbers, booleans).

    Numbers keep their type (``3`` → ``3``); map members whose value is null are dropped, nulls
    inside lists stay; strings as :func:`gson_string`. Floats are written as Python's ``repr``
    (Gson writes ``Double.toString``; the two differ outside [10^-4, 10^7), e.g. ``1e-05``).
    """
    if type(value) is list and all(type(v) is str and _GSON_PLAIN.fullmatch(v) for v in value):
        return "[" + ",".join(f'"{v}"' for v in value) + "]"  # the common case, fast
    return _gson_json_general(value)


def _drop_map_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_map_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_map_nulls(v) for v in value]
    return value


def _gson_json_general(value: object) -> str:
    text = json.dumps(_drop_map_nulls(value), separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GSON_HTML_SAFE_ESCAPES:
        text = text.replace(char, escape)
    return text


def gson_roundtrip_json(value: object) -> str:
    """Gson's compact ``toJson`` of a JSON value that went through Gson's own parse first.

    Gson parses every number into a ``Double``, so every number is written by
    :func:`java_double_to_string` (``1`` → ``1.0``). Object members whose value is null are
    dropped, but nulls inside arrays stay. Strings as :func:`gson_string`. Object keys keep
    their input order.

    Raises :class:`OverflowError` for an integer beyond the double range (Gson would parse it
    to ``Infinity`` and then refuse to write it) and :class:`TypeError` for a non-JSON value.
    """
    if value is None or isinstance(value, bool):
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, int | float):
        try:
            return java_double_to_string(float(value))
        except OverflowError:
            msg = f"number {value} is out of the double range"
            raise OverflowError(msg) from None
    if isinstance(value, str):
        return gson_string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(gson_roundtrip_json(v) for v in value) + "]"
    if isinstance(value, dict):
        members = (
            f"{gson_string(str(k))}:{gson_roundtrip_json(v)}"
            for k, v in value.items()
            if v is not None
        )
        return "{" + ",".join(members) + "}"
    msg = f"not a JSON value: {type(value).__name__}"
    raise TypeError(msg)


# --------------------------------------------------------------------------- Jackson

_JACKSON_SHORT_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def jackson_string(text: str) -> str:
    """A JSON string literal as Jackson's default generator writes it.

    Non-ASCII stays raw (no HTML escaping); ``"``, ``\\`` and ``\\b \\t \\n \\f \\r`` get short
    escapes, other controls ``\\u00XX`` with upper-case hex.
    """
    out = ['"']
    for char in text:
        escaped = _JACKSON_SHORT_ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
