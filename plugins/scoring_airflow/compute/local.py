"""The embedded default backend: a "pool" of N slots on this machine.

create_pool starts a detached pool process (local_pool.py) that outlives the Airflow task, so the
scoring operator can defer while tasks run, just as with Azure Batch. Client and pool process
talk through files in the pool's folder:

  {pool_dir}/{pool_id}/pool.json                         size and pid of the pool process
  {pool_dir}/{pool_id}/heartbeat                         touched by the pool process while it runs
  {pool_dir}/{pool_id}/lease                             touched by its owner (create, submit, every poll)
  {pool_dir}/{pool_id}/jobs/{job_id}/job.json            the job's task ids, retries, timeout (read every loop)
  {pool_dir}/{pool_id}/jobs/{job_id}/tasks/{task}.json   a task's command line and writes (read as it starts:
                                                         200 products' writes are ~30 KB, 500 tasks 16 MB)
  {pool_dir}/{pool_id}/jobs/{job_id}/status/{task}.json  written by the pool process
  {pool_dir}/{pool_id}/jobs/{job_id}/deleted             asks the pool process to stop the job
  {pool_dir}/{pool_id}/jobs/{job_id}/ended               the job has ended (end_job): no later try follows it
"""

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from scoring_airflow.compute.base import ComputeBackend, ComputeError, ScoringTask, TaskStatus
from scoring_airflow.settings import ForecastSettings

log = logging.getLogger(__name__)

# The pool process touches its heartbeat file every loop; the trigger may run in another container
# (docker-compose's triggerer), where the pool's pid means nothing, so liveness is the file's age.
HEARTBEAT_TIMEOUT_S = 30
WATCH_S = 0.05  # how often a waiter looks at a job's status folder (one stat of a local folder)


def write_json_atomic(path: Path, payload: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload))
    os.replace(temporary, path)


def process_alive(pid: int) -> bool:
    try:  # when it is our own child that exited, reap it: a zombie still answers kill(pid, 0)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a killed orphan stays a zombie until its new parent reaps it
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _mtime_ns(folder: Path | None) -> int | None:
    try:
        return folder.stat().st_mtime_ns if folder else None
    except FileNotFoundError:
        return None


