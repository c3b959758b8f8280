"""Bring your own model, through the real DAG: the committed ranger package (kind r-script, features
in R) runs as a challenger next to the gbm champion at the same origin and the report compares them;
a package the worker environment cannot run is refused at planning, before any pool exists."""

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from retail_scoring import storage
from retail_scoring.data.tables import read_forecast
from retail_scoring.packages.base import seal_package, upload_package
from scoring_airflow.planning import PlanError, plan_run, storage_run_id
from scoring_airflow.publishing import read_current
from scoring_airflow.settings import ForecastSettings
from tests.airflow.conftest import run_dag
from tests.airflow.test_dag_end_to_end import LATEST_WEEK, TWO_PRODUCTS, run_id_of, task_state
from tests.conftest import TINY_MODELS

RANGER = Path(__file__).resolve().parents[2] / "include" / "models" / "ranger-qrf-v1"


def ranger_variant(layout, tmp_path: Path, version: str, manifest_change=None, script_change=None) -> None:
    """The committed ranger package as `version`, its manifest and score.R changed, sealed, uploaded."""
    package = tmp_path / version
    shutil.copytree(RANGER, package)
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["model_version"] = version
    if manifest_change:
        manifest_change(manifest)
    (package / "manifest.json").write_text(json.dumps(manifest))
    if script_change:
        (package / "score.R").write_text(script_change((package / "score.R").read_text()))
    seal_package(package)
    upload_package(package, layout)


def test_an_r_script_challenger_runs_end_to_end_and_the_report_compares_it_with_the_champion(
    airflow_db, layout, forecast_env
):
    upload_package(RANGER, layout)
    champion = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert champion.state == "success"
    challenger = run_dag(
        LATEST_WEEK + timedelta(days=1),
        {**TWO_PRODUCTS, "origin_week": 107, "model_version": "ranger-qrf-v1", "publish": False},
    )
    assert challenger.state == "success"
    assert task_state(challenger, "publish") == "skipped"
    run_id = run_id_of(challenger)
    for product in (1, 2):
        forecast = read_forecast(layout.forecast_file(run_id, product))
        assert len(forecast) == 66 * 13 and (forecast["model_version"] == "ranger-qrf-v1").all()
    current = read_current(layout)
    assert {entry["model_version"] for entry in current["products"].values()} == {TINY_MODELS}, "not published"
    report = storage.read_bytes(layout.report_file(run_id, "report.md")).decode()
    comparison = report.split("## Model packages compared at origin 107", 1)[1]
    rows = [line for line in comparison.splitlines() if line.startswith("| ") and "model_version" not in line]
    assert sorted(row.split("|")[1].strip() for row in rows) == ["ranger-qrf-v1", TINY_MODELS]
    accuracy = json.loads(storage.read_bytes(layout.run_accuracy(run_id)))
    assert accuracy["model_version"] == "ranger-qrf-v1" and accuracy["rows"] == 2 * 66 * 13
    assert 0 < accuracy["coverage_90"] <= 1


def test_a_package_needing_an_r_package_the_workers_lack_is_refused_at_planning(
    airflow_db, layout, forecast_env, tmp_path
):
    ranger_variant(layout, tmp_path, "ranger-qrf-v2", lambda m: m["r_dependencies"].update(forecastX="8.21"))
    refusal = (
        r"ranger-qrf-v2/manifest.json: the worker environment cannot run model package ranger-qrf-v2: "
        r"R package 'forecastX' is not installed \(the worker image's R packages: "
    )
    with pytest.raises(PlanError, match=refusal):
        plan_run("d", "r", LATEST_WEEK, {"model_version": "ranger-qrf-v2"}, ForecastSettings())
    dag_run = run_dag(LATEST_WEEK, {**TWO_PRODUCTS, "model_version": "ranger-qrf-v2"})
    assert dag_run.state == "failed"
    assert task_state(dag_run, "plan") == "failed"
    assert task_state(dag_run, "create_pool") == "upstream_failed", "no pool was brought up"
    assert not storage.exists(layout.current_forecast())


def test_a_package_whose_input_contract_the_data_breaks_is_refused_at_planning(layout, forecast_env, tmp_path):
    ranger_variant(
        layout, tmp_path, "ranger-qrf-v3", lambda m: m["input"]["exogenous"].update(competitor_price="number")
    )
    refusal = (
        r"product_001/history.parquet: column 'competitor_price' \(number\) that model package ranger-qrf-v3 "
        r"needs is missing"
    )
    with pytest.raises(PlanError, match=refusal):
        plan_run("d", "r", LATEST_WEEK, {"model_version": "ranger-qrf-v3"}, ForecastSettings())
    assert not storage.exists(layout.run_manifest(storage_run_id("d", "r")))


def test_a_package_whose_r_code_fails_fails_the_run_at_once_and_publishes_nothing(
    airflow_db, layout, forecast_env, tmp_path
):
    failing = '  stop("price table for store 2 is empty")\n  rows <- models'
    ranger_variant(
        layout, tmp_path, "broken-r-v1", script_change=lambda script: script.replace("  rows <- models", failing)
    )
    dag_run = run_dag(LATEST_WEEK, {**TWO_PRODUCTS, "model_version": "broken-r-v1"})
    assert dag_run.state == "failed" and task_state(dag_run, "score") == "failed"
    assert task_state(dag_run, "publish") == "upstream_failed"
    assert not storage.exists(layout.current_forecast())
    run_id = run_id_of(dag_run)
    stderr = storage.read_bytes(layout.task_log(run_id, "partition_000", "stderr")).decode()
    assert "model package broken-r-v1: score.R: score() failed: price table for store 2 is empty" in stderr
