"""Retry with capped exponential backoff and full jitter for transient server faults.

Which exceptions are transient is decided by :func:`is_transient` (Cassandra timeouts and
unavailability, Redis connection/timeouts, our own ``TransientError``). Anything else is raised
at once. After the last attempt the error is raised: the flow stops and, restarted, resumes from
its last snapshot, so nothing is skipped.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from config import RunSettings
from lernflow.kernel.errors import TransientError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TRANSIENT_NAMES = {
    # cassandra-driver
    "OperationTimedOut", "NoHostAvailable", "Unavailable", "ReadTimeout", "WriteTimeout",
    "CoordinationFailure", "ConnectionException", "ConnectionShutdown", "OverloadedErrorMessage",
    # redis-py
    "ConnectionError", "TimeoutError", "BusyLoadingError", "TryAgainError",
    # builtins / sockets
    "ConnectionRefusedError", "ConnectionResetError", "BrokenPipeError",
}  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    """Return True for errors that a later retry may fix."""
    if isinstance(exc, TransientError):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def retry(
    fn: Callable[[], T],
    run: RunSettings,
    what: str,
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn`` until it succeeds, retrying transient errors up to the configured attempts."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or attempt >= run.retry_max_attempts:
                raise
            cap = min(run.retry_max_delay_s, run.retry_base_delay_s * 2 ** (attempt - 1))
            delay = random.uniform(cap / 2, cap)
            logger.warning(
                "%s failed (attempt %d/%d, retrying in %.2fs): %s: %s",
                what, attempt, run.retry_max_attempts, delay, type(exc).__name__, exc,
            )  # fmt: skip
            if on_retry is not None:
                on_retry(exc)
            sleep(delay)
