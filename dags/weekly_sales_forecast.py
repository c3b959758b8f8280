"""Weekly sales forecast: score the R gbm models for every product on a fixed-size pool.

plan -> create_pool (setup) -> score -> collect_logs -> validate -> publish + report, and
delete_pool (teardown) whatever happened. See the README for params, backfills and reforecasts.
"""

from datetime import datetime

from airflow.sdk import Asset, Param, dag, get_current_context, setup, task

from scoring_airflow import report, run_steps
from scoring_airflow.operators import ScorePartitionsOperator
from scoring_airflow.settings import MAX_POOL_SIZE, ForecastSettings

settings = ForecastSettings()
# Downstream DAGs schedule on a new forecast with `schedule=[Asset("current_sales_forecast")]`; each
# event's extra gives the origin, the run, how many products, whether it moved the current forecast,
# and the index to read. Named only (no storage URI), so it stays one asset wherever storage lives.
CURRENT_FORECAST = Asset("current_sales_forecast")


@dag(
    schedule="0 6 * * 1",  # Mondays 06:00 UTC, once last week's sales are in
    start_date=datetime(2025, 6, 2),
    catchup=False,
    max_active_runs=4,
    tags=["forecast", "r-models", "azure-batch"],
    default_args={"owner": "retail-forecasting", "retries": 1, "pre_execute": run_steps.connect_storage},
    params={
        "products": Param(
            None,
            type=["null", "array"],
            items={"type": "integer"},
            description="Products to score; empty means all (a reforecast can pick a few).",
        ),
        "origin_week": Param(
            None,
            type=["null", "integer"],
            description="Dataset week to forecast from; empty means from the logical date.",
        ),
        "pool_size": Param(settings.pool_size, type="integer", minimum=1, maximum=MAX_POOL_SIZE),
        "partitioning": Param("per_node", enum=["per_node", "per_product"]),
        "model_version": Param(settings.model_version, type="string"),
        "compute_backend": Param(settings.compute_backend, enum=["local", "azure_batch"]),
        "vm_size": Param(settings.vm_size, type="string", description="Azure Batch node VM size."),
        "spot_nodes": Param(
            settings.spot_nodes, type="integer", minimum=0, description="How many of the pool's nodes are spot."
        ),
        "task_slots_per_node": Param(settings.task_slots_per_node, type="integer", minimum=1, maximum=256),
        "force": Param(False, type="boolean", description="Rescore partitions whose valid forecasts exist."),
    },
)
def weekly_sales_forecast():
    @task(retries=0)  # planning errors (origin outside the data, unknown products) do not heal
    def plan() -> dict:
        context = get_current_context()
        dag_run = context["dag_run"]
        run_date = dag_run.logical_date or dag_run.run_after
        return run_steps.plan_run(dag_run.dag_id, dag_run.run_id, run_date, dict(context["params"]), settings)

    @setup
    @task(retries=0)  # quota, image or node-deadline failures do not heal in minutes; clear to retry
    def create_pool(run_plan: dict) -> str:
        return run_steps.create_pool(run_plan)

    @task(trigger_rule="all_done")
    def collect_logs(run_plan: dict) -> None:
        run_steps.collect_task_logs(run_plan, settings.log_cap_bytes)

    @task(retries=0)
    def validate(run_plan: dict) -> dict:
        return run_steps.validate_run(run_plan)

    @task(outlets=[CURRENT_FORECAST])
    def publish(run_plan: dict) -> dict:
        published = run_steps.publish_run(run_plan)
        get_current_context()["outlet_events"][CURRENT_FORECAST].extra = published
        return published

    @task(task_id="report")
    def write_report(run_plan: dict, score_result: dict) -> str:
        return report.write_report(run_plan, score_result, settings)

    @task
    def delete_pool(run_plan: dict) -> None:
        run_steps.delete_pool(run_plan)

    run_plan = plan()
    pool = create_pool(run_plan)
    score = ScorePartitionsOperator(task_id="score", plan=run_plan, settings=settings, retries=0)
    logs = collect_logs(run_plan)
    validated = validate(run_plan)
    published = publish(run_plan)
    run_report = write_report(run_plan, score.output)
    pool >> score >> logs
    [score, logs] >> validated >> [published, run_report] >> delete_pool(run_plan).as_teardown(setups=pool)


weekly_sales_forecast()
