"""Temporary alias of :mod:`lernflow.kernel.redis_batch` while the move lands (removed in this change)."""

import sys

import lernflow.kernel.redis_batch as _moved

sys.modules[__name__] = _moved
