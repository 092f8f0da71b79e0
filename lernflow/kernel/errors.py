"""The exceptions every lernflow job uses, and what the runtime does with each.

::

    LernflowError
    ├── InvalidEvent      bad input: never retried; the event goes to the job's failed topic
    │                     with the reason, the original payload and topic/partition/offset
    └── TransientError    a server is unavailable or timed out: retried with backoff; after
                          the last attempt the flow stops (and resumes from its last snapshot)
                          rather than skip the event

Pure rule modules raise :class:`InvalidEvent`; only I/O code raises :class:`TransientError`.

:class:`ExitCode` is the one list of the command's exit codes (sysexits.h values where one fits;
docs/runbook.md has the table for orchestrators); :mod:`lernflow.ops.stopped` decides which one
a stopped flow or job exits with.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What the ``lernflow`` command exits with (docs/runbook.md, "exit codes")."""

    OK = 0
    #: a check failed or a command found nothing to do (``cert verify``, ``user-cache rebuild``)
    FAILED = 1
    #: a bad command line (unknown flow, a lone ``-i``, a bad ``--from``): typer's usage errors
    USAGE = 2
    #: EX_UNAVAILABLE: a server stayed unreachable after the retries; restarting later may work
    UNAVAILABLE = 69
    #: EX_SOFTWARE: an internal error (a bug); the message names the innermost exception
    SOFTWARE = 70
    #: EX_IOERR: a local disk is full or refuses writes (the recovery store, certificate files)
    IOERR = 74
    #: EX_CONFIG: an invalid setting, refused credentials or an untrusted certificate, a
    #: missing table: restarting does not help until the configuration is fixed
    CONFIG = 78


class LernflowError(Exception):
    """Base class of lernflow's own errors; ``retryable`` says whether a retry may fix it."""

    retryable: bool = False


class InvalidEvent(LernflowError):
    """The event cannot be processed as it is; ``reason`` says why, for the failed topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(LernflowError):
    """A setting is invalid or names something that is not there; fixing it is the only cure."""


class TransientError(LernflowError):
    """A dependency failed in a way that retrying may fix (timeout, connection refused)."""

    retryable = True
