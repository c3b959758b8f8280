"""The local pool process: runs queued worker-CLI tasks on N slots, with per-task retries and a
per-attempt timeout, and uploads each attempt's stdout/stderr to storage like Batch output files.

Started by LocalBackend.create_pool as
`python -m scoring_airflow.compute.local_pool POOL_FOLDER SIZE LEASE_S WORKER_COMMAND...`.

The pool lives on its owner's lease: with nothing running and no create, submit or poll for
LEASE_S seconds (the orchestrator was killed, say), it stops and removes its folder itself.

The pool process is the child subreaper of its workers (retail_scoring.containment): a worker ends
what its package's code started as it exits, but a worker killed by SIGKILL (a timeout, a deleted
job) cleans up nothing, and what detached from its process group would outlive it; such processes
are reparented to the pool, which ends them.
"""

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from retail_scoring import storage
from retail_scoring.containment import contain_processes, end_children
from retail_scoring.errors import EXIT_BAD_INPUT, StorageUnavailableError
from scoring_airflow.compute.local import kill_group, write_json_atomic

log = logging.getLogger("local_pool")

POLL_S = 0.2


@dataclass
class Attempt:
    job: Path
    task: dict
    number: int
    process: subprocess.Popen
    started: float
    worker_command: list[str]
    first_started_at: float


def write_status(job: Path, task_id: str, state: str, attempts: int, **extra) -> None:
    write_json_atomic(
        job / "status" / f"{task_id}.json", {"task_id": task_id, "state": state, "attempts": attempts, **extra}
    )


def read_status(job: Path, task_id: str) -> dict | None:
    path = job / "status" / f"{task_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def start_attempt(
    job: Path, task: dict, number: int, worker_command: list[str], first_started_at: float | None = None
) -> Attempt:
    work = job / "work"
    work.mkdir(exist_ok=True)
    stdout = open(work / f"{task['task_id']}.stdout", "wb")  # noqa: SIM115 - closed when the attempt ends
    stderr = open(work / f"{task['task_id']}.stderr", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        worker_command + task["arguments"],
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    stdout.close()
    stderr.close()
    first_started_at = first_started_at or time.time()
    write_status(job, task["task_id"], "running", number, pid=process.pid, started_at=first_started_at)
    log.info("%s/%s attempt %d started (pid %d)", job.name, task["task_id"], number, process.pid)
    return Attempt(job, task, number, process, time.monotonic(), worker_command, first_started_at)


def upload_streams(attempt: Attempt) -> None:
    """Copy the attempt's streams to storage. Storage that is down or full must not stop the pool
    (its tasks still finish and retry): the streams then stay only in the pool's folder, as a
    Batch output file that fails to upload does not fail its task."""
    work = attempt.job / "work"
    for stream, url_key in (("stdout", "stdout_url"), ("stderr", "stderr_url")):
        local = work / f"{attempt.task['task_id']}.{stream}"
        try:
            storage.write_bytes_atomic(attempt.task[url_key], local.read_bytes())
        except (StorageUnavailableError, OSError) as error:
            log.warning("%s/%s: %s not uploaded (%s); kept at %s", attempt.job.name, attempt.task["task_id"],
                        stream, error, local)  # fmt: skip


def finish_attempt(attempt: Attempt, exit_code: int, detail: str, max_retries: int) -> Attempt | None:
    """Record the attempt's outcome; return the retry attempt when one is due."""
    upload_streams(attempt)
    task_id = attempt.task["task_id"]
    times = {"started_at": attempt.first_started_at, "finished_at": time.time()}
    if exit_code == 0:
        write_status(attempt.job, task_id, "succeeded", attempt.number, exit_code=0, **times)
        log.info("%s/%s succeeded", attempt.job.name, task_id)
        return None
    if exit_code == EXIT_BAD_INPUT:  # bad data or models: a retry would fail the same way
        detail = f"{detail}: bad input, not retried"
    elif attempt.number <= max_retries:
        log.info("%s/%s attempt %d failed (%s), retrying", attempt.job.name, task_id, attempt.number, detail)
        return start_attempt(
            attempt.job, attempt.task, attempt.number + 1, attempt.worker_command, attempt.first_started_at
        )
    write_status(attempt.job, task_id, "failed", attempt.number, exit_code=exit_code, detail=detail, **times)
    log.info("%s/%s failed for good (%s)", attempt.job.name, task_id, detail)
    return None


def beat(pool: Path, stopped: threading.Event) -> None:
    """Liveness apart from the loop: an upload waiting on storage must not look like a dead pool."""
    while not stopped.wait(1.0):
        try:
            (pool / "heartbeat").touch()
        except FileNotFoundError:
            return  # the pool folder was removed


def lease_expired(pool: Path, lease_s: float) -> bool:
    lease = pool / "lease"
    return not lease.exists() or time.time() - lease.stat().st_mtime > lease_s


def end_strays(running: list[Attempt]) -> None:
    """End the pool's children that are no running attempt: processes a killed worker left (the
    pool is their subreaper)."""
    for stray in end_children(keep={attempt.process.pid for attempt in running}, recursive=False):
        log.info("ended %s, left running by a killed worker", stray)


def serve(pool: Path, size: int, lease_s: float, worker_command: list[str]) -> None:
    contain_processes()
    running: list[Attempt] = []
    stopped = threading.Event()
    threading.Thread(target=beat, args=(pool, stopped), daemon=True).start()
    while not (pool / "stop").exists():
        if not running and lease_expired(pool, lease_s):
            log.info("no owner for %.0f s and nothing running: the pool stops and removes itself", lease_s)
            stopped.set()
            shutil.rmtree(pool, ignore_errors=True)
            return
        jobs = sorted((pool / "jobs").iterdir(), key=lambda p: p.stat().st_mtime)
        for job in jobs:
            if (job / "deleted").exists():
                for attempt in [a for a in running if a.job == job]:
                    kill_group(attempt.process.pid)
                    attempt.process.wait()
                    running.remove(attempt)
                shutil.rmtree(job, ignore_errors=True)
        still_running = []
        for attempt in running:
            spec = json.loads((attempt.job / "job.json").read_text())
            exit_code = attempt.process.poll()
            detail = f"exit code {exit_code}"
            if exit_code is None and time.monotonic() - attempt.started > spec["timeout_s"]:
                kill_group(attempt.process.pid)
                exit_code = attempt.process.wait()
                detail = f"timed out after {spec['timeout_s']} s"
            if exit_code is None:
                still_running.append(attempt)
                continue
            retry = finish_attempt(attempt, exit_code, detail, spec["max_retries"])
            if retry is not None:
                still_running.append(retry)
        running = still_running
        end_strays(running)
        for job in jobs:
            if len(running) >= size or not (job / "job.json").exists() or not job.exists():
                continue
            for task_id in json.loads((job / "job.json").read_text())["task_ids"]:
                if len(running) >= size:
                    break
                if read_status(job, task_id) is None:
                    task = json.loads((job / "tasks" / f"{task_id}.json").read_text())
                    running.append(start_attempt(job, task, 1, worker_command))
        time.sleep(POLL_S)
    stopped.set()
    for attempt in running:
        kill_group(attempt.process.pid)
        attempt.process.wait()
    end_strays([])
    log.info("pool stopped")


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(message)s")
    serve(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
