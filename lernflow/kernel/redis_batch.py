"""Pipelined Redis access for flows, with retries on transient errors.

Reads and writes of one batch go in one round trip (``pipeline(transaction=False)``); a retry
re-sends the whole pipeline, so only idempotent commands belong in it (SADD, SET, DEL, HSET,
SET NX — never INCR).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lernflow.config import RedisSettings, RunSettings
from lernflow.kernel import metrics
from lernflow.kernel.clients import redis_client
from lernflow.kernel.retry import retry


class RedisBatch:
    """One Redis DB, used a pipeline at a time."""

    def __init__(self, settings: RedisSettings, db: int, run: RunSettings, flow: str) -> None:
        self._client = redis_client(settings, db)
        self._run = run
        self._flow = flow

    @property
    def client(self) -> Any:
        """The underlying redis-py client."""
        return self._client

    def pipeline(self, build: Callable[[Any], object], what: str) -> list[Any]:
        """Queue commands with ``build(pipe)`` and execute them in one round trip, retried."""

        def attempt() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            build(pipe)
            return list(pipe.execute())

        return retry(
            attempt,
            self._run,
            f"Redis {what}",
            on_retry=lambda _e: metrics.RETRIES.labels(self._flow, "redis").inc(),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
