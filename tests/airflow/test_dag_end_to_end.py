"""The real DAG through dag.test(): local pool processes running the real worker on real R."""

import json
import shutil
from datetime import UTC, datetime

import pandas as pd
import pytest
from airflow.sdk.definitions.param import ParamValidationError

from retail_scoring import storage
from retail_scoring.data.catalogue import build_catalogue
from retail_scoring.data.tables import read_forecast
from scoring_airflow.cli import summary
from scoring_airflow.planning import storage_run_id
from scoring_airflow.publishing import read_current
from scoring_airflow.report import accuracy_history
from scoring_airflow.settings import ForecastSettings
from tests.airflow.conftest import run_dag
from tests.conftest import local_path

LATEST_WEEK = datetime(2026, 11, 23, 6, tzinfo=UTC)  # origin 107, the last week of history
OLDER_WEEK = datetime(2025, 12, 1, 6, tzinfo=UTC)  # origin 56
TWO_PRODUCTS = {"products": [1, 2], "pool_size": 2}


def run_id_of(dag_run) -> str:
    return storage_run_id(dag_run.dag_id, dag_run.run_id)


def task_state(dag_run, task_id: str) -> str:
    return dag_run.get_task_instance(task_id).state


def test_weekly_run_scores_validates_publishes_and_deletes_the_pool(airflow_db, layout, forecast_env):
    assert summary(ForecastSettings()) == f"no forecast published yet under {layout.root}"
    local_path(layout.product_file(2, "actuals")).unlink()  # this week's sales of product 2 are not in yet
    dag_run = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert dag_run.state == "success"
    run_id = run_id_of(dag_run)
    for product in (1, 2):
        forecast = read_forecast(layout.forecast_file(run_id, product))
        assert len(forecast) == 66 * 13
        assert sorted(forecast["week"].unique()) == list(range(108, 121))
    report = json.loads(storage.read_bytes(layout.validation_report(run_id)))
    assert report["valid"] and report["checked"] == 2
    current = read_current(layout)
    assert {entry["origin"] for entry in current["products"].values()} == {107}
    assert {product: entry["run_id"] for product, entry in current["products"].items()} == {"1": run_id, "2": run_id}
    assert current["products"]["1"]["forecast"] == layout.forecast_file(run_id, 1)
    assert "rows scored" in storage.read_bytes(layout.task_log(run_id, "partition_000", "stdout")).decode()
    for partition in ("partition_000", "partition_001"):
        assert json.loads(storage.read_bytes(layout.task_progress(run_id, partition))) == {"done": 1, "total": 1}
    report = storage.read_bytes(layout.report_file(run_id, "report.md")).decode()
    assert "## Cost estimate" in report and "partition_001" in report
    assert storage.read_bytes(layout.report_file(run_id, "forecast_store1.png")).startswith(b"\x89PNG")
    accuracy = json.loads(storage.read_bytes(layout.run_accuracy(run_id)))
    assert accuracy["rows"] == 66 * 13, "the held-back weeks are the actuals of the latest week's run"
    assert accuracy["rows_without_actuals"] == 66 * 13, "product 2's actuals are missing: counted, not a failure"
    assert 0 <= accuracy["coverage_50"] <= accuracy["coverage_90"] <= 1
    assert accuracy["sample"] == "out of sample", "weeks 108..120: after the tiny package's training weeks"
    assert [accuracy["steps"][str(step)]["rows"] for step in range(1, 14)] == [66] * 13, "product 1's 66 series"
    assert "By horizon step (step 1 is week 108), this run:" in report
    assert accuracy_history(layout)["run_id"].tolist() == [run_id]
    assert not any(forecast_env.iterdir()), "the pool was deleted"
    printed = summary(ForecastSettings())
    assert f"current forecast:  2 products (origin week 107: 2) (index: {layout.current_forecast()})" in printed
    assert "integrity:         every published file is as published (2 checked)" in printed
    assert f"from runs:         {run_id} (2 products)" in printed
    assert f"newest run:        {run_id}" in printed
    assert "(valid, 2 products)" in printed
    assert f"over {66 * 13} rows: median MAPE {accuracy['mape_q50']:.1%}, 50% interval covers" in printed
    assert layout.report_file(run_id, "report.md") in printed


