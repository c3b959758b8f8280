"""One DAG per scenario, built from its document: a team's DAG file is a few lines naming it.

    from scoring_airflow.scenario_dag import scenario_dag
    scenario_dag(Path(__file__).parent / "customer_churn.json", model_version="glm-churn-v1", owner="crm")

wait_for_data (when the scenario declares a ready marker) -> plan -> the scoring chain
(scoring_chain.py: create_pool, score, collect_logs, validate, publish when the scenario
publishes, report, delete_pool): the weekly forecast's chain and guarantees, on the scenario's
table."""

from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Asset, Param, dag, get_current_context, task

from retail_scoring import storage
from retail_scoring.layout import IDENTIFIER
from scoring_airflow import scenario_planning
from scoring_airflow.blob import connect_storage
from scoring_airflow.params import compute_params
from scoring_airflow.scoring_chain import scoring_chain
from scoring_airflow.settings import ForecastSettings

READY_POKE_S = 300
READY_TIMEOUT_S = 6 * 3600


def scenario_dag(
    scenario_file: str | Path,
    model_version: str,
    owner: str = "scoring",
    start_date: datetime = datetime(2025, 1, 1),
    settings: ForecastSettings | None = None,
) -> DAG:
    """The DAG `scenario_<name>` of the scenario in `scenario_file` (a DAG file gives it relative
    to itself), scoring with `model_version` unless a run's params name another package. The
    document is read here, at parse time, so a broken scenario is a DAG import error naming it."""
    settings = settings or ForecastSettings()
    path = Path(scenario_file)
    scenario, _ = scenario_planning.read_scenario_file(path)

    @dag(
        dag_id=f"scenario_{scenario.name}",
        schedule=scenario.schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=4,
        tags=["scenario", scenario.profile, "r-models"],
        default_args={"owner": owner, "retries": 1, "pre_execute": connect_storage},
        doc_md=f"### Scenario {scenario.name}\n\nScores `{path.name}` ({scenario.profile}) with an r-table "
        "package: docs/scenarios.md in the project says what each field and param does.",
        params={
            "as_of": Param(
                None,
                type=["null", "string"],
                format="date",
                section="Run scope",
                description="The date the run scores (`{as_of}` in the scenario's URLs). Empty: the day before "
                "the logical date.",
            ),
            "model_version": Param(
                model_version,
                type="string",
                pattern=f"^{IDENTIFIER.pattern}$",
                section="Run scope",
                description="The r-table model package under `models/` in storage.",
            ),
            "publish": Param(
                True,
                type="boolean",
                section="Run scope",
                description="Untick for a challenger: it scores, validates and reports beside the champion's "
                "metrics over the same rows, and publishes nothing.",
            ),
            "force": Param(
                False,
                type="boolean",
                section="Run scope",
                description="Only when a cleared run runs again: also rescore partitions whose valid outputs exist.",
            ),
            **compute_params(settings),
        },
    )
    def scenario_run():
        @task(retries=0)  # a scenario or package that does not fit does not heal
        def plan() -> dict:
            context = get_current_context()
            dag_run = context["dag_run"]
            run_date = dag_run.logical_date or dag_run.run_after
            params = dict(context["params"])
            return scenario_planning.plan_scenario_run(
                dag_run.dag_id, dag_run.run_id, run_date, params, settings, path
            ).to_dict()

        run_plan = plan()
        if scenario.ready_marker:

            @task.sensor(poke_interval=READY_POKE_S, timeout=READY_TIMEOUT_S, mode="reschedule")
            def wait_for_data() -> bool:
                """The scenario's ready marker for the run's as-of date is in storage."""
                context = get_current_context()
                dag_run = context["dag_run"]
                as_of = scenario_planning.run_as_of(dict(context["params"]), dag_run.logical_date or dag_run.run_after)
                marker = scenario.for_run(settings.storage_root, as_of).ready_marker
                try:  # read, not exists(): adlfs' exists() answers False when storage does not answer
                    storage.read_bytes(marker)
                except FileNotFoundError:
                    return False
                return True

            wait_for_data() >> run_plan
        published = Asset(f"scenario_{scenario.name}_current") if scenario.publishing else None
        scoring_chain("scenario", run_plan, published, settings)

    return scenario_run()
