"""Redis DB slots of the local stack for sessions that run side by side.

The local stack's Redis has 64 DBs; Sunbird's indexes (0, 5, 10, 12, 13) stay untouched. A test
session or a benchmark run takes one slot of five DBs (the five caches a flow uses), held by an
advisory lock file, so several checkouts and benchmarks can share one stack without flushing
each other's data.
"""

from __future__ import annotations

import fcntl
import tempfile
from pathlib import Path
from typing import IO

DB_FIELDS = (
    "relation_cache_db",
    "content_cache_db",
    "collection_cache_db",
    "user_cache_db",
    "dedup_db",
)
SLOT_BASES = (20, 25, 30, 35, 40, 45, 50, 55)


class NoFreeSlot(RuntimeError):
    """Every slot is held by another running session."""


def claim() -> tuple[dict[str, int], IO[str]]:
    """The five DB indexes of a free slot and the open lock file that holds it (close to free)."""
    lock_dir = Path(tempfile.gettempdir())
    for base in SLOT_BASES:
        handle = (lock_dir / f"lernflow-test-redis-{base}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return {name: base + i for i, name in enumerate(DB_FIELDS)}, handle
    msg = f"all {len(SLOT_BASES)} Redis DB slots of the local stack are taken by other sessions"
    raise NoFreeSlot(msg)
