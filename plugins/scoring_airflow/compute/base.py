"""The pool/job/task interface, shaped after Azure Batch: a pool of nodes is created, a job of
tasks is submitted to it, task states are polled, then the job and the pool are deleted."""

import asyncio
import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from scoring_airflow.settings import ForecastSettings

FINAL_STATES = ("succeeded", "failed")
ID_LIMIT = 64  # Azure Batch's limit for pool, job and task ids; the local backend keeps to it too


class ComputeError(RuntimeError):
    """The compute refused or failed what was asked (capacity, quota, a lost pool or job), said in
    its own words and with what to do: every backend raises this, the operator and trigger handle it."""


def batch_id(text: str, limit: int = ID_LIMIT) -> str:
    """`text` if it fits the id limit, else its head plus a hash of the whole: still readable,
    still unique per run."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{text[: limit - 11]}-{digest}"


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


class ComputeBackend(ABC):
    """A batch compute service as planning, the operator, trigger and teardown use it, whichever
    it is: what differs between services lives in its module, never in an `if` elsewhere."""

    @classmethod
    @abstractmethod
    def for_run(cls, settings: ForecastSettings, node_settings: dict) -> "ComputeBackend":
        """The backend a run plans with: the settings' ids and limits, the run's node params
        (`vm_size`, `spot_nodes`, `task_slots_per_node`); ComputeError when it cannot serve the run."""

    @abstractmethod
    def config(self) -> dict:
        """JSON-safe arguments that rebuild this backend (in the triggerer, say): ids and settings
        only, credentials stay in the Airflow connections."""

    @abstractmethod
    def task_slots(self, pool_size: int, settings: ForecastSettings) -> int:
        """How many scoring tasks a pool of `pool_size` runs at once; ComputeError when the compute
        cannot hold them."""

    @abstractmethod
    def engine_threads(self, pool_size: int, settings: ForecastSettings) -> int:
        """Threads the compiled engine of each scoring task uses: its machine's cores shared among
        the tasks running there at once."""

    @staticmethod
    def pool_id_for(owner_id: str) -> str:
        """The pool of a run or a backtest."""
        return batch_id(f"pool-{owner_id}")

    @staticmethod
    def job_id(run_id: str, try_number: int) -> str:
        """The compute job of one try of a run's scoring task; a later try follows its run's open
        job if there is one (open_job_ids) and otherwise submits its own, never reusing an id."""
        return f"{batch_id(run_id, ID_LIMIT - 8)}-try{try_number}"

    @staticmethod
    def is_job_of_run(job: str, run_id: str) -> bool:
        """Exactly the run's own job ids: run `x` never matches the jobs of a run `x-try2`."""
        return re.fullmatch(re.escape(batch_id(run_id, ID_LIMIT - 8)) + r"-try\d+", job) is not None

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
        given can write after their summaries are pinned, and close the job (open_job_ids)."""

    @abstractmethod
    def open_job_ids(self) -> list[str]:
        """Ids of the jobs submitted and not yet ended: a scoring task that Airflow retried while
        its job went on (a lost worker, the executor's race) follows that job instead of
        submitting another."""

    @abstractmethod
    def delete_job(self, job_id: str) -> None:
        """Stop the job's running tasks and forget it; no error if it is gone already."""

    @abstractmethod
    def job_ids(self) -> list[str]:
        """Ids of the jobs that exist (teardown picks its run's own from them)."""

    @abstractmethod
    def delete_pool(self, pool_id: str) -> None:
        """Stop everything on the pool and remove it; no error if it is gone already."""
