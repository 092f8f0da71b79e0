"""relation-cache-updater: course leaf nodes, optional nodes and ancestors in Redis.

Run with ``python -m bytewax.run "flows.relation_cache_updater:build_flow()"``.
"""

from __future__ import annotations

from typing import Any

from flows.relation_cache_updater.flow import build_flow as _build


def build_flow(settings: Any = None, options: Any = None) -> Any:
    """Build the dataflow (see :mod:`flows.relation_cache_updater.flow`)."""

    return _build(settings, options)
