"""certificate-generator (see :mod:`flows.certificate_generator.flow`).

Run with ``python -m bytewax.run "flows.certificate_generator:build_flow()"``.
"""

from __future__ import annotations

from typing import Any

from flows.certificate_generator.flow import build_flow as _build


def build_flow(settings: Any = None, options: Any = None) -> Any:
    """Build the dataflow (see :mod:`flows.certificate_generator.flow`)."""

    return _build(settings, options)
