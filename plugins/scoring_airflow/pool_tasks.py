"""The pool's setup and teardown tasks and the log collection: what create_pool, delete_pool and
collect_logs do, for a forecast's run and a scenario's alike."""

import logging

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import RunPlan, ScenarioRunPlan
from scoring_airflow.compute import backend_for
from scoring_airflow.outages import survives_outages
from scoring_airflow.partitions import partition_labels

log = logging.getLogger(__name__)


def create_pool(plan: RunPlan | ScenarioRunPlan) -> str:
    backend_for(plan.compute_backend, plan.backend_config).create_pool(plan.pool_id, plan.pool_size)
    return plan.pool_id


def delete_pool(plan: RunPlan | ScenarioRunPlan, run_ids: list[str] | None = None) -> None:
    """Teardown: the jobs of the run (or of every run in `run_ids`, a backtest's, whose pool `plan`
    names), whatever state they are in, then the pool."""
    backend = backend_for(plan.compute_backend, plan.backend_config)
    for job in backend.job_ids():
        if any(backend.is_job_of_run(job, run_id) for run_id in run_ids or [plan.run_id]):
            backend.delete_job(job)
    backend.delete_pool(plan.pool_id)


@survives_outages
def collect_task_logs(plan: RunPlan | ScenarioRunPlan, cap_bytes: int) -> None:
    """Copy each partition's stdout/stderr into this task's log, the last `cap_bytes` of each."""
    layout = StorageLayout(plan.storage_root)
    for partition in partition_labels(plan):
        for stream in ("stdout", "stderr"):
            url = layout.task_log(plan.run_id, partition, stream)
            try:
                text = storage.read_bytes(url).decode(errors="replace")
            except FileNotFoundError:
                log.info("----- %s %s: none (not run in this run, or never started)", partition, stream)
                continue
            shown = text[-cap_bytes:]
            cut = f", last {len(shown)} of {len(text)} characters" if len(shown) < len(text) else ""
            log.info("----- %s %s (%s%s) -----\n%s", partition, stream, url, cut, shown)
