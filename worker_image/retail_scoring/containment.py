"""What a worker holds package code to: R that can allocate without bound and start processes
(`system()`, parallel's forks, a helper server) must neither outgrow the worker's memory limit nor
outlive its task.

- `contain_processes()` makes the worker the child subreaper of everything it starts (Linux
  prctl), so a process that detaches from it (`setsid`, a double fork, `system(wait = FALSE)`)
  is still its descendant; `end_children()` ends them all, as the worker ends (its CLI calls it
  however it exits through Python: done, an error, SIGTERM).
- `MemoryWatch` samples the resident memory of the worker and its descendants and, past the limit,
  ends them and the worker with EXIT_BAD_INPUT naming the limit: a retry would reach it again.
A SIGKILLed worker runs no cleanup: the local pool process, itself a subreaper, ends what it left
(`compute/local_pool.py`); a Batch task's container ends with its task."""

import ctypes
import logging
import os
import sys
import threading
from collections.abc import Collection

import psutil

from retail_scoring.errors import EXIT_BAD_INPUT

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
SAMPLE_S = 0.1


def contain_processes() -> None:
    """Orphans of this process's descendants become its children instead of init's."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def end_children(keep: Collection[int] = (), recursive: bool = True) -> list[str]:
    """SIGKILL and reap the processes this one started (`recursive`: and theirs), but for the pids
    in `keep`; returns them as `name (pid N)`. Repeated until none is left: a killed process's own
    children are reparented here (the subreaper) only as it dies."""
    ended = []
    for _ in range(100):
        found = [p for p in psutil.Process().children(recursive=recursive) if p.pid not in keep]
        if not found:
            break
        for process in found:
            try:
                ended.append(f"{process.name()} (pid {process.pid})")
                process.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(found, timeout=5)
    return ended


def resident_mb() -> float:
    """Resident memory of this process and its descendants, added up (pages forks share count in
    each: the sum errs on the high side)."""
    worker = psutil.Process()
    total = worker.memory_info().rss
    for process in worker.children(recursive=True):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


class MemoryWatch:
    """A daemon thread ending the worker when it and its descendants hold more than `limit_mb`
    resident. It runs while R or the compiled engine compute (neither holds Python's lock), and
    samples every SAMPLE_S: an allocation faster than that can overshoot the limit briefly."""

    def __init__(self, limit_mb: int, what: str):
        self.limit_mb = limit_mb
        self.what = what
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="memory-watch", daemon=True)

    def __enter__(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stopped.wait(SAMPLE_S):
            used_mb = resident_mb()
            if used_mb > self.limit_mb:
                self._end(used_mb)

    def _end(self, used_mb: float) -> None:
        end_children()
        print(
            f"error: {self.what}: the worker and the processes it started held {used_mb:.0f} MB, over its memory "
            f"limit of {self.limit_mb} MB (FORECAST_WORKER_MEMORY_MB, recorded in the run's plan); the worker "
            "stopped. Plan the run with a larger limit (fewer task slots per node) or smaller partitions",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_BAD_INPUT)  # the main thread may be inside R: nothing else can stop it now
