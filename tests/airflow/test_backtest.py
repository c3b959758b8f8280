"""The backtest DAG through dag.test(): packages scored at many origins on one pool, judged out of
sample only, side by side on shared rows; its calibration applied by a weekly run of an r-script
package, what the package forecast kept byte for byte."""

import json
import re
from datetime import UTC, datetime

import pandas as pd
import pytest

from retail_scoring import storage
from retail_scoring.data.schema import QUANTILE_COLUMNS
from retail_scoring.data.tables import read_forecast
from retail_scoring.packages.base import upload_package
from retail_scoring.packages.gbm.train import Hyperparameters, train_model_set
from retail_scoring.run.calibration import read_calibration
from scoring_airflow.backtest import BacktestPlan, OriginResult, PackageResult, compared_origins
from tests.airflow.conftest import load_dag, run_dag
from tests.airflow.test_dag_end_to_end import run_id_of
from tests.worker.test_r_script_packages import naive_package

ORIGINS = [62, 66, 70, 74, 78, 82, 86, 90, 94]
NAIVE, TINY_70 = "naive-w60", "tiny-w70"


def backtest(conf: dict):
    now = datetime.now(UTC)
    return load_dag("backtest_model_package").test(logical_date=now, run_after=now, run_conf=conf)


@pytest.fixture
def packages(layout, tmp_path, small_reference):
    """An r-script package declaring it learned from weeks 0..60, a gbm package trained through week 70."""
    naive_package(
        layout,
        tmp_path / "naive",
        manifest_change=lambda m: m.update(model_version=NAIVE, training_data={"weeks": [0, 60]}),
    )
    history = small_reference[small_reference["week"] <= 70]
    train_model_set(history, tmp_path / TINY_70, TINY_70, Hyperparameters(n_trees=20, interaction_depth=3))
    upload_package(tmp_path / TINY_70, layout)


