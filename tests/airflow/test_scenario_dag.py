"""The churn scenario's DAG through dag.test(): local pool processes running the real worker, real
R (glm, ranger) on modeldata's real customers; published per customer by snapshot, challengers
judged beside the champion, and a bad shard kept from publishing anything."""

import json
from datetime import UTC, date, datetime, time, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from retail_scoring.scenarios.churn_data import (
    TRAINED_ON,
    load_mlc_churn,
    seal,
    snapshot_customers,
    train_glm,
    train_ranger,
    write_by_state,
)
from retail_scoring.scenarios.document import Scenario
from scoring_airflow.planning import storage_run_id
from tests.airflow.conftest import load_dag
from tests.churn import SCENARIO_FILE, SNAPSHOT, churn_url
from tests.conftest import local_path

CUSTOMERS = 5000
DECEMBER, OCTOBER = date(2026, 12, 31), date(2026, 10, 31)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario.from_json(SCENARIO_FILE.read_bytes(), str(SCENARIO_FILE))


@pytest.fixture(scope="module")
def base() -> pa.Table:
    return load_mlc_churn()


@pytest.fixture(scope="module")
def packages(tmp_path_factory, scenario) -> dict:
    folder = tmp_path_factory.mktemp("packages")
    return {
        "glm-churn-v1": seal(scenario, train_glm(folder / "glm-churn-v1"), "glm-churn-v1"),
        "ranger-churn-v1": seal(scenario, train_ranger(folder / "ranger-churn-v1"), "ranger-churn-v1"),
    }


@pytest.fixture
def churn_storage(airflow_db, tmp_path, monkeypatch, packages) -> StorageLayout:
    layout = StorageLayout(f"file://{tmp_path}/storage")
    monkeypatch.setenv("FORECAST_STORAGE_ROOT", layout.root)
    monkeypatch.setenv("FORECAST_POOL_SIZE", "2")
    for folder in packages.values():
        upload_package(folder, layout)
    return layout


def land(layout: StorageLayout, base: pa.Table, snapshot: date, customers: int = CUSTOMERS, shift: int = 0) -> None:
    """A snapshot's customers (churn_data.snapshot_customers) and its ready marker."""
    write_by_state(snapshot_customers(base, customers, snapshot, shift), churn_url(layout.root, snapshot), 60)
    storage.write_bytes_atomic(f"{churn_url(layout.root, snapshot)}/_READY", b"")


def run_churn(snapshot: date, days_after: int = 1, **conf):
    """A run of the monthly DAG `days_after` the snapshot's date (scoring the day before unless
    `as_of` says otherwise): a run on another day is another DAG run."""
    logical = datetime.combine(snapshot + timedelta(days=days_after), time(), UTC)
    return load_dag("scenario_customer_churn").test(logical_date=logical, run_after=logical, run_conf=conf)


def current_table(layout: StorageLayout) -> pa.Table:
    pointer = json.loads(storage.read_bytes(layout.scenario_current("customer_churn")))
    return pq.read_table(pa.BufferReader(storage.read_bytes(pointer["table"]))).sort_by("customer_id")


def test_monthly_snapshots_publish_each_customers_newest_score_and_a_backfill_changes_nothing(churn_storage, base):
    layout = churn_storage
    land(layout, base, SNAPSHOT)
    november = run_churn(SNAPSHOT)
    assert november.state == "success"
    run_id = storage_run_id(november.dag_id, november.run_id)
    current = current_table(layout)
    assert current["customer_id"].to_pylist() == list(range(1, CUSTOMERS + 1))
    assert set(current["snapshot"].to_pylist()) == {SNAPSHOT}
    assert pc.all(pc.less_equal(current["p_churn"], 1)).as_py() and pc.all(pc.greater_equal(current["p_churn"], 0))
    validation = json.loads(storage.read_bytes(layout.validation_report(run_id)))
    assert validation["valid"] and validation["checked"] == 51, "a shard per state"

    land(layout, base, DECEMBER, customers=3000, shift=1)
    assert run_churn(DECEMBER).state == "success"
    after_december = current_table(layout)
    snapshots = after_december["snapshot"].to_pylist()
    assert snapshots == [DECEMBER] * 3000 + [SNAPSHOT] * 2000, "December's customers newer, the others kept"
    assert after_december["p_churn"][:3000] != current["p_churn"][:3000], "December's scores are December's"
    assert after_december.slice(3000) == current.slice(3000)

    land(layout, base, OCTOBER)
    pointer = json.loads(storage.read_bytes(layout.scenario_current("customer_churn")))
    assert run_churn(OCTOBER).state == "success"  # a backfill of an older month
    assert current_table(layout) == after_december, "every customer has a newer score: October changes none"
    assert json.loads(storage.read_bytes(layout.scenario_current("customer_churn")))["table"] == pointer["table"]