class LocalBackend(ComputeBackend):
    def __init__(self, pool_dir: str | None = None, worker_command: list[str] | None = None):
        """The pool folder comes from this process's settings (FORECAST_LOCAL_POOL_DIR), the worker
        command is the worker CLI of this environment: neither travels through XCom or the trigger
        table, where a run's params could reach them. `worker_command` is for tests' stand-ins."""
        self.pool_dir = Path(pool_dir) if pool_dir else ForecastSettings().local_pool_dir
        self.worker_command = worker_command or [sys.executable, "-m", "retail_scoring.cli"]

    @classmethod
    def for_run(cls, settings: ForecastSettings, node_settings: dict) -> "LocalBackend":
        return cls()

    def config(self) -> dict:
        return {}  # the pool folder and worker command come from each process's own settings

    def task_slots(self, pool_size: int, settings: ForecastSettings) -> int:
        """Refused beyond this machine's cores or available memory (each worker peaks at about
        `worker_memory_mb`)."""
        cores = os.cpu_count() or 1
        available_mb = psutil.virtual_memory().available / 2**20
        limit = min(cores, int(available_mb // settings.worker_memory_mb))
        if pool_size > limit:
            raise ComputeError(
                f"pool_size {pool_size} is more local workers than this machine can run at once: at most {limit} "
                f"({cores} cores; {available_mb / 1024:.1f} GB memory available at "
                f"{settings.worker_memory_mb} MB per worker, FORECAST_WORKER_MEMORY_MB). "
                "Use a smaller pool_size, or compute_backend azure_batch"
            )
        return pool_size

    def engine_threads(self, pool_size: int, settings: ForecastSettings) -> int:
        return max(1, (os.cpu_count() or 1) // pool_size)

    def _pool(self, pool_id: str) -> Path:
        return self.pool_dir / pool_id

    def _job(self, job_id: str) -> Path | None:
        matches = list(self.pool_dir.glob(f"*/jobs/{job_id}"))
        return matches[0] if matches else None

    def create_pool(self, pool_id: str, size: int) -> None:
        """A pool id is a run's: a pool left by an earlier try of the same run (its orchestrator
        killed, say) is replaced, never an obstacle to clearing the run."""
        pool = self._pool(pool_id)
        if (pool / "pool.json").exists():
            log.info("local pool %s exists from an earlier try of this run; replacing it", pool_id)
            self.delete_pool(pool_id)
        shutil.rmtree(pool, ignore_errors=True)
        (pool / "jobs").mkdir(parents=True)
        (pool / "heartbeat").touch()  # the first beat, until the process beats itself
        (pool / "lease").touch()
        lease_s = str(ForecastSettings().local_pool_lease_s)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scoring_airflow.compute.local_pool",
                str(pool),
                str(size),
                lease_s,
                *self.worker_command,
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=open(pool / "pool.log", "ab"),  # noqa: SIM115 - handed to the detached process
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        write_json_atomic(pool / "pool.json", {"size": size, "pid": process.pid})
        log.info("local pool %s started: %d slots, pid %d", pool_id, size, process.pid)

    def submit_job(self, pool_id: str, job_id: str, tasks: list[ScoringTask], max_retries: int, timeout_s: int) -> None:
        pool = self._pool(pool_id)
        if not (pool / "pool.json").exists():
            raise ComputeError(f"local pool {pool_id} does not exist; was the create-pool task run?")
        if self._job(job_id) is not None:
            raise ComputeError(f"job {job_id} already exists; job ids are never reused")
        (pool / "lease").touch()
        job = pool / "jobs" / job_id
        (job / "status").mkdir(parents=True)
        (job / "tasks").mkdir()
        for task in tasks:
            write_json_atomic(job / "tasks" / f"{task.task_id}.json", asdict(task))
        write_json_atomic(
            job / "job.json",
            {
                "task_ids": [task.task_id for task in tasks],
                "max_retries": max_retries,
                "timeout_s": timeout_s,
                "submitted_at": time.time(),
            },
        )

    def task_statuses(self, job_id: str) -> list[TaskStatus]:
        job = self._job(job_id)
        if job is None:
            raise ComputeError(f"job {job_id} not found on any local pool (was the pool deleted?)")
        heartbeat = job.parents[1] / "heartbeat"
        if not heartbeat.exists() or time.time() - heartbeat.stat().st_mtime > HEARTBEAT_TIMEOUT_S:
            raise ComputeError(f"the local pool process of job {job_id} stopped beating ({heartbeat})")
        (job.parents[1] / "lease").touch()  # the owner is still waiting on this pool
        statuses = []
        spec = json.loads((job / "job.json").read_text())
        for task_id in spec["task_ids"]:
            status_file = job / "status" / f"{task_id}.json"
            if status_file.exists():
                status = json.loads(status_file.read_text())
                status.pop("pid", None)
                statuses.append(TaskStatus(**status, queued_at=spec["submitted_at"]))
            else:
                statuses.append(TaskStatus(task_id=task_id, state="pending", queued_at=spec["submitted_at"]))
        return statuses

    async def changed(self, job_id: str, timeout_s: float) -> None:
        """Watch the job's status folder: the pool process replaces a task's status file whenever
        its state changes, which changes the folder's modification time. So a finished partition is
        seen within WATCH_S, not at the next poll."""
        job = self._job(job_id)
        folder = job / "status" if job else None
        signature = _mtime_ns(folder)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await asyncio.sleep(min(WATCH_S, max(0.0, deadline - time.monotonic())))
            if _mtime_ns(folder) != signature:
                return

    def end_job(self, job_id: str) -> None:
        """Local workers hold no grants (they use this machine's own storage credentials): the job
        is only marked ended."""
        job = self._job(job_id)
        if job is not None:
            (job / "ended").touch()

    def open_job_ids(self) -> list[str]:
        return sorted(job.name for job in self.pool_dir.glob("*/jobs/*") if not (job / "ended").exists())

    def delete_job(self, job_id: str) -> None:
        job = self._job(job_id)
        if job is None:
            return
        (job / "deleted").touch()
        deadline = time.monotonic() + 30
        while job.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if job.exists():  # the pool process is gone or stuck: stop the tasks ourselves
            self._kill_running_tasks(job)
            shutil.rmtree(job, ignore_errors=True)

    def job_ids(self) -> list[str]:
        return sorted(job.name for job in self.pool_dir.glob("*/jobs/*"))

    def delete_pool(self, pool_id: str) -> None:
        pool = self._pool(pool_id)
        info = pool / "pool.json"
        if not info.exists():
            log.info("local pool %s is gone already", pool_id)
            return
        pid = json.loads(info.read_text())["pid"]
        (pool / "stop").touch()
        deadline = time.monotonic() + 15
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        kill_group(pid)
        for job in (pool / "jobs").iterdir():
            self._kill_running_tasks(job)
        shutil.rmtree(pool, ignore_errors=True)
        log.info("local pool %s deleted", pool_id)

    @staticmethod
    def _kill_running_tasks(job: Path) -> None:
        for status_file in (job / "status").glob("*.json"):
            status = json.loads(status_file.read_text())
            if status["state"] == "running" and status.get("pid"):
                kill_group(status["pid"])
