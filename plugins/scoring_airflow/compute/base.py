"""The pool/job/task interface, shaped after Azure Batch: a pool of nodes is created, a job of
tasks is submitted to it, task states are polled, then the job and the pool are deleted."""

import asyncio
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

FINAL_STATES = ("succeeded", "failed")


@dataclass(frozen=True)
class ScoringTask:
    """One partition's scoring: the worker CLI's arguments, where its output streams go, and the
    files it writes (a backend that grants storage per task grants writes to these only)."""

    task_id: str
    arguments: list[str]
    stdout_url: str
    stderr_url: str
    writes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskStatus:
    task_id: str
    state: str  # pending | running | succeeded | failed
    exit_code: int | None = None
    attempts: int = 0
    detail: str = ""
    queued_at: float | None = None  # epoch seconds: job submitted
    started_at: float | None = None  # first attempt started
    finished_at: float | None = None  # last attempt ended

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict:
        return asdict(self)


class ComputeBackend(ABC):
    """A batch compute service as the operator, trigger and teardown use it, whichever it is."""

    @abstractmethod
    def config(self) -> dict:
        """JSON-safe arguments that rebuild this backend (in the triggerer, say)."""

    @abstractmethod
    def create_pool(self, pool_id: str, size: int) -> None:
        """Bring up a fixed-size pool; an existing live pool of that id is an error."""

    @abstractmethod
    def submit_job(self, pool_id: str, job_id: str, tasks: list[ScoringTask], max_retries: int, timeout_s: int) -> None:
        """Queue all tasks as one job; a job id that exists already is an error, never a reuse."""

    @abstractmethod
    def task_statuses(self, job_id: str) -> list[TaskStatus]:
        """Current state of every task of the job."""

    async def changed(self, job_id: str, timeout_s: float) -> None:
        """Return when the job's task states may have changed, at the latest after `timeout_s`. A
        backend that can watch them returns as soon as they do; the default (a remote service,
        polled) just waits."""
        await asyncio.sleep(timeout_s)

    @abstractmethod
    def end_job(self, job_id: str) -> None:
        """The job's tasks have all ended: revoke what they were granted, so nothing they were
        given can write after their summaries are pinned."""

    @abstractmethod
    def delete_job(self, job_id: str) -> None:
        """Stop the job's running tasks and forget it; no error if it is gone already."""

    @abstractmethod
    def job_ids(self) -> list[str]:
        """Ids of the jobs that exist (teardown picks its run's own from them)."""

    @abstractmethod
    def delete_pool(self, pool_id: str) -> None:
        """Stop everything on the pool and remove it; no error if it is gone already."""
