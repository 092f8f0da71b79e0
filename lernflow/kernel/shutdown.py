"""Graceful stop on SIGTERM (and SIGINT when asked): finish the batch in hand, then snapshot.

Bytewax's own reaction to SIGINT is abrupt: the worker loop stops where it is and the last
snapshot is the resume point. Kubernetes and systemd stop a process with SIGTERM and wait a
grace period, so ``lernflow run`` installs :func:`install`: the signal only sets
:data:`STOP`; every Kafka input partition then reports end-of-input at its next poll
(``sources.kafka``), the dataflow drains what is already in flight through the processors,
closes its last epoch (a snapshot, and the consumer-group commit) and the process exits 0.
Restarted, it resumes exactly there: nothing half-applied, nothing skipped.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)

#: Set once a stop was requested; Kafka input partitions end at their next poll.
STOP = threading.Event()


def _handler(signum: int, _frame: FrameType | None) -> None:
    if STOP.is_set():
        logger.warning("second %s: still draining, please wait", signal.Signals(signum).name)
        return
    logger.warning(
        "%s received: finishing the batch in hand, snapshotting, then stopping",
        signal.Signals(signum).name,
    )
    STOP.set()


def install(signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)) -> None:
    """Route ``signals`` to a graceful stop (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in signals:
        signal.signal(sig, _handler)
