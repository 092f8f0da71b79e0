"""Where the project's own test data lives (written by us; see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
