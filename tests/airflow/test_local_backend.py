"""The local pool with real processes: queueing on N slots, retries, timeouts, kills, cleanup, the
owner's lease."""

import json
import os
import sys
import time
from pathlib import Path

import pytest

from retail_scoring import storage
from scoring_airflow.compute import ScoringTask
from scoring_airflow.compute.local import LocalBackend, kill_group, process_alive

# A stand-in worker: python -c SCRIPT ARG... ; behaviour picked by the task's arguments.
STAND_IN_WORKER = [
    sys.executable,
    "-c",
    """
import os, pathlib, signal, subprocess, sys, time
mode, marker = sys.argv[1], pathlib.Path(sys.argv[2])
print("started", mode, flush=True)
if mode == "ok":
    sys.exit(0)
if mode == "fail":
    print("bad input in product_004", file=sys.stderr)
    sys.exit(2)
if mode == "crash":
    print("out of memory", file=sys.stderr)
    sys.exit(1)
if mode == "killed-once" and not marker.exists():
    marker.touch()
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "sleep":
    marker.write_text(str(os.getpid()))
    time.sleep(60)
if mode == "detach":  # what a package's R code might start: a process in a session of its own
    detached = subprocess.Popen(["setsid", "sleep", "60"])
    marker.write_text(str(detached.pid))
    time.sleep(60)
""",
]


