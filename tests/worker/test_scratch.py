"""A worker's copy of its model package never outlives it: removed when it ends, when it is
terminated, and, when it was killed outright, by the next worker on the machine."""

import os
import signal
import subprocess
import sys
import time

from tests.conftest import TINY_MODELS
from tests.worker.test_r_script_packages import naive_package, replace


def worker(layout, scratch, model_version: str = TINY_MODELS) -> subprocess.Popen:
    arguments = ["score", "--storage", layout.root, "--products", "1,2,3", "--origin", "107"]
    return subprocess.Popen(
        [sys.executable, "-m", "retail_scoring.cli", *arguments, "--model-version", model_version, "--run-id", "s"],
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def package_copies(scratch) -> list[str]:
    return sorted(path.name for path in scratch.glob("package-*"))


def test_a_worker_removes_its_copy_when_it_ends_and_the_copies_of_killed_workers(layout, tmp_path):
    scratch = tmp_path / "scratch"
    (scratch / "package-4194304-left").mkdir(parents=True)  # above Linux's largest pid_max: not running
    (scratch / "package-1-init").mkdir()  # pid 1 runs: not ours to remove
    process = worker(layout, scratch)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    assert package_copies(scratch) == ["package-1-init"]


def test_a_terminated_worker_removes_its_copy(layout, tmp_path):
    """A package that takes its time to score, so the worker is surely still running when it is
    terminated (the tiny gbm set can finish between the poll and the signal)."""
    slow = replace(
        "score <- function(models, history, future, origin) {",
        "score <- function(models, history, future, origin) {\n  Sys.sleep(5)",
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = worker(layout, scratch, naive_package(layout, tmp_path, slow))
    deadline = time.monotonic() + 120
    while not package_copies(scratch):
        assert process.poll() is None and time.monotonic() < deadline, "the worker never copied its package"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    # It exits through its cleanup, not killed by the signal; with what code depends on where the
    # signal lands (inside R, rpy2 may turn the exit into an R error, or finish the call first).
    assert process.wait(timeout=60) != -signal.SIGTERM
    assert package_copies(scratch) == []
