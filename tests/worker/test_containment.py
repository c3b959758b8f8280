"""Workers contained: package R code neither outgrows the worker's memory limit nor outlives its
task, and an R quit() that gets past the package guard is reported as what it is. Real worker
processes, real R, the r-script test package edited per test."""

import subprocess
import sys
import time

import psutil

from retail_scoring.containment import resident_mb
from retail_scoring.errors import EXIT_BAD_INPUT
from retail_scoring.packages.base import read_manifest
from tests.conftest import write_plan
from tests.worker.test_cli_errors import score, score_partition_of_run
from tests.worker.test_r_script_packages import ORIGIN, VERSION, naive_package, replace


def test_a_process_the_package_detaches_ends_with_its_worker(layout, tmp_path):
    """`setsid` leaves the worker's process group and session; it stays the worker's descendant."""
    pid_file = tmp_path / "detached.pid"
    start = (
        f"  system(\"setsid sh -c 'echo $$ > {pid_file}; exec sleep 300' > /dev/null 2>&1 &\")\n"
        f'  while (!file.exists("{pid_file}") || file.size("{pid_file}") == 0) Sys.sleep(0.05)\n'
        "  out\n}"
    )
    naive_package(layout, tmp_path, replace("  out\n}", start))
    result = score(layout, "1", run_id="detaching", origin=ORIGIN, model_version=VERSION)
    detached = int(pid_file.read_text())
    try:
        assert result.returncode == 0, result.stderr
        assert not psutil.pid_exists(detached), "the process the package detached outlived the worker"
        assert f"ended 1 processes the worker's R code left running: sleep (pid {detached})" in result.stdout
    finally:
        if psutil.pid_exists(detached):
            psutil.Process(detached).kill()


def test_base_quit_past_the_guard_fails_the_task_saying_so(layout, tmp_path):
    """R exits with status 0 after its cleanup whatever quit() asked: the task would look done."""
    naive_package(layout, tmp_path, replace("  out\n}", "  base::quit(status = 0)\n}"))
    result = score(layout, "1", run_id="quitting", origin=ORIGIN, model_version=VERSION)
    assert result.returncode == EXIT_BAD_INPUT
    assert (
        f"error: model package {VERSION}: score.R: score(): called quit(status = 0), which ends R and the worker"
        in result.stderr
    )


def test_a_worker_over_its_memory_limit_is_stopped_naming_the_limit(layout, tmp_path):
    naive_package(layout, tmp_path, replace("  out\n}", "  hoard <- rep(1, 2e8)\n  out\n}"))  # 1.6 GB
    write_plan(
        layout,
        "hoarding",
        {"partition_000": [1]},
        model_version=VERSION,
        package_kind="r-script",
        model_manifest_sha256=read_manifest(layout, VERSION)[1],
        worker_memory_mb=700,
    )
    started = time.monotonic()
    result = score_partition_of_run(layout, "hoarding")
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert (
        f"error: run hoarding, partition_000, model package {VERSION}: the worker and the processes it started held"
        in result.stderr
    )
    assert "over its memory limit of 700 MB (FORECAST_WORKER_MEMORY_MB" in result.stderr
    assert time.monotonic() - started < 60


def test_the_memory_of_processes_a_worker_started_is_counted(tmp_path):
    baseline = resident_mb()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; b = bytearray(300 * 2**20); print(flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    try:
        holder.stdout.readline()  # its 300 MB are written by now
        assert resident_mb() > baseline + 300
    finally:
        holder.kill()
        holder.wait()
