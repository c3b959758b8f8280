"""The scoring operator: one job per DAG-run try, one task per partition, deferred while it runs."""

import time
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from retail_scoring import storage
from retail_scoring.data.catalogue import read_sales_through
from retail_scoring.layout import StorageLayout
from scoring_airflow import backtest
from scoring_airflow.compute import ComputeBackend, ScoringTask, TaskStatus, backend_for
from scoring_airflow.links import BacktestReportLink, BatchAccountLink, ForecastFilesLink, ForecastReportLink
from scoring_airflow.outages import through_outages
from scoring_airflow.partitions import partition_labels, pin_summaries
from scoring_airflow.planning import logical_date_for_origin, origin_for_logical_date, read_plan
from scoring_airflow.run_kinds import RUN_KINDS, RunKind, ScoringRun
from scoring_airflow.settings import ForecastSettings
from scoring_airflow.task_documents import JobEnded, SalesWaited, ScoreResult
from scoring_airflow.triggers import PartitionProgress, SalesArrivedTrigger, ScoringJobTrigger

STDERR_TAIL_CHARS = 600


class RunOperator(BaseOperator):
    """An operator on one planned run (`plan`: the plan task's XCom) of the kind `run_kind` says
    (run_kinds.RUN_KINDS): a sales forecast's products or a scenario's shards."""

    template_fields: tuple[str, ...] = ("plan",)

    def __init__(
        self, *, plan: Any, run_kind: RunKind = "forecast", settings: ForecastSettings | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        if run_kind not in RUN_KINDS:
            raise ValueError(f"run_kind must be one of {', '.join(RUN_KINDS)}, got {run_kind!r}")
        self.plan = plan
        self.run_kind = run_kind
        self.settings = settings or ForecastSettings()

    @property
    def scoring_run(self) -> ScoringRun:
        """The rendered plan read afresh (an operator object may serve several runs)."""
        return RUN_KINDS[self.run_kind](self.plan)


class ScorePartitionsOperator(RunOperator):
    """Fan out one scoring task per partition of the run's plan to the pool, as one job, and wait;
    when the job ends, pin the partitions' summaries (partitions.pin_summaries).

    Partitions whose valid outputs exist already are skipped unless the plan says `force`, so a
    rerun after a failure scores only what is missing.
    """

    operator_extra_links = (ForecastFilesLink(), BatchAccountLink())

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._job_id: str | None = None

    def _backend(self) -> ComputeBackend:
        plan = self.scoring_run.plan
        return backend_for(plan.compute_backend, plan.backend_config)

    def execute(self, context: Context) -> dict:
        run = self.scoring_run
        plan, layout = run.plan, run.layout
        backend = self._backend()
        partitions = through_outages(run.partitions, "planning the scoring job")
        open_jobs = [job for job in backend.open_job_ids() if backend.is_job_of_run(job, plan.run_id)]
        if open_jobs:  # an earlier try lost its worker, or Airflow marked it failed while its job went on
            self._job_id = open_jobs[-1]
            followed = [status.task_id for status in backend.task_statuses(self._job_id)]
            self.log.info("job %s of an earlier try is still open: following its %d partition(s)", self._job_id,
                          len(followed))  # fmt: skip
            self._follow(followed, partitions)
        problems = {} if plan.force else through_outages(run.problems, "the rerun skip")
        tasks = []
        for partition, items in partitions.items():
            if partition in problems and not problems[partition]:
                self.log.info("%s: valid outputs exist for its %d %s, skipped", partition, len(items), run.unit)
                continue
            if problems.get(partition):
                first = next(iter(problems[partition].values()))[0]
                self.log.info("%s: scored (again): %s", partition, first)
            tasks.append(
                ScoringTask(
                    task_id=partition,
                    arguments=run.arguments(partition),
                    stdout_url=layout.task_log(plan.run_id, partition, "stdout"),
                    stderr_url=layout.task_log(plan.run_id, partition, "stderr"),
                    writes=run.writes(partition),
                )
            )
        if not tasks:
            self.log.info("every partition has valid outputs; nothing to score")
            return ScoreResult([], list(partitions), []).to_dict()
        self._job_id = backend.job_id(plan.run_id, context["ti"].try_number)
        backend.submit_job(plan.pool_id, self._job_id, tasks, self.settings.task_retries, self.settings.task_timeout_s)
        self.log.info("job %s submitted: %d partition(s) on pool %s", self._job_id, len(tasks), plan.pool_id)
        self._follow([task.task_id for task in tasks], partitions)

    def _follow(self, scored: list[str], partitions: dict[str, list[int]]) -> None:
        """Defer until the job's tasks have all ended."""
        run = self.scoring_run
        self.defer(
            trigger=ScoringJobTrigger(
                run.plan.compute_backend,
                run.plan.backend_config,
                self._job_id,
                self.settings.poll_interval_s,
                progress=PartitionProgress(
                    run.plan.storage_root,
                    run.plan.run_id,
                    {partition: len(partitions[partition]) for partition in scored},
                    run.unit,
                ),
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict) -> dict:
        """Failed partitions and a job that could not be followed fail the task without a retry:
        Batch retried each partition already, and a lost pool or job does not come back (the job
        is ended, so clearing the task scores in a new one)."""
        ended = JobEnded.from_dict(event, "the scoring job trigger's event")
        if ended.error:
            through_outages(lambda: self._backend().end_job(ended.job_id), "ending the scoring job")
            raise AirflowFailException(f"scoring job {ended.job_id} could not be followed: {ended.error}")
        run = self.scoring_run
        failed = [s for s in ended.statuses if s.state != "succeeded"]

        def end_and_pin() -> str:
            self._backend().end_job(ended.job_id)  # no task's grant writes after the pins below
            pin_summaries(run.layout, run.plan.run_id, [s.task_id for s in ended.statuses])
            return "\n".join(self._describe_failure(run, status) for status in failed)

        failures = through_outages(end_and_pin, "ending the scoring job")
        if failed:
            raise AirflowFailException(f"{len(failed)} of {len(ended.statuses)} partitions failed:\n{failures}")
        scored = [s.task_id for s in ended.statuses]
        self.log.info("job %s: all %d partitions succeeded", ended.job_id, len(scored))
        skipped = [p for p in partition_labels(run.plan) if p not in scored]
        return ScoreResult(scored, skipped, ended.statuses).to_dict()

    def _describe_failure(self, run: ScoringRun, status: TaskStatus) -> str:
        stderr_url = run.layout.task_log(run.plan.run_id, status.task_id, "stderr")
        try:
            tail = storage.read_bytes(stderr_url).decode(errors="replace")[-STDERR_TAIL_CHARS:]
        except FileNotFoundError:
            tail = "(no stderr uploaded)"
        return (
            f"- {status.task_id} ({run.describe(status.task_id)}): "
            f"exit code {status.exit_code} after {status.attempts} attempt(s), {status.detail}; "
            f"stderr tail: {tail.strip()}"
        )

    def on_kill(self) -> None:
        if self._job_id:
            self._backend().delete_job(self._job_id)


class WriteReportOperator(RunOperator):
    """Write the run's report (a forecast's: figure, timings, cost, accuracy), linked from the task
    with the run's files where the outputs app serves them."""

    template_fields = ("plan", "score_result")
    operator_extra_links = (ForecastReportLink(), ForecastFilesLink())

    def __init__(self, *, score_result: Any, **kwargs):
        super().__init__(**kwargs)
        self.score_result = score_result

    def execute(self, context: Context) -> str:
        return self.scoring_run.write_report(self.score_result, self.settings)


class EvaluateBacktestOperator(BaseOperator):
    """Judge a backtest's runs from their summaries, write its calibration files and its report,
    linked from the task."""

    template_fields = ("runs",)
    operator_extra_links = (BacktestReportLink(),)

    def __init__(self, *, runs: Any, settings: ForecastSettings | None = None, **kwargs):
        super().__init__(**kwargs)
        self.runs = runs
        self.settings = settings or ForecastSettings()

    def execute(self, context: Context) -> str:
        plans = [read_plan(plan) for plan in self.runs]
        return backtest.evaluate_backtest(backtest.read_backtest(plans[0]), plans, self.settings)


class WaitForSalesOperator(BaseOperator):
    """Wait, deferred, until the sales of the week before the logical date have arrived (the data's
    `sales_through` marker), so a Monday run never forecasts from a week still missing; at the
    deadline fail saying which week is missing. Backfills of past weeks pass at once; a run given
    an explicit `origin_week` does not wait (planning checks that week against the data)."""

    def __init__(self, *, settings: ForecastSettings | None = None, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings or ForecastSettings()

    def execute(self, context: Context) -> int | None:
        if context["params"].get("origin_week") is not None:
            self.log.info("origin_week %s given: nothing to wait for", context["params"]["origin_week"])
            return None
        dag_run = context["dag_run"]
        week = origin_for_logical_date(dag_run.logical_date or dag_run.run_after, self.settings.week0_monday)
        layout = StorageLayout(self.settings.storage_root)
        through = read_sales_through(layout)
        if through is not None and through >= week:
            self.log.info(
                "sales through week %d are in (%s); the run forecasts from week %d",
                through,
                layout.sales_through(),
                week,
            )
            return week
        self.log.info("waiting for the sales of week %d (%s says %s)", week, layout.sales_through(), through)
        self.defer(
            trigger=SalesArrivedTrigger(
                self.settings.storage_root,
                week,
                self.settings.sales_poll_interval_s,
                time.time() + self.settings.sales_wait_timeout_s,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict) -> int:
        waited = SalesWaited.from_dict(event, "the sales trigger's event")
        week = waited.week
        if not waited.arrived:
            monday = logical_date_for_origin(week - 1, self.settings.week0_monday)
            raise AirflowException(
                f"the sales of week {week} (the week of {monday.isoformat()}) have not arrived within "
                f"{self.settings.sales_wait_timeout_s:.0f} s: "
                f"{StorageLayout(self.settings.storage_root).sales_through()} says sales are in through week "
                f"{waited.sales_through}. Land the week's sales (retail-scoring ingest-week in the demo), "
                "then clear this task"
            )
        self.log.info("the sales of week %d have arrived", week)
        return week
