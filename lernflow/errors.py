"""Temporary alias of :mod:`lernflow.kernel.errors` while the move lands (removed in this change)."""

import sys

import lernflow.kernel.errors as _moved

sys.modules[__name__] = _moved
