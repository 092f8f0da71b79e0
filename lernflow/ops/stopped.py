"""Why a flow stopped, in one line an operator can act on (``lernflow run`` prints it last).

A flow stops on faults of its environment (docs/architecture.md: a full disk, a server that
stays unreachable, refused credentials): the exception reaching ``lernflow run`` is Bytewax's
wrapper around the cause, with the whole traceback in its text. :func:`stop_reason` finds the
cause in the chain and says what it is, where, and that nothing is lost (docs/runbook.md).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from pathlib import Path

_DISK_FULL = re.compile(r"no space left on device|database or disk is full", re.IGNORECASE)
_RESUME = "nothing is lost: run it again and it resumes from its last snapshot"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def stop_reason(exc: BaseException, flow: str, recovery_dir: Path | None) -> str:
    """One line: the flow, the cause (the disk full and where, or the innermost error), and
    what a restart does."""
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            where = f" writing {e.filename}" if e.filename else ""
            return f"{flow} stopped: no space left on device{where}; free space, then {_RESUME}"
    if any(_DISK_FULL.search(str(e)) for e in chain):
        where = f" under {recovery_dir}" if recovery_dir is not None else ""
        return (
            f"{flow} stopped: no space left on device for the recovery store{where}; "
            f"free space, then {_RESUME}"
        )
    root = chain[-1]
    return f"{flow} stopped: {type(root).__name__}: {_first_line(root)} ({_RESUME}; -v shows the traceback)"
