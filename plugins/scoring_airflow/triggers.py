"""Deferrable waiting: on a scoring job (polls task states, logs products written as the partitions'
progress files move and each partition as it finishes) and on a week's sales arriving in storage."""

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from retail_scoring import storage
from retail_scoring.data.catalogue import read_sales_through
from retail_scoring.errors import StorageUnavailableError
from retail_scoring.layout import StorageLayout
from scoring_airflow.blob import connect_storage
from scoring_airflow.compute import ComputeError, TaskStatus, backend_for
from scoring_airflow.outages import OutageWatch
from scoring_airflow.task_documents import JobEnded, SalesWaited


class PartitionProgress:
    """Products (or a scenario's shards: `unit`) written per partition, from the progress files the
    scoring tasks write after each chunk; `changes()` returns log lines for what moved since it was
    last asked."""

    def __init__(self, storage_root: str, run_id: str, totals: dict[str, int], unit: str = "products"):
        self.storage_root = storage_root
        self.run_id = run_id
        self.totals = totals
        self.unit = unit
        self._done = dict.fromkeys(totals, 0)
        self._outage = OutageWatch(deadline_s=math.inf)

    def to_dict(self) -> dict:
        return {"storage_root": self.storage_root, "run_id": self.run_id, "totals": self.totals, "unit": self.unit}

    @classmethod
    def from_dict(cls, data: dict) -> "PartitionProgress":
        return cls(data["storage_root"], data["run_id"], data["totals"], data["unit"])

    def changes(self, partitions: list[str]) -> list[str]:
        """Read the progress of `partitions` (those started) and describe what moved."""
        layout = StorageLayout(self.storage_root)
        lines = []
        for partition in partitions:
            if self._done[partition] == self.totals[partition]:
                continue
            url = layout.task_progress(self.run_id, partition)
            try:
                done = (storage.read_json(url) or {"done": 0})["done"]
                self._outage.answered()
            except StorageUnavailableError as error:  # progress is informative: the job goes on
                self._outage.failed(error, "following the scoring job")
                return lines
            except (OSError, ValueError, KeyError):
                continue  # progress is informative only: a file being replaced is read next time
            if done != self._done[partition]:
                self._done[partition] = done
                lines.append(
                    f"{partition}: {done}/{self.totals[partition]} {self.unit} written "
                    f"(overall {sum(self._done.values())}/{sum(self.totals.values())})"
                )
        return lines


class ScoringJobTrigger(BaseTrigger):
    def __init__(
        self,
        backend: str,
        backend_config: dict,
        job_id: str,
        poll_interval_s: float,
        progress: "PartitionProgress | dict | None" = None,
    ):
        super().__init__()
        self.backend = backend
        self.backend_config = backend_config
        self.job_id = job_id
        self.poll_interval_s = poll_interval_s
        self.progress = PartitionProgress.from_dict(progress) if isinstance(progress, dict) else progress

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "scoring_airflow.triggers.ScoringJobTrigger",
            {
                "backend": self.backend,
                "backend_config": self.backend_config,
                "job_id": self.job_id,
                "poll_interval_s": self.poll_interval_s,
                "progress": self.progress.to_dict() if self.progress else None,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        backend = backend_for(self.backend, self.backend_config)
        if self.progress:
            connect_storage()
        reported: set[str] = set()
        restarts = RestartWatch()
        last_counts = None
        while True:
            try:
                statuses = await asyncio.to_thread(backend.task_statuses, self.job_id)
            except ComputeError as error:
                yield TriggerEvent(JobEnded(self.job_id, [], str(error)).to_dict())
                return
            for task_id in restarts.observe(statuses):
                self.log.info("%s restarted by the pool without a failed attempt (node preempted or removed)", task_id)
            statuses = [restarts.annotate(s) for s in statuses]
            if self.progress:
                # finished ones too: a partition's last chunk may land between two polls
                started = [s.task_id for s in statuses if s.state == "running" or s.is_final]
                for line in await asyncio.to_thread(self.progress.changes, started):
                    self.log.info("%s", line)
            finished = [s for s in statuses if s.is_final]
            for status in finished:
                if status.task_id not in reported:
                    reported.add(status.task_id)
                    self.log.info(
                        "%s %s after %d attempt(s)%s (%d/%d partitions finished)",
                        status.task_id,
                        status.state,
                        status.attempts,
                        f": {status.detail}" if status.detail else "",
                        len(reported),
                        len(statuses),
                    )
            counts = Counter(s.state for s in statuses if not s.is_final)
            if counts != last_counts and counts:
                self.log.info("job %s: %d pending, %d running, %d/%d finished", self.job_id,
                              counts["pending"], counts["running"], len(finished), len(statuses))  # fmt: skip
                last_counts = counts
            if len(finished) == len(statuses):
                yield TriggerEvent(JobEnded(self.job_id, statuses).to_dict())
                return
            await backend.changed(self.job_id, self.poll_interval_s)


class RestartWatch:
    """Counts tasks the pool restarted without counting a failed attempt: a spot node preempted, a
    node removed. Batch documents that a preempted node's tasks are rescheduled and that a task's
    `startTime` is its most recent start; it documents `requeueCount` only for requeues a user
    asked for. So a new start time with the same attempt count is what we go by. A restart that
    happens entirely between two polls is not seen."""

    def __init__(self) -> None:
        self._last_start: dict[str, tuple[int, float]] = {}
        self._restarts: Counter[str] = Counter()

    def observe(self, statuses: list[TaskStatus]) -> list[str]:
        """Record this poll's start times; return the tasks restarted since the last poll."""
        restarted = []
        for status in statuses:
            previous = self._last_start.get(status.task_id)
            if status.started_at is None or (previous is not None and previous[1] == status.started_at):
                continue  # the attempt count is compared as it was when a start was first seen:
                # a retry may count before it starts
            if previous is not None and previous[0] == status.attempts:
                self._restarts[status.task_id] += 1
                restarted.append(status.task_id)
            self._last_start[status.task_id] = (status.attempts, status.started_at)
        return restarted

    def annotate(self, status: TaskStatus) -> TaskStatus:
        count = self._restarts[status.task_id]
        if not count:
            return status
        note = f"restarted {count}x by the pool without a failed attempt (node preempted or removed)"
        return replace(status, detail="; ".join(filter(None, [note, status.detail])))


class SalesArrivedTrigger(BaseTrigger):
    """Fires when the data's sales_through marker reaches `week`, or at `deadline` (epoch seconds)
    with what the marker says then."""

    def __init__(self, storage_root: str, week: int, poll_interval_s: float, deadline: float):
        super().__init__()
        self.storage_root = storage_root
        self.week = week
        self.poll_interval_s = poll_interval_s
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "scoring_airflow.triggers.SalesArrivedTrigger",
            {
                "storage_root": self.storage_root,
                "week": self.week,
                "poll_interval_s": self.poll_interval_s,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        connect_storage()
        layout = StorageLayout(self.storage_root)
        outage = OutageWatch(deadline_s=math.inf)
        while True:
            try:
                through = await asyncio.to_thread(read_sales_through, layout)
                outage.answered()
            except StorageUnavailableError as error:  # not known to have arrived; the deadline still holds
                outage.failed(error, "waiting for the week's sales")
                through = None
            arrived = through is not None and through >= self.week
            if arrived or time.time() > self.deadline:
                yield TriggerEvent(SalesWaited(self.week, arrived, through).to_dict())
                return
            await asyncio.sleep(self.poll_interval_s)
