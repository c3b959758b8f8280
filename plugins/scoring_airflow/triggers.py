"""Deferrable waiting on a scoring job: polls task states, logs each partition as it finishes."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from scoring_airflow.compute import backend_for


class ScoringJobTrigger(BaseTrigger):
    def __init__(self, backend: str, backend_config: dict, job_id: str, poll_interval_s: float):
        super().__init__()
        self.backend = backend
        self.backend_config = backend_config
        self.job_id = job_id
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "scoring_airflow.triggers.ScoringJobTrigger",
            {
                "backend": self.backend,
                "backend_config": self.backend_config,
                "job_id": self.job_id,
                "poll_interval_s": self.poll_interval_s,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        backend = backend_for(self.backend, self.backend_config)
        reported: set[str] = set()
        last_counts = None
        while True:
            try:
                statuses = await asyncio.to_thread(backend.task_statuses, self.job_id)
            except RuntimeError as error:
                yield TriggerEvent({"job_id": self.job_id, "error": str(error), "statuses": []})
                return
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
                yield TriggerEvent({"job_id": self.job_id, "statuses": [s.to_dict() for s in statuses]})
                return
            await asyncio.sleep(self.poll_interval_s)
