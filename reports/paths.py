"""Where report files may go: ids checked before they become path parts, every output path
kept under its root (issue 15, D5).

Sunbird's batch and request ids are letters, digits, ``_``, ``-`` and ``.`` (``0126083288437637121``,
``batch-001``, ``37564CF8F134EE7532F125651B51D17F-2``); anything else — ``/``, ``\\``, ``..``
alone, spaces, control characters — is refused before it reaches a file name
(:func:`check_id`). Independently, :func:`under_root` resolves every path a report writes or
reads (symbolic links and ``..`` included) and refuses one that is not inside the report root.

Beyond Sunbird, which builds the paths from the ids as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

from lernflow.kernel.errors import LernflowError

__all__ = ["UnsafeIdError", "UnsafePathError", "check_id", "is_safe_id", "under_root"]

_ID = re.compile(r"[A-Za-z0-9_.\-]+")
ID_RULE = "letters, digits, '_', '-' and '.' only, not '.' or '..' alone"


class UnsafeIdError(LernflowError, ValueError):
    """An id that cannot be a path part; ``option`` names where it came from (the CLI turns it
    into a usage error, exit 2)."""

    def __init__(self, option: str, value: str) -> None:
        self.message = f"{value!r} is not a valid id ({ID_RULE})"
        super().__init__(f"{option}: {self.message}")
        self.option = option
        self.value = value


class UnsafePathError(LernflowError, ValueError):
    """A report path that resolves outside its root."""


def is_safe_id(value: str) -> bool:
    """True for an id made of Sunbird's id characters that is not ``.`` or ``..``."""
    return _ID.fullmatch(value) is not None and value not in {".", ".."}


def check_id(option: str, value: str) -> str:
    """``value`` if :func:`is_safe_id`, else :class:`UnsafeIdError` naming ``option``."""
    if not is_safe_id(value):
        raise UnsafeIdError(option, value)
    return value


def under_root(root: Path, relative: str | Path) -> Path:
    """``root / relative`` after checking that it resolves inside ``root`` (and is not ``root``
    itself); :class:`UnsafePathError` otherwise. The path returned is not resolved, so it keeps
    the caller's form (relative roots stay relative)."""
    path = root / relative
    base = root.resolve()
    target = path.resolve()
    if target == base or not target.is_relative_to(base):
        msg = f"report path {str(relative)!r} is outside the report root {str(root)!r}"
        raise UnsafePathError(msg)
    return path
