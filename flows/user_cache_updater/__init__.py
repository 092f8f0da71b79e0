"""user-cache-updater: the Redis user cache (DB 12, ``user:<id>``) from AUDIT events.

Run with ``python -m bytewax.run "flows.user_cache_updater:build_flow()"``.
"""

from __future__ import annotations

from typing import Any

from flows.user_cache_updater.flow import build_flow as _build


def build_flow(settings: Any = None, options: Any = None) -> Any:
    """Build the dataflow (see :mod:`flows.user_cache_updater.flow`)."""

    return _build(settings, options)
