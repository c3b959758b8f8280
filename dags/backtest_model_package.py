"""Backtest model packages: score them at many past origins on one pool, judge them out of sample,
learn their calibrations.

plan -> create_pool (setup) -> score (one mapped task per package and origin, the weekly run's
operator) -> validate (mapped likewise) -> evaluate, and delete_pool (teardown) whatever happened.
docs/backtests.md: params, outputs, applying a calibration.
"""

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, setup, task

from retail_scoring.run.calibration import DEFAULT_HALF_LIFE_WEEKS
from scoring_airflow import backtest, planning, pool_tasks, validation
from scoring_airflow.blob import connect_storage
from scoring_airflow.operators import EvaluateBacktestOperator, ScorePartitionsOperator
from scoring_airflow.params import compute_params, engine_param
from scoring_airflow.settings import ForecastSettings

settings = ForecastSettings()
DOC_MD = """
### Backtest model packages

Scores model packages at many past origins, each point-in-time (it sees only the sales up to its
origin), on one pool, and judges them where they are out of sample (forecast weeks after their
training window): accuracy by origin, horizon step and quantile, forecast and calibrated. Writes a
calibration file per package, which a weekly run applies with its `calibration` param. Results live
under `backtests/` in storage and never touch the published forecast. The `evaluate` task links the
report. `docs/backtests.md` in the project says more.
"""


@dag(
    schedule=None,
    start_date=datetime(2025, 6, 9),
    catchup=False,
    max_active_runs=1,
    tags=["forecast", "backtest", "r-models"],
    default_args={"owner": "retail-forecasting", "retries": 1, "pre_execute": connect_storage},
    doc_md=DOC_MD,
    params={
        "model_versions": Param(
            settings.model_version,
            type=["string", "array"],
            items={"type": "string"},
            section="Backtest",
            description="Model packages under `models/` to backtest, side by side: `gbm-1250x6-w60, ranger-qrf-w60`.",
        ),
        "origins": Param(
            "61-107",
            type=["string", "array"],
            items={"type": "integer"},
            section="Backtest",
            description="Origins to score from, as numbers and ranges: `61-107`. Origins whose forecast weeks a "
            "package was trained on are scored but left out of its comparison and calibration.",
        ),
        "report_origins": Param(
            None,
            type=["null", "string", "array"],
            items={"type": "integer"},
            section="Backtest",
            description="Origins the report's comparison sums, e.g. `94-107`. Empty: every origin where all "
            "packages are out of sample and have a point-in-time calibration.",
        ),
        "half_life_weeks": Param(
            DEFAULT_HALF_LIFE_WEEKS,
            type=["null", "number"],
            exclusiveMinimum=0,
            section="Backtest",
            description="Calibration: how fast older origins' residuals count less (their weight halves every "
            "this many weeks). Empty: all count the same.",
        ),
        "products": Param(
            "1",
            type=["null", "string", "array"],
            items={"type": "integer"},
            section="Backtest",
            description="Products to score at every origin, as numbers and ranges. Empty: every product.",
        ),
        **compute_params(settings),
        **engine_param(settings),
    },
)
def backtest_model_package():
    @task(retries=0)
    def plan() -> list[dict]:
        """Every run's plan (the backtest's own plan is in its folder, backtest.json)."""
        context = get_current_context()
        dag_run = context["dag_run"]
        run_date = dag_run.logical_date or dag_run.run_after
        runs = backtest.plan_backtest(dag_run.dag_id, dag_run.run_id, run_date, dict(context["params"]), settings)[1]
        return [run.to_dict() for run in runs]

    @setup
    @task(retries=0)
    def create_pool(runs: list[dict]) -> str:
        return pool_tasks.create_pool(planning.read_plan(runs[0]))

    @task(retries=0)
    def validate(run_plan: dict) -> None:
        validation.validate_run(planning.read_plan(run_plan))

    @task
    def delete_pool(runs: list[dict]) -> None:
        plans = [planning.read_plan(run) for run in runs]
        pool_tasks.delete_pool(plans[0], [plan.run_id for plan in plans])

    runs = plan()
    pool = create_pool(runs)
    # as the weekly DAG's score task: retried to follow its job, in the pool of write grants
    score = ScorePartitionsOperator.partial(
        task_id="score", settings=settings, retries=2, pool=settings.write_grants_pool
    ).expand(plan=runs)
    validated = validate.expand(run_plan=runs)
    evaluate = EvaluateBacktestOperator(task_id="evaluate", runs=runs, settings=settings)
    pool >> score >> validated >> evaluate >> delete_pool(runs).as_teardown(setups=pool)


backtest_model_package()
