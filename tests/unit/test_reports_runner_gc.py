"""A report batch is built with rare cyclic collections, and the process's GC thresholds are
restored afterwards, also when the batch fails (docs/flows/progress-exhaust.md §15)."""

from __future__ import annotations

import gc

import pytest

from lernflow.reports import runner


def test_thresholds_raised_during_a_batch_and_restored_after() -> None:
    before = gc.get_threshold()
    with runner._few_collections():
        assert gc.get_threshold()[0] == 100_000
    assert gc.get_threshold() == before


def test_thresholds_restored_when_the_batch_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), runner._few_collections():
        raise RuntimeError("batch failed")
    assert gc.get_threshold() == before
