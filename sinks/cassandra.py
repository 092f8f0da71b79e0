"""Temporary alias of :mod:`lernflow.kernel.cassandra` while the move lands (removed in this change)."""

import sys

import lernflow.kernel.cassandra as _moved

sys.modules[__name__] = _moved
