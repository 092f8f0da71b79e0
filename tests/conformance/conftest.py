"""The conformance run: our code against Sunbird's own test files, loaded as they are.

``make conformance`` runs this folder; ``make test`` never does. The files come from
``LERNFLOW_SUNBIRD_FIXTURES`` or, by default, ``../shared/fixtures`` beside the repository.
Without them the run stops at once and says where to put them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
SUNBIRD_FIXTURES = Path(os.environ.get("LERNFLOW_SUNBIRD_FIXTURES") or _DEFAULT)


def pytest_configure(config: pytest.Config) -> None:
    if not (SUNBIRD_FIXTURES / "activity").is_dir():
        msg = (
            f"Sunbird's fixture files were not found at {SUNBIRD_FIXTURES}. The conformance run "
            "loads Sunbird's own test files: put the shared/ folder next to the repository "
            "(../shared/fixtures), or set LERNFLOW_SUNBIRD_FIXTURES=<path to the fixtures folder>."
        )
        raise pytest.UsageError(msg)
