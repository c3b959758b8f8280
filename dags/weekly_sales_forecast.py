"""Weekly sales forecast: score the R gbm models for every product on a fixed-size pool.

wait_for_sales -> plan -> create_pool (setup) -> score -> collect_logs -> validate -> publish +
report, and delete_pool (teardown) whatever happened. docs/operating.md: params, backfills, reforecasts.
"""

from datetime import datetime

from airflow.sdk import Asset, Param, dag, get_current_context, task

from retail_scoring.layout import IDENTIFIER
from scoring_airflow import planning
from scoring_airflow.blob import connect_storage
from scoring_airflow.operators import WaitForSalesOperator
from scoring_airflow.params import compute_params, engine_param
from scoring_airflow.scoring_chain import scoring_chain
from scoring_airflow.settings import ForecastSettings

settings = ForecastSettings()
DOC_MD = """
### Weekly sales forecast

Forecasts next quarter's sales (13 weeks; quantiles 5/25/50/75/95) for every SKU in every store
with the R models of a model package, every Monday 06:00 UTC:
`wait_for_sales` -> `plan` -> `create_pool` -> `score` (one task per partition) -> `collect_logs`
-> `validate` -> `publish` + `report` -> `delete_pool` (whatever happened).

How to run a challenger, a reforecast, a backfill or a rerun, what each param does and where the
outputs are: `docs/operating.md` in the project. Two things the UI does not say: Airflow 3.3's
backfill dialog sends the params you set only with **Override parameters on existing runs**
ticked, and triggering a paused DAG with the default "unpause" also starts its latest scheduled
run. The current forecast is `current.json` in storage (`python -m scoring_airflow.cli summary`);
the `report` task's links open the report and the forecasts.
"""
# Downstream DAGs schedule on a new forecast with `schedule=[Asset("current_sales_forecast")]`; each
# event's extra gives the origin, the run, how many products, whether it moved the current forecast,
# and the index to read. Named only (no storage URI), so it stays one asset wherever storage lives.
CURRENT_FORECAST = Asset("current_sales_forecast")


@dag(
    schedule="0 6 * * 1",  # Mondays 06:00 UTC; each run first waits for last week's sales
    start_date=datetime(2025, 6, 9),  # its run forecasts from week 31, the first with 5 weeks of history everywhere
    catchup=False,
    max_active_runs=4,
    tags=["forecast", "r-models", "azure-batch"],
    default_args={"owner": "retail-forecasting", "retries": 1, "pre_execute": connect_storage},
    doc_md=DOC_MD,
    params={
        # Run scope
        "products": Param(
            None,
            type=["null", "string", "array"],
            items={"type": "integer"},
            section="Run scope",
            description="Products to score, typed as numbers and ranges: `3, 17, 40-45`. Empty: every product. "
            "A reforecast of a few products replaces just those in the current forecast.",
        ),
        "origin_week": Param(
            None,
            type=["null", "integer"],
            section="Run scope",
            description="Dataset week to forecast from (its sales are the last the models see). Empty: the week "
            "before the logical date. Valid: weeks with 5 weeks of history in every series and 13 planned weeks "
            "after them (31..107 for the demo data); the plan task names the range of your data.",
        ),
        "model_version": Param(
            settings.model_version,
            type="string",
            pattern=f"^{IDENTIFIER.pattern}$",
            section="Run scope",
            description="Model package under `models/` in storage (letters, digits, `.`, `_`, `-`): the "
            "built-in gbm set or your own (README: Bring your own model).",
        ),
        "publish": Param(
            True,
            type="boolean",
            section="Run scope",
            description="Untick for a challenger run: it scores, validates and reports (the report compares "
            "it with the other packages run at its origin) but does not change the current forecast.",
        ),
        "calibration": Param(
            None,
            type=["null", "string"],
            section="Run scope",
            description="Calibrate the forecast's quantiles with what a backtest learned: the backtest's id (its "
            "report names it; `<id>:<model version>` when it calibrated several packages). Empty: the package's "
            "own quantiles. Refused for origins before the calibration's last actuals; what the package forecast "
            "is kept beside the calibrated forecast.",
        ),
        "force": Param(
            False,
            type="boolean",
            section="Run scope",
            description="Only when this run is cleared and runs again: also rescore partitions whose valid "
            "forecasts exist. A new run always scores every product it plans.",
        ),
        **compute_params(settings),
        **engine_param(settings),
    },
)
def weekly_sales_forecast():
    @task(retries=0)  # planning errors (origin outside the data, unknown products) do not heal
    def plan() -> dict:
        context = get_current_context()
        dag_run = context["dag_run"]
        run_date = dag_run.logical_date or dag_run.run_after
        return planning.plan_run(dag_run.dag_id, dag_run.run_id, run_date, dict(context["params"]), settings).to_dict()

    run_plan = plan()
    WaitForSalesOperator(task_id="wait_for_sales", settings=settings, retries=0) >> run_plan
    scoring_chain("forecast", run_plan, CURRENT_FORECAST, settings)


weekly_sales_forecast()
