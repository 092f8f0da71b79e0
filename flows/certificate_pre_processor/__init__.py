"""certificate-pre-processor (see :mod:`flows.certificate_pre_processor.flow`).

Run with ``python -m bytewax.run "flows.certificate_pre_processor:build_flow()"``.
"""

from __future__ import annotations

from typing import Any

from flows.certificate_pre_processor.flow import build_flow as _build


def build_flow(settings: Any = None, options: Any = None) -> Any:
    """Build the dataflow (see :mod:`flows.certificate_pre_processor.flow`)."""

    return _build(settings, options)
