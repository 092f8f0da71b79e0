"""Temporary alias of :mod:`lernflow.ops.runner` while the move lands (removed in this change)."""

import sys

import lernflow.ops.runner as _moved
from sources.options import RunOptions, consumer_group

_moved.RunOptions = RunOptions  # type: ignore[attr-defined]
_moved.consumer_group = consumer_group  # type: ignore[attr-defined]
sys.modules[__name__] = _moved
