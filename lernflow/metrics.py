"""Temporary alias of :mod:`lernflow.kernel.metrics` while the move lands (removed in this change)."""

import sys

import lernflow.kernel.metrics as _moved

sys.modules[__name__] = _moved
