"""The Bytewax sink every flow ends in: a per-worker batch processor fed in input order.

Bytewax calls ``write_batch`` with what one worker's routing step emitted in an activation
(``(shard, items)`` pairs); the sink merges those into one list and hands it to the worker's
processor, which does its reads, rules and writes over the whole list at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from lernflow.kernel import metrics


class Processor(Protocol):
    """A worker's batch processor (owns its connections)."""

    def process(self, items: list[Any]) -> None:
        """Handle items in order. Raise only on transient faults (the flow then stops)."""

    def close(self) -> None:
        """Release connections."""


class _Partition(StatelessSinkPartition[tuple[str, list[Any]]]):
    def __init__(self, processor: Processor, flow: str) -> None:
        self._processor = processor
        self._flow = flow

    def write_batch(self, items: list[tuple[str, list[Any]]]) -> None:
        merged: list[Any] = []
        for _shard, window in items:
            merged.extend(window)
        if merged:
            metrics.BATCH_SIZE.labels(self._flow).observe(len(merged))
            self._processor.process(merged)

    def close(self) -> None:
        self._processor.close()


class ProcessorSink(DynamicSink[tuple[str, list[Any]]]):
    """Builds one processor per worker with ``factory`` and feeds it that worker's batches."""

    def __init__(self, flow: str, factory: Callable[[], Processor]) -> None:
        self._flow = flow
        self._factory = factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        return _Partition(self._factory(), self._flow)
