"""Temporary alias of :mod:`lernflow.kernel.clients` while the move lands (removed in this change)."""

import sys

import lernflow.kernel.clients as _moved

sys.modules[__name__] = _moved
