"""Field checks the flows' parsers share (pure; they raise :class:`InvalidEvent` with the path).

Every id that becomes a Cassandra or Redis key is checked against ``LERNFLOW_LIMITS_MAX_ID_CHARS``
here (:func:`required_id`, :func:`bounded_id`), so an event carrying a 70,000-character id is
parked by its parser instead of stopping the flow at the server (Cassandra refuses keys over
65,535 bytes). A parser gets the bounds as a :class:`~lernflow.kernel.jsondoc.Limits` argument;
:func:`with_limits` builds the flow's parser from the run's settings.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lernflow.config import Settings
from lernflow.kernel.errors import InvalidEvent
from lernflow.kernel.jsondoc import DEFAULT_LIMITS, Limits, check_id

V_co = TypeVar("V_co", covariant=True)


def required_id(
    edata: Mapping[str, Any], name: str, limits: Limits = DEFAULT_LIMITS, where: str = "edata"
) -> str:
    """``edata[name]`` as a non-blank string within the id bound, or :class:`InvalidEvent`."""
    value = edata.get(name)
    path = f"{where}.{name}"
    if value is None:
        msg = f"{path} is missing"
        raise InvalidEvent(msg)
    if not isinstance(value, str) or not value.strip():
        msg = f"{path} must be a non-empty string, got {_short(value)}"
        raise InvalidEvent(msg)
    return check_id(value, path, limits)


def bounded_id(value: str, path: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """``value`` if it is within ``limits.max_id_chars`` (and encodable), else InvalidEvent."""
    return check_id(value, path, limits)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text):,} characters)"


def with_limits(parse: Callable[..., V_co]) -> Callable[[Settings], Callable[[bytes], V_co]]:
    """For ``FlowSpec.parse_with_settings``: ``parse`` with the run's ``LERNFLOW_LIMITS_*``."""

    def build(settings: Settings) -> Callable[[bytes], V_co]:
        return functools.partial(parse, limits=Limits.of(settings.limits))

    return build