def wait_until_final(backend: LocalBackend, job_id: str, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = backend.task_statuses(job_id)
        if all(s.is_final for s in statuses):
            return {s.task_id: s for s in statuses}
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {statuses}")


@pytest.fixture
def backend(tmp_path: Path):
    backend = LocalBackend(str(tmp_path / "pools"), worker_command=STAND_IN_WORKER)
    backend.create_pool("pool-a", 2)
    yield backend
    backend.delete_pool("pool-a")


def task(tmp_path: Path, task_id: str, mode: str) -> ScoringTask:
    logs = f"file://{tmp_path}/logs/{task_id}"
    return ScoringTask(task_id, [mode, str(tmp_path / f"{task_id}.marker")], f"{logs}/stdout.txt", f"{logs}/stderr.txt")


def test_tasks_succeed_fail_and_upload_their_streams(backend, tmp_path):
    tasks = [task(tmp_path, "p0", "ok"), task(tmp_path, "p1", "crash"), task(tmp_path, "p2", "ok")]
    backend.submit_job("pool-a", "job-1", tasks, max_retries=1, timeout_s=30)
    statuses = wait_until_final(backend, "job-1")
    assert statuses["p0"].state == statuses["p2"].state == "succeeded"
    assert (statuses["p1"].state, statuses["p1"].exit_code, statuses["p1"].attempts) == ("failed", 1, 2)
    assert "out of memory" in storage.read_bytes(tasks[1].stderr_url).decode()
    assert "started ok" in storage.read_bytes(tasks[0].stdout_url).decode()


def test_bad_input_fails_fast_without_retries(backend, tmp_path):
    bad = task(tmp_path, "p0", "fail")
    backend.submit_job("pool-a", "job-1", [bad], max_retries=2, timeout_s=30)
    status = wait_until_final(backend, "job-1")["p0"]
    assert (status.state, status.exit_code, status.attempts) == ("failed", 2, 1)
    assert status.detail == "exit code 2: bad input, not retried"
    assert "bad input in product_004" in storage.read_bytes(bad.stderr_url).decode()


def test_a_task_killed_by_sigkill_is_retried_and_succeeds(backend, tmp_path):
    backend.submit_job("pool-a", "job-1", [task(tmp_path, "p0", "killed-once")], max_retries=2, timeout_s=30)
    status = wait_until_final(backend, "job-1")["p0"]
    assert (status.state, status.attempts) == ("succeeded", 2)


def test_a_task_over_its_timeout_is_killed_and_reported(backend, tmp_path):
    backend.submit_job("pool-a", "job-1", [task(tmp_path, "p0", "sleep")], max_retries=0, timeout_s=1)
    status = wait_until_final(backend, "job-1")["p0"]
    assert status.state == "failed" and "timed out after 1 s" in status.detail
    assert not process_alive(int((tmp_path / "p0.marker").read_text()))


def test_a_process_a_killed_task_detached_from_its_group_is_ended_by_the_pool(backend, tmp_path):
    """The timeout's SIGKILL reaches the worker's process group; `setsid` left it, so the pool ends it."""
    backend.submit_job("pool-a", "job-1", [task(tmp_path, "p0", "detach")], max_retries=0, timeout_s=1)
    assert wait_until_final(backend, "job-1")["p0"].state == "failed"
    detached = int((tmp_path / "p0.marker").read_text())
    deadline = time.monotonic() + 5
    while process_alive(detached) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not process_alive(detached), "the detached process outlived its task"
    finally:
        kill_group(detached)


def test_job_ids_are_never_reused(backend, tmp_path):
    backend.submit_job("pool-a", "job-1", [task(tmp_path, "p0", "ok")], max_retries=0, timeout_s=30)
    with pytest.raises(RuntimeError, match="job job-1 already exists"):
        backend.submit_job("pool-a", "job-1", [task(tmp_path, "p0", "ok")], max_retries=0, timeout_s=30)


def pool_pid(tmp_path: Path, pool_id: str) -> int:
    return json.loads((tmp_path / "pools" / pool_id / "pool.json").read_text())["pid"]


def test_a_pool_left_by_an_earlier_try_of_the_run_is_replaced(backend, tmp_path):
    stale = pool_pid(tmp_path, "pool-a")
    backend.create_pool("pool-a", 2)  # a Clear of the run whose orchestrator was killed
    assert not process_alive(stale)
    assert process_alive(pool_pid(tmp_path, "pool-a"))


def wait_until_gone(pool: Path, pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while pool.exists() or process_alive(pid):
        assert time.monotonic() < deadline, f"{pool} still there after {timeout_s} s"
        time.sleep(0.1)


def test_an_idle_pool_whose_owner_is_gone_stops_within_its_lease(tmp_path, monkeypatch):
    monkeypatch.setenv("FORECAST_LOCAL_POOL_LEASE_S", "2")
    backend = LocalBackend(str(tmp_path / "pools"), worker_command=STAND_IN_WORKER)
    backend.create_pool("pool-l", 1)
    backend.submit_job("pool-l", "job-1", [task(tmp_path, "p0", "ok")], max_retries=0, timeout_s=30)
    wait_until_final(backend, "job-1")
    pid = pool_pid(tmp_path, "pool-l")
    for _ in range(8):  # an owner that keeps polling keeps the pool
        time.sleep(0.5)
        backend.task_statuses("job-1")
    assert process_alive(pid)
    wait_until_gone(tmp_path / "pools" / "pool-l", pid, timeout_s=10)  # the owner is gone
    backend.create_pool("pool-l", 1)  # and clearing the run starts afresh
    backend.delete_pool("pool-l")


def test_deleting_the_pool_kills_running_tasks(tmp_path):
    backend = LocalBackend(str(tmp_path / "pools"), worker_command=STAND_IN_WORKER)
    backend.create_pool("pool-b", 1)
    backend.submit_job("pool-b", "job-1", [task(tmp_path, "p0", "sleep")], max_retries=0, timeout_s=60)
    marker = tmp_path / "p0.marker"
    deadline = time.monotonic() + 20
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    backend.delete_pool("pool-b")
    time.sleep(0.5)
    assert not process_alive(int(marker.read_text()))
    assert not (tmp_path / "pools" / "pool-b").exists()
    backend.delete_pool("pool-b")  # deleting again is fine


def test_a_pool_process_that_died_is_reported_not_waited_on_forever(tmp_path):
    backend = LocalBackend(str(tmp_path / "pools"), worker_command=STAND_IN_WORKER)
    backend.create_pool("pool-c", 1)
    backend.submit_job("pool-c", "job-1", [task(tmp_path, "p0", "sleep")], max_retries=0, timeout_s=60)
    pool = tmp_path / "pools" / "pool-c"
    deadline = time.monotonic() + 10
    while not (pool / "heartbeat").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    kill_group(json.loads((pool / "pool.json").read_text())["pid"])
    old = time.time() - 60
    os.utime(pool / "heartbeat", (old, old))
    with pytest.raises(RuntimeError, match="stopped beating"):
        backend.task_statuses("job-1")
    backend.delete_pool("pool-c")


def test_a_waiter_learns_a_task_finished_without_waiting_out_its_poll_interval(backend, tmp_path):
    import asyncio

    backend.submit_job("pool-a", "job-w", [task(tmp_path, "p0", "ok")], max_retries=0, timeout_s=30)
    started = time.monotonic()
    while not all(s.is_final for s in backend.task_statuses("job-w")):
        asyncio.run(backend.changed("job-w", timeout_s=30))
        assert time.monotonic() - started < 10, "woken by the status files, not the 30 s interval"
    idle = time.monotonic()
    asyncio.run(backend.changed("job-w", timeout_s=0.3))
    assert 0.3 <= time.monotonic() - idle < 2, "nothing changes once the job is done: waits the interval"
