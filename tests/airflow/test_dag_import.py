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
    assert dag.get_task("score").retries == 0


def test_params_offer_the_reforecast_knobs(airflow_db):
    params = load_dag().params
    assert set(params) == {
        "products",
        "origin_week",
        "pool_size",
        "partitioning",
        "model_version",
        "compute_backend",
        "vm_size",
        "spot_nodes",
        "task_slots_per_node",
        "force",
    }
    assert params["force"] is False
    assert params["partitioning"] == "per_node"