def test_failed_partition_fails_the_run_keeps_the_pool_teardown_and_rerun_scores_only_it(
    airflow_db, layout, forecast_env
):
    assert run_dag(OLDER_WEEK, {"products": [1], "pool_size": 1}).state == "success"
    published = storage.read_bytes(layout.current_forecast())
    history_path = local_path(layout.product_file(2, "history"))
    good_history = pd.read_parquet(history_path)
    good_history.assign(sales=-good_history["sales"]).to_parquet(history_path, index=False)
    build_catalogue(layout)  # as every writer of product data does

    failed = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert failed.state == "failed"
    assert task_state(failed, "score") == "failed"
    assert task_state(failed, "validate") == "upstream_failed"
    assert task_state(failed, "publish") == "upstream_failed"
    assert task_state(failed, "collect_logs") == "success"
    assert task_state(failed, "delete_pool") == "success"
    assert not any(forecast_env.iterdir()), "the pool was deleted although scoring failed"
    assert storage.read_bytes(layout.current_forecast()) == published, "the published forecast is untouched"
    run_id = run_id_of(failed)
    stderr = storage.read_bytes(layout.task_log(run_id, "partition_001", "stderr")).decode()
    assert "product_002/history.parquet: column 'sales' must be positive" in stderr
    kept = local_path(layout.forecast_file(run_id, 1))
    kept_mtime = kept.stat().st_mtime_ns

    good_history.to_parquet(history_path, index=False)
    build_catalogue(layout)
    rerun = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert rerun.state == "success"
    assert run_id_of(rerun) == run_id
    assert kept.stat().st_mtime_ns == kept_mtime, "the partition that had succeeded was not scored again"
    assert storage.exists(layout.forecast_file(run_id, 2))


def test_backfill_for_an_older_week_sees_only_history_up_to_its_origin(airflow_db, layout, forecast_env):
    conf = {"products": [1], "pool_size": 1}
    first = run_dag(OLDER_WEEK, conf)
    assert first.state == "success"
    forecast = read_forecast(layout.forecast_file(run_id_of(first), 1))
    assert (forecast["forecast_origin"] == 56).all()
    assert sorted(forecast["week"].unique()) == list(range(57, 70))
    accuracy = json.loads(storage.read_bytes(layout.run_accuracy(run_id_of(first))))
    assert accuracy["rows"] == 66 * 13, "a backfill's forecast weeks are scored against the history"
    assert accuracy["sample"] == "in sample", "weeks 57..69: the tiny package was trained on them"
    summary_document = json.loads(storage.read_bytes(layout.partition_summary(run_id_of(first), "partition_000")))
    assert summary_document["residuals"] == {}, "a weekly run's summaries carry no residual profile"

    # Sales after the origin did not exist yet at that date: changing them must change nothing.
    history_path = local_path(layout.product_file(1, "history"))
    history = pd.read_parquet(history_path)
    history.assign(sales=history["sales"].where(history["week"] <= 56, history["sales"] * 50)).to_parquet(
        history_path, index=False
    )
    build_catalogue(layout)
    forecast_path = local_path(layout.forecast_file(run_id_of(first), 1))
    first_written = forecast_path.stat().st_mtime_ns
    again = run_dag(OLDER_WEEK, {**conf, "force": True})
    assert again.state == "success"
    assert again.get_task_instance("score").xcom_pull(task_ids="score")["scored"] == ["partition_000"]
    assert forecast_path.stat().st_mtime_ns != first_written, "force rescored the valid forecast"
    rescored = read_forecast(layout.forecast_file(run_id_of(again), 1))
    pd.testing.assert_frame_equal(forecast, rescored)


@pytest.mark.parametrize("pool_size", [0, 1000])
def test_absurd_pool_sizes_are_refused_before_anything_runs(airflow_db, layout, forecast_env, pool_size):
    with pytest.raises(ParamValidationError, match="pool_size"):
        run_dag(LATEST_WEEK, {"pool_size": pool_size})


def test_unknown_products_fail_planning(airflow_db, layout, forecast_env):
    dag_run = run_dag(LATEST_WEEK, {"products": [1, 77]})
    assert dag_run.state == "failed"
    assert task_state(dag_run, "plan") == "failed"
    assert task_state(dag_run, "create_pool") == "upstream_failed", "no pool was brought up"


def test_origin_outside_the_data_fails_planning_with_the_valid_range(airflow_db, layout, forecast_env):
    dag_run = run_dag(LATEST_WEEK, {**TWO_PRODUCTS, "origin_week": 200})
    assert dag_run.state == "failed"
    assert task_state(dag_run, "plan") == "failed"


def test_a_run_that_scores_but_fails_validation_is_not_published(airflow_db, layout, forecast_env):
    """A model package copied to a new name without editing its manifest scores fine, but its
    forecasts carry the manifest's version: validation refuses them and the current forecast stays."""
    assert run_dag(OLDER_WEEK, {"products": [1], "pool_size": 1}).state == "success"
    published = storage.read_bytes(layout.current_forecast())
    shutil.copytree(local_path(layout.package_dir("tiny-test")), local_path(layout.package_dir("tiny-copy")))

    dag_run = run_dag(LATEST_WEEK, {**TWO_PRODUCTS, "model_version": "tiny-copy"})
    assert dag_run.state == "failed"
    states = [task_state(dag_run, task_id) for task_id in ("score", "validate", "publish")]
    assert states == ["success", "failed", "upstream_failed"]
    assert task_state(dag_run, "delete_pool") == "success"
    assert storage.read_bytes(layout.current_forecast()) == published
    report = json.loads(storage.read_bytes(layout.validation_report(run_id_of(dag_run))))
    assert not report["valid"]
    assert "model_version differs from the run's tiny-copy" in report["partitions"]["partition_000"]["1"][0]
