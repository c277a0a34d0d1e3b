"""Whether a CPU model's threads got the cores they were given while bench or the smoke test timed them.

llama.cpp's CPU threads spin rather than sleep while a graph runs, so on a quiet machine they run for all the time
they are given: 0.99 of it on the 2-vCPU development VM (7B Q4_K_M, pp64 and tg16; 0.975 for the 0.5B's sampled chat,
128 tokens). With one other busy process there they ran 0.63-0.69 of it and decoded 3x slower, and that bench had set a
x0.39 correction on every later plan. A run below CONTENDED_BELOW measured the other work as much as the machine: it
says so, and corrects no later plan.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwenctl.backends import Session

CONTENDED_BELOW = 0.85
MIN_SECONDS = 1.0  # timed runs shorter than this (a tiny model's) are mostly Python between graphs: no verdict


class ThreadTime:
    """The CPU time this process's threads ran over the blocks it times, against the time a CPU-only llama.cpp model's
    threads were given (n_threads x the blocks' wall time). The process's own CPU clock (time.process_time: every
    thread, nanoseconds), so a container's quota and other tenants count as what they took from the threads, not as
    load elsewhere on the host. A model with layers on a GPU is not measured: its host threads idle while it works."""

    def __init__(self, session: Session):
        self.threads = (session.n_threads or 0) if session.n_gpu_layers == 0 else 0
        self.wall = self.cpu = 0.0
        self._start = (0.0, 0.0)

    def __enter__(self) -> ThreadTime:
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._start[0]
        self.cpu += time.process_time() - self._start[1]

    def share(self) -> float | None:
        """The share of their time the threads ran; None where not measured or too short to tell."""
        if not self.threads or self.wall < MIN_SECONDS:
            return None
        return min(self.cpu / (self.threads * self.wall), 1.0)


def contended(share: float | None) -> bool:
    """Whether a measured share says the threads lost their cores (None: not measured, so not contended)."""
    return share is not None and share < CONTENDED_BELOW


def runnable_cpus() -> int:
    """The threads this process can run at once, read live: the rule `machine.usable_threads` applies to detect's
    facts (hardware.cpu: its affinity mask and its cgroup's CPU quota), without a whole detect."""
    from qwenctl.hardware.cpu import thread_limit, usable_cpus
    from qwenctl.hardware.live import LiveSource

    logical = os.cpu_count() or 1
    found = usable_cpus(LiveSource(), logical)
    return thread_limit(logical, found[0] if found else None)


def lost_cores(share: float, threads: int | None) -> str:
    """What a contended run's figures measured, in words: more threads than the CPUs this process may run on
    (`runnable_cpus`), or other work on them."""
    cpus = runnable_cpus()
    if threads and threads > cpus:
        return (f"the engine's {threads} threads share {cpus} CPU{'s' if cpus > 1 else ''} and ran {share:.0%} of the "
                "time they were given")
    return (f"the engine's {threads} threads ran {share:.0%} of the time they were given (other processes, or a CPU "
            "quota, took their cores)")
