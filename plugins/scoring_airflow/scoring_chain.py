"""The tasks every scoring DAG runs after its plan, whatever it scores: create_pool (setup) ->
score (one task per partition) -> collect_logs -> validate -> publish + report -> delete_pool
(teardown, whatever happened). A DAG brings its waiting and plan tasks and names its run kind
(run_kinds.RUN_KINDS), which does the kind's own validation, publishing and report; the chain and
its guarantees are written once, for the weekly forecast and every scenario."""

from airflow.sdk import Asset, XComArg, get_current_context, setup, task
from airflow.sdk.exceptions import AirflowSkipException

from scoring_airflow import pool_tasks
from scoring_airflow.operators import ScorePartitionsOperator, WriteReportOperator
from scoring_airflow.run_kinds import RUN_KINDS, RunKind
from scoring_airflow.settings import ForecastSettings


def scoring_chain(run_kind: RunKind, run_plan: XComArg, published: Asset | None, settings: ForecastSettings) -> None:
    """The chain after `run_plan` (the plan task's output), in the DAG being defined. `published`:
    the asset a publish updates (its event's extra says what), None: the run publishes nothing."""
    kind = RUN_KINDS[run_kind]

    @setup
    @task(retries=0)  # quota, image or node-deadline failures do not heal in minutes; clear to retry
    def create_pool(run_plan: dict) -> str:
        return pool_tasks.create_pool(kind.read(run_plan))

    @task(trigger_rule="all_done")
    def collect_logs(run_plan: dict) -> None:
        pool_tasks.collect_task_logs(kind.read(run_plan), settings.log_cap_bytes)

    @task(retries=0, trigger_rule="all_done" if kind.validates_failed_scoring else "all_success")
    def validate(run_plan: dict) -> dict:
        return kind(run_plan).validate()

    @task
    def delete_pool(run_plan: dict) -> None:
        pool_tasks.delete_pool(kind.read(run_plan))

    pool = create_pool(run_plan)
    # retried: a try that Airflow lost or marked failed while its job went on follows that job
    # (failed partitions fail without a retry); the pool bounds the jobs holding write grants at once
    score = ScorePartitionsOperator(
        task_id="score", plan=run_plan, run_kind=run_kind, settings=settings, retries=2,
        pool=settings.write_grants_pool,
    )  # fmt: skip
    logs = collect_logs(run_plan)
    validated = validate(run_plan)
    ends = [
        WriteReportOperator(
            task_id="report", plan=run_plan, run_kind=run_kind, score_result=score.output, settings=settings
        )
    ]
    if published:

        @task(outlets=[published])
        def publish(run_plan: dict) -> dict:
            run = kind(run_plan)
            if not run.plan.publish:
                raise AirflowSkipException("publish is off for this run (a challenger): what is current is unchanged")
            result = run.publish()
            get_current_context()["outlet_events"][published].extra = result
            return result

        ends.append(publish(run_plan))
    pool >> score >> logs
    [score, logs] >> validated >> ends >> delete_pool(run_plan).as_teardown(setups=pool)
