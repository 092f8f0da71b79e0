"""Random ids for the events the flows emit (AUDIT ``mid``/``sid``/``did``, request ids).

RFC 4122 version-4 UUID strings, the same form as ``str(uuid.uuid4())``, drawn from the
``random`` module instead of ``os.urandom``: these ids only need to be unique, not secret, and
this costs 0.7 µs instead of 1.8 µs — three of them per AUDIT event were 7 % of the activity
flow's CPU (docs/benchmarks.md). ``random`` reseeds itself in a forked child.
"""

from __future__ import annotations

import random

_VERSION_4 = 0x4000 << 64
_VERSION_MASK = ~(0xF000 << 64)
_VARIANT_RFC4122 = 0x8000 << 48
_VARIANT_MASK = ~(0xC000 << 48)


def random_uuid() -> str:
    """A random version-4 UUID string, e.g. ``3f2b8c1e-5d4a-4b6f-9e21-7c0d8a9b1f34``."""
    n = (random.getrandbits(128) & _VERSION_MASK & _VARIANT_MASK) | _VERSION_4 | _VARIANT_RFC4122
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
