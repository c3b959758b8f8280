from scoring_airflow.planning import origin_for_logical_date
from scoring_airflow.settings import ForecastSettings
from tests.airflow.conftest import load_dag


def test_dag_parses_with_schedule_owner_and_tags(airflow_db):
    dag = load_dag()
    assert dag.timetable.expression == "0 6 * * 1"
    assert dag.catchup is False
    assert {"forecast", "r-models"} <= set(dag.tags)
    assert all(task.owner == "retail-forecasting" for task in dag.tasks)


def test_pool_is_a_setup_and_its_deletion_a_teardown_after_everything(airflow_db):
    dag = load_dag()
    create, delete = dag.get_task("create_pool"), dag.get_task("delete_pool")
    assert create.is_setup and delete.is_teardown
    assert "create_pool" in delete.upstream_task_ids
    assert dag.get_task("score").upstream_task_ids == {"plan", "create_pool"}
    assert {"score", "collect_logs"} <= dag.get_task("validate").upstream_task_ids
    assert {"publish", "report"} <= delete.upstream_task_ids
    assert dag.get_task("report").upstream_task_ids == {"plan", "validate", "score"}
    assert dag.get_task("publish").upstream_task_ids == {"plan", "validate"}, "only a validated run is published"
    assert dag.get_task("publish").trigger_rule == "all_success"
    assert dag.get_task("collect_logs").trigger_rule == "all_done"


def test_every_scoring_task_runs_in_the_write_grants_pool_and_is_retried(airflow_db):
    """Both DAGs' score tasks (the backtest's mapped) hold an Airflow pool slot while deferred: the
    pool's slots are a container's stored access policies, one per job's write grants. Retried, so
    a try Airflow marked failed while its job went on follows that job."""
    from airflow.models.pool import Pool

    for dag_id in ("weekly_sales_forecast", "backtest_model_package", "scenario_customer_churn"):
        score = load_dag(dag_id).get_task("score")
        assert (score.pool, score.retries) == ("forecast_write_grants", 2), dag_id
    pool = Pool.get_pool("forecast_write_grants")
    assert (pool.slots, pool.include_deferred) == (5, True)


def test_params_offer_the_reforecast_knobs(airflow_db):
    params = load_dag().params
    assert set(params) == {
        "products",
        "origin_week",
        "pool_size",
        "partitioning",
        "engine",
        "model_version",
        "compute_backend",
        "vm_size",
        "spot_nodes",
        "task_slots_per_node",
        "force",
        "publish",
        "calibration",
    }
    assert params["force"] is False
    assert params["publish"] is True
    assert params["partitioning"] == "per_node"
    assert params["engine"] == "auto"


def test_the_ui_explains_the_dag_and_every_param(airflow_db):
    dag = load_dag()
    assert "Override parameters on existing runs" in dag.doc_md and "current.json" in dag.doc_md
    sections = {}
    for name in dag.params:
        param = dag.params.get_param(name)
        assert len(param.description or "") > 20, f"{name} has no description"
        sections.setdefault(param.schema["section"], []).append(name)
    assert sections == {
        "Run scope": ["products", "origin_week", "model_version", "publish", "calibration", "force"],
        "Compute": ["compute_backend", "pool_size", "partitioning", "task_slots_per_node", "engine"],
        "Azure Batch": ["vm_size", "spot_nodes"],
    }


def test_every_run_first_waits_for_its_weeks_sales(airflow_db):
    dag = load_dag()
    assert dag.get_task("plan").upstream_task_ids == {"wait_for_sales"}
    assert dag.get_task("wait_for_sales").retries == 0


def test_the_first_scheduled_run_forecasts_from_the_first_valid_origin(airflow_db, reference_series):
    """start_date and the calendar agree: the DAG's first run is the first week every series has
    the 5 weeks of history the lags need (week 31 of the reference data)."""
    first_valid = int(reference_series.groupby(["sku", "store"])["week"].min().max()) + 5 - 1
    week0 = ForecastSettings().week0_monday
    assert origin_for_logical_date(load_dag().start_date, week0) == first_valid == 31


def test_the_backtest_dag_shares_one_pool_and_explains_every_param(airflow_db):
    dag = load_dag("backtest_model_package")
    create, delete = dag.get_task("create_pool"), dag.get_task("delete_pool")
    assert create.is_setup and delete.is_teardown
    assert dag.get_task("score").upstream_task_ids == {"plan", "create_pool"}
    assert dag.get_task("evaluate").upstream_task_ids == {"plan", "validate"}
    assert "evaluate" in delete.upstream_task_ids
    assert dag.schedule is None and "backtest" in dag.tags
    for name in dag.params:
        assert len(dag.params.get_param(name).description or "") > 20, f"{name} has no description"


def test_a_scenario_dag_is_built_from_its_document_with_the_weekly_runs_chain(airflow_db):
    dag = load_dag("scenario_customer_churn")
    assert dag.timetable.expression == "0 0 1 * *", "the document's @monthly"
    assert {"scenario", "classification"} <= set(dag.tags)
    assert all(task.owner == "customer-analytics" for task in dag.tasks)
    create, delete = dag.get_task("create_pool"), dag.get_task("delete_pool")
    assert create.is_setup and delete.is_teardown and {"publish", "report"} <= delete.upstream_task_ids
    assert dag.get_task("plan").upstream_task_ids == {"wait_for_data"}, "the document's ready marker"
    assert dag.get_task("score").run_kind == "scenario"
    assert dag.get_task("validate").trigger_rule == "all_done", "a failed score task's bad shards are named"
    assert dag.get_task("publish").upstream_task_ids == {"plan", "validate"}
    assert dag.get_task("publish").trigger_rule == "all_success", "only a validated run is published"
    assert dag.params["model_version"] == "glm-churn-v1" and "engine" not in dag.params
