"""The one way lernflow decodes JSON it did not write: Kafka events, stored documents, answers.

Every flow's parser and every JSON helper of the rules goes through :func:`decode`, so they all
refuse the same things with the same short reasons (an
:class:`~lernflow.kernel.errors.InvalidEvent`, which parks the event on the failed topic):

* more than ``max_event_bytes`` bytes — ``event is 2,000,000 bytes, over the 1,048,576-byte
  limit (LERNFLOW_LIMITS_MAX_EVENT_BYTES)`` (events only; stored documents are not sized);
* bytes that are not UTF-8 (Sunbird's Kafka deserialiser reads UTF-8; Python's ``json`` would
  also guess UTF-16 and UTF-32) — ``event is not valid JSON: not UTF-8 (…)``;
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers beyond the double range (Python reads
  ``1e999`` as infinity) — ``event is not valid JSON: NaN is not a JSON number``. Readers of
  Gson-written caches may allow the constants (``constants=True``);
* nesting deeper than ``max_depth`` — ``event is nested too deeply (over 64 levels,
  LERNFLOW_LIMITS_MAX_DEPTH)``, never a ``RecursionError`` traceback.

The depth check runs before parsing, in byte operations (:func:`_too_deep`): a document with
no more ``[`` and ``{`` than the limit cannot be deeper, so most events cost one ``translate``;
others a few ``replace`` passes. docs/benchmarks.md has the numbers.

:class:`Limits` carries the bounds (``config.settings.LimitSettings``, env ``LERNFLOW_LIMITS_*``);
parsers take it as an argument and default to :data:`DEFAULT_LIMITS`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from lernflow.config.settings import LimitSettings, env_var_for
from lernflow.kernel.errors import InvalidEvent

__all__ = [
    "DEFAULT_LIMITS",
    "STORED_DEPTH",
    "Limits",
    "check_id",
    "check_size",
    "decode",
]

MAX_EVENT_BYTES_VAR: Final = env_var_for(LimitSettings, "max_event_bytes")
MAX_DEPTH_VAR: Final = env_var_for(LimitSettings, "max_depth")
MAX_ID_CHARS_VAR: Final = env_var_for(LimitSettings, "max_id_chars")

STORED_DEPTH: Final = 400
"""Depth bound of stored documents (published hierarchies: two levels per unit level), below
the interpreter's recursion limit that the flows' recursive walks of them share."""


@dataclass(frozen=True)
class Limits:
    """The bounds a parser applies (``LERNFLOW_LIMITS_*``; the defaults are the settings')."""

    max_event_bytes: int = 1_048_576
    max_depth: int = 64
    max_id_chars: int = 256

    @classmethod
    def of(cls, settings: LimitSettings) -> Limits:
        """The limits of validated settings."""
        return cls(settings.max_event_bytes, settings.max_depth, settings.max_id_chars)


DEFAULT_LIMITS: Final = Limits()


class _NotFinite(ValueError):
    """A number JSON cannot carry; turned into the reason by :func:`decode`."""


def _reject_constant(name: str) -> NoReturn:
    msg = f"{name} is not a JSON number"
    raise _NotFinite(msg)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        msg = f"number {text} is out of the double range"
        raise _NotFinite(msg)
    return value


def _allow_constant(name: str) -> float:
    return float(name)


_STRICT: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_WITH_CONSTANTS: Final = json.JSONDecoder(parse_constant=_allow_constant)

_ESCAPE: Final = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes
_KEEP: Final = b'[]{}"'
_DROP: Final = bytes(c for c in range(256) if c not in _KEEP)
_OPEN_CLOSE: Final = bytes.maketrans(b"[{]}", b"(())")


def check_size(data: bytes | bytearray | str, limits: Limits, what: str = "event") -> None:
    """:class:`InvalidEvent` when ``data`` is over ``limits.max_event_bytes`` (UTF-8 bytes)."""
    limit = limits.max_event_bytes
    if isinstance(data, str):
        if len(data) * 4 <= limit:  # at most 4 bytes per character: no need to encode
            return
        size = len(data.encode("utf-8", "surrogatepass"))
    else:
        size = len(data)
    if size > limit:
        msg = f"{what} is {size:,} bytes, over the {limit:,}-byte limit ({MAX_EVENT_BYTES_VAR})"
        raise InvalidEvent(msg)


def _too_deep(data: bytes | bytearray | str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (invalid JSON aside).

    All in C-speed byte operations: escapes dropped; every byte but brackets and quotes
    dropped; the strings' quotes removed (pairs of adjacent quotes — only if that leaves no
    quote are all strings bracket-free, else strings are cut out by splitting on quotes); then
    each pass removes every innermost ``()`` pair, so ``limit`` passes leave a pair only in a
    document nested deeper than ``limit``.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    marks = raw.translate(_OPEN_CLOSE, _DROP)
    if marks.count(b"(") <= limit:  # no more brackets than the limit: not deeper (most events)
        return False
    if b"\\" in raw:
        marks = _ESCAPE.sub(b"", raw).translate(_OPEN_CLOSE, _DROP)
    unquoted = marks.replace(b'""', b"")
    if b'"' in unquoted:  # some string holds a bracket
        unquoted = b"".join(marks.split(b'"')[::2])
    if b"(" * (limit + 1) in unquoted:
        return True
    for _ in range(limit):
        fewer = unquoted.replace(b"()", b"")
        if len(fewer) == len(unquoted):
            return False
        unquoted = fewer
    return b"()" in unquoted


def decode(
    data: bytes | bytearray | str,
    limits: Limits = DEFAULT_LIMITS,
    *,
    what: str = "event",
    stored: bool = False,
    constants: bool = False,
) -> Any:
    """Decode one JSON document, or raise :class:`InvalidEvent` with a short reason.

    Args:
        data: UTF-8 bytes or text.
        limits: the bounds (``max_event_bytes``, ``max_depth``).
        what: the subject of the reason (``event``, ``message``, ``hierarchy``, …).
        stored: a document read from a store or a server answer, not an event: not sized, and
            nested up to :data:`STORED_DEPTH`.
        constants: read ``NaN``/``Infinity``/``-Infinity`` (and ``1e999``) as floats, as Gson's
            lenient reader does (for caches Sunbird's jobs wrote); else refuse them.
    """
    if not stored:
        check_size(data, limits, what)
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = f"{what} is not valid JSON: not UTF-8 ({exc})"
            raise InvalidEvent(msg) from None
    depth = STORED_DEPTH if stored else limits.max_depth
    if _too_deep(data, depth):
        _deep(what, depth, stored)
    try:
        return (_WITH_CONSTANTS if constants else _STRICT).decode(text)
    except ValueError as exc:  # JSONDecodeError, or a number JSON cannot carry
        msg = f"{what} is not valid JSON: {exc}"
        raise InvalidEvent(msg) from None
    except RecursionError:  # the bracket scan makes this unreachable; kept as a safety net
        _deep(what, depth, stored)


def _deep(what: str, depth: int, stored: bool) -> NoReturn:
    setting = "" if stored else f", {MAX_DEPTH_VAR}"
    msg = f"{what} is nested too deeply (over {depth} levels{setting})"
    raise InvalidEvent(msg)


def check_id(value: str, path: str, limits: Limits) -> str:
    """``value`` if it can be a Cassandra/Redis key: at most ``max_id_chars``, valid UTF-8.

    Raises :class:`InvalidEvent` naming ``path``, the length and the setting; a lone surrogate
    (``"\\ud800"`` in the JSON) cannot be encoded for either server.
    """
    if len(value) > limits.max_id_chars:
        msg = (
            f"{path} is {len(value):,} characters, over the {limits.max_id_chars:,}-character "
            f"limit ({MAX_ID_CHARS_VAR})"
        )
        raise InvalidEvent(msg)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            msg = f"{path} contains an unpaired surrogate"
            raise InvalidEvent(msg) from None
    return value
