"""A local cluster: one flow in several processes on this host (``lernflow run -p N``).

Each process is a ``python -m lernflow.cli run`` child with its own ``-i`` process id; the
children find each other on 127.0.0.1:2101 and up.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from lernflow.config import Settings
from lernflow.ops import runner

logger = logging.getLogger(__name__)

#: the first process's cluster port; process k listens on FIRST_PORT + k
FIRST_PORT = 2101


def run_local(
    settings: Settings,
    flow: str,
    *,
    processes: int,
    workers: int,
    until_caught_up: bool,
    from_beginning: bool,
    no_recovery: bool,
) -> int:
    """Run ``flow`` in ``processes`` local processes; return the highest exit code.

    With ``from_beginning`` every process starts at the earliest offsets, and (recovery on) the
    recovery store is recreated first, sized for every worker of the cluster; the processes are
    told it is prepared so none recreates it under the others.
    """
    if from_beginning and not no_recovery:
        runner.prepare_recovery(settings, flow, fresh=True, partitions=max(4, processes * workers))
    addrs = local_addresses(processes)
    base = [sys.executable, "-m", "lernflow.cli", "run", flow, "-w", str(workers), "-a", addrs]
    if until_caught_up:
        base.append("--until-caught-up")
    if no_recovery:
        base.append("--no-recovery")
    if from_beginning:
        base.append("--from-beginning")
        if not no_recovery:
            base.append("--recovery-prepared")
    logger.info("%s: starting %d local processes on %s", flow, processes, addrs)
    return start_processes(base, processes)


def local_addresses(processes: int) -> str:
    """The ``-a`` value of a local cluster: 127.0.0.1:FIRST_PORT and up."""
    return ";".join(f"127.0.0.1:{FIRST_PORT + k}" for k in range(processes))


def start_processes(base: list[str], processes: int) -> int:
    """Run ``base -i K`` for each process id K; wait for all; return the highest exit code."""
    procs = [
        subprocess.Popen([*base, "-i", str(k)], env=dict(os.environ)) for k in range(processes)
    ]
    return max(p.wait() for p in procs)