def test_a_backtest_compares_out_of_sample_and_calibrates_a_weekly_run(
    airflow_db,
    layout,
    forecast_env,
    packages,
    tmp_path,
    api_client,  # noqa: F811
):
    conf = {"model_versions": f"{NAIVE}, {TINY_70}", "origins": ORIGINS, "products": "1", "pool_size": 2}
    run = backtest(conf)
    assert run.state == "success"
    backtests = storage.list_names(layout.backtests_dir())
    assert len(backtests) == 1
    backtest_id = backtests[0]
    record = json.loads(storage.read_bytes(layout.backtest_accuracy(backtest_id)))

    # In sample: the gbm package's first two origins forecast weeks it was trained on.
    tiny, naive = record["packages"][TINY_70], record["packages"][NAIVE]
    assert tiny["in_sample_origins"] == [62, 66] and tiny["in_sample_rows"] == 2 * 66 * 13
    assert naive["in_sample_origins"] == []
    assert tiny["by_origin"]["62"]["sample"] == "in sample" and tiny["by_origin"]["62"]["calibrated"] is None
    # Compared where both are out of sample and have a point-in-time calibration: tiny-w70's first
    # usable origin is 70, whose weeks have sales by origin 83.
    assert record["compared_origins"] == [86, 90, 94]
    assert naive["compared"]["forecast"]["rows"] == tiny["compared"]["forecast"]["rows"] == 3 * 66 * 13
    assert naive["by_origin"]["86"]["calibrated_from"] == [62, 66, 70]
    assert tiny["by_origin"]["86"]["calibrated_from"] == [70]

    # Calibration files: checksummed in the record, learned from every usable origin.
    for version, learned_from in ((NAIVE, ORIGINS), (TINY_70, ORIGINS[2:])):
        recorded = record["calibrations"][version]
        calibration, sha256 = read_calibration(recorded["url"])
        assert sha256 == recorded["sha256"] and calibration.origins == learned_from
        assert calibration.usable_from == 107 and calibration.model_version == version
    # The backtest's runs live under its folder; nothing was published.
    run_folders = storage.list_names(f"{layout.backtest_dir(backtest_id)}/runs")
    assert len(run_folders) == 2 * len(ORIGINS)
    assert not storage.list_names(layout.runs_dir()) and not storage.list_names(layout.published_dir())
    report = storage.read_bytes(layout.backtest_report_file(backtest_id, "report.md")).decode()
    assert f"{TINY_70} (trained on weeks 0..70): 2 origins (62..66), 1716 rows" in report
    link = run.get_task_instance("evaluate").xcom_pull(task_ids="evaluate", key="_link_BacktestReportLink")
    assert link == f"/forecast-outputs/backtests/{backtest_id}/report/"
    assert api_client.get(link).status_code == 401, "no token: nothing served"
    login = api_client.post("/auth/token", json={"username": "planner", "password": "planner-password"})
    api_client.cookies.set("_token", login.json()["access_token"])
    page = api_client.get(link)
    assert page.status_code == 200 and f"<h1>Backtest {backtest_id}</h1>" in page.text and "<table>" in page.text
    assert api_client.get(f"{link}calibration_by_step.png").content.startswith(b"\x89PNG")
    assert not any(forecast_env.iterdir()), "the backtest's one pool was deleted"

    # A successor of the naive package, calibrated by what the backtest learned on naive-w60.
    naive_package(layout, tmp_path / "v2", manifest_change=lambda m: m.update(model_version="naive-v2"))
    weekly = {"model_version": "naive-v2", "origin_week": 107, "products": [1], "pool_size": 1, "publish": False}
    plain = run_dag(datetime(2026, 11, 23, tzinfo=UTC), weekly)
    calibrated = run_dag(datetime(2026, 11, 30, tzinfo=UTC), {**weekly, "calibration": f"{backtest_id}:{NAIVE}"})
    assert plain.state == calibrated.state == "success"
    plain_id, calibrated_id = run_id_of(plain), run_id_of(calibrated)
    model_output = storage.read_bytes(layout.model_output_file(calibrated_id, 1))
    assert model_output == storage.read_bytes(layout.forecast_file(plain_id, 1)), "what the package made, unchanged"
    assert not storage.list_names(f"{layout.run_dir(plain_id)}/model_output"), "an uncalibrated run writes none"
    naive_calibration = read_calibration(record["calibrations"][NAIVE]["url"])[0]
    expected = naive_calibration.apply(read_forecast(layout.model_output_file(calibrated_id, 1)), QUANTILE_COLUMNS)
    forecast = read_forecast(layout.forecast_file(calibrated_id, 1))
    pd.testing.assert_frame_equal(forecast, expected)
    assert (forecast[list(QUANTILE_COLUMNS)].diff(axis=1).iloc[:, 1:] >= 0).all().all(), "quantiles never cross"
    assert not forecast[list(QUANTILE_COLUMNS)].equals(
        read_forecast(layout.forecast_file(plain_id, 1))[list(QUANTILE_COLUMNS)]
    )
    assert "(not calibrated)" in storage.read_bytes(layout.report_file(plain_id, "report.md")).decode()
    run_report = storage.read_bytes(layout.report_file(calibrated_id, "report.md")).decode()
    assert re.search(
        rf"learned on {NAIVE} from origins 62..94 of backtest .*, applied to a successor of {NAIVE}", run_report
    )


def origin(origin: int, sample: str) -> OriginResult:
    return OriginResult(origin, sample, [{"rows": 1, "forecast_rows": 1}], {}, complete=True)


def test_packages_are_compared_only_at_origins_all_forecast_out_of_sample(layout):
    plan = BacktestPlan("b", "r", layout.root, ["a", "b"], [1, 2, 3], None, None, 1, "pool")
    assert plan.run_ids()[0] == ("a", 1, "b-p0-o001")
    first = PackageResult("a", None, {o: origin(o, "out of sample") for o in (1, 2, 3)}, {1: 0, 2: 0, 3: 0})
    second = PackageResult("b", None, {1: origin(1, "in sample"), 2: origin(2, "out of sample")}, {1: 0, 2: 0})
    second.origins[3] = origin(3, "out of sample")
    assert compared_origins([first, second], None) == [2], "3 has no calibration of b, 1 is in b's sample"
    assert compared_origins([first, second], [1, 3]) == []