def test_a_challenger_is_reported_beside_the_champion_on_the_same_rows_and_publishes_nothing(churn_storage, base):
    layout = churn_storage
    land(layout, base, SNAPSHOT)
    assert run_churn(SNAPSHOT).state == "success"
    published = storage.read_bytes(layout.scenario_current("customer_churn"))
    challenger = run_churn(SNAPSHOT, 2, as_of=SNAPSHOT.isoformat(), model_version="ranger-churn-v1", publish=False)
    assert challenger.state == "success"
    assert challenger.get_task_instance("publish").state == "skipped"
    assert storage.read_bytes(layout.scenario_current("customer_churn")) == published
    report = storage.read_bytes(layout.report_file(storage_run_id(challenger.dag_id, challenger.run_id), "report.md"))
    lines = [line for line in report.decode().splitlines() if line.startswith("|") and "-churn-v1" in line]
    assert [line.split("|")[1].strip() for line in lines] == ["glm-churn-v1", "ranger-churn-v1"], report.decode()
    evaluations = [
        json.loads(storage.read_bytes(f"{layout.scenario_evaluations_dir('customer_churn')}/{name}"))
        for name in storage.list_names(layout.scenario_evaluations_dir("customer_churn"))
    ]
    metrics = {e["model_version"]: e["metrics"] for e in evaluations}
    assert metrics["glm-churn-v1"]["rows"] == metrics["ranger-churn-v1"]["rows"] == CUSTOMERS - TRAINED_ON
    assert metrics["ranger-churn-v1"]["auc"] > metrics["glm-churn-v1"]["auc"] > 0.75, metrics
    assert {"auc", "brier", "log_loss"} <= set(metrics["glm-churn-v1"])


def test_the_report_link_leads_to_the_runs_report_for_the_scenario_dags_readers_only(churn_storage, base, api_client):
    land(churn_storage, base, SNAPSHOT)
    dag_run = run_churn(SNAPSHOT)
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    report_ti = dag_run.get_task_instance("report")
    link = report_ti.xcom_pull(task_ids="report", key="_link_ForecastReportLink")
    assert link == f"/forecast-outputs/dags/scenario_customer_churn/runs/{run_id}/report/"
    assert report_ti.xcom_pull(task_ids="report", key="_link_ForecastFilesLink") == "", "no files page yet"

    assert api_client.get(link).status_code == 401, "no token: nothing served"
    login = api_client.post("/auth/token", json={"username": "planner", "password": "planner-password"})
    api_client.cookies.set("_token", login.json()["access_token"])
    page = api_client.get(link)
    assert page.status_code == 200 and f"Scenario run {run_id}" in page.text and "glm-churn-v1" in page.text
    another_dag = link.replace("/dags/scenario_customer_churn/", "/dags/weekly_sales_forecast/")
    assert api_client.get(another_dag).status_code == 404, "a reader of another DAG does not get this run"


def test_bad_shards_are_named_with_their_rule_and_nothing_of_the_run_is_published(churn_storage, base, tmp_path):
    """An unseen factor level, a forbidden null, a probability above 1 and an R error, each in one
    shard: each named with its shard and rule, the other shards scored, nothing published."""
    layout = churn_storage
    land(layout, base, SNAPSHOT)
    folder = churn_url(layout.root, SNAPSHOT)

    def rewrite(state: str, column: str, value) -> None:
        """The first customer of the state's first file gets `value` in `column`."""
        path = sorted((local_path(folder) / f"state={state}").glob("*.parquet"))[0]
        table = pq.read_table(path)
        values = table[column].to_pylist()
        values[0] = value
        changed = pa.array(values, table[column].type)
        pq.write_table(table.set_column(table.column_names.index(column), column, changed), path)

    rewrite("CA", "area_code", "area_code_999")
    rewrite("NY", "total_day_minutes", None)
    rewrite("TX", "number_customer_service_calls", 99)  # the bad package below breaks on it
    rewrite("WA", "number_customer_service_calls", 77)
    score = (
        'load_models <- function(model_dir) readRDS(file.path(model_dir, "glm.rds"))\n'
        "score <- function(models, batch, context) {\n"
        "  if (any(batch$number_customer_service_calls == 99)) stop('no coefficient for 99 service calls')\n"
        "  p <- unname(predict(models, newdata = batch, type = 'response'))\n"
        "  data.frame(p_churn = ifelse(batch$number_customer_service_calls == 77, 1.5, p))\n"
        "}\n"
    )
    package = tmp_path / "glm-churn-v2"
    train_glm(package)
    (package / "score.R").write_text(score)
    upload_package(seal(Scenario.from_json(SCENARIO_FILE.read_bytes(), "s"), package, "glm-churn-v2"), layout)
    dag_run = run_churn(SNAPSHOT, 3, as_of=SNAPSHOT.isoformat(), model_version="glm-churn-v2")
    assert dag_run.state == "failed"
    states = {task: dag_run.get_task_instance(task).state for task in ("score", "validate", "publish", "delete_pool")}
    assert states == {"score": "failed", "validate": "failed", "publish": "upstream_failed", "delete_pool": "success"}
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    validation = json.loads(storage.read_bytes(layout.validation_report(run_id)))
    problems = {shard: found for partition in validation["partitions"].values() for shard, found in partition.items()}
    assert sorted(problems) == ["state=CA", "state=NY", "state=TX", "state=WA"], problems
    assert "column 'area_code' at customer_id=" in problems["state=CA"][0]
    assert "'area_code_999' breaks the rule one of" in problems["state=CA"][0]
    assert "column 'total_day_minutes' at customer_id=" in problems["state=NY"][0]
    assert "None breaks the rule not null" in problems["state=NY"][0]
    assert "score() failed: no coefficient for 99 service calls" in problems["state=TX"][0]
    assert "output of model package glm-churn-v2" in problems["state=WA"][0]
    assert "column 'p_churn' at customer_id=" in problems["state=WA"][0]
    assert "1.5 breaks the rule <= 1" in problems["state=WA"][0]
    outputs = storage.list_names(layout.shard_outputs_dir(run_id))
    assert len(outputs) == 51 - 4, "every good shard scored"
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(layout.scenario_current("customer_churn"))
