"""Field checks the flows' parsers share (pure; they raise :class:`InvalidEvent` with the path)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lernflow.kernel.errors import InvalidEvent


def required_id(edata: Mapping[str, Any], name: str) -> str:
    """``edata[name]`` as a non-blank string, or :class:`InvalidEvent` naming the field."""
    value = edata.get(name)
    if value is None:
        msg = f"edata.{name} is missing"
        raise InvalidEvent(msg)
    if not isinstance(value, str) or not value.strip():
        msg = f"edata.{name} must be a non-empty string, got {value!r}"
        raise InvalidEvent(msg)
    return value
