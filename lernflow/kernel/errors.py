"""The exceptions every lernflow job uses, and what the runtime does with each.

::

    LernflowError
    ├── InvalidEvent      bad input: never retried; the event goes to the job's failed topic
    │                     with the reason, the original payload and topic/partition/offset
    └── TransientError    a server is unavailable or timed out: retried with backoff; after
                          the last attempt the flow stops (and resumes from its last snapshot)
                          rather than skip the event

Pure rule modules raise :class:`InvalidEvent`; only I/O code raises :class:`TransientError`.
"""

from __future__ import annotations


class LernflowError(Exception):
    """Base class of lernflow's own errors; ``retryable`` says whether a retry may fix it."""

    retryable: bool = False


class InvalidEvent(LernflowError):
    """The event cannot be processed as it is; ``reason`` says why, for the failed topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(LernflowError):
    """A dependency failed in a way that retrying may fix (timeout, connection refused)."""

    retryable = True
