"""The report: its figure carries the right data (four SKUs, history, median, both bands), its cost
figure and its accuracy history."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba

from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import REFERENCE_OUTPUT, OutputContract
from retail_scoring.run.accuracy import IN_SAMPLE, OUT_OF_SAMPLE, UNKNOWN_SAMPLE, forecast_sample
from scoring_airflow.compute import TaskStatus
from scoring_airflow.report import (
    BAND_50_COLOUR,
    BAND_90_COLOUR,
    accuracy_history,
    cost_estimate,
    forecast_figure,
    package_comparison,
    record_accuracy,
    step_table,
)
from scoring_airflow.settings import ForecastSettings
from tests.conftest import run_plan


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    history = pd.DataFrame(
        [
            {"sku": sku, "store": store, "week": week, "sales": 100.0 * sku + week + store}
            for sku in range(1, 6)
            for store in (1, 2)
            for week in range(0, 60)
        ]
    )
    forecast = pd.DataFrame(
        [
            {
                "sku": sku,
                "store": store,
                "week": week,
                "q5": 10.0 * sku,
                "q25": 20.0 * sku,
                "q50": 30.0 * sku + week,
                "q75": 40.0 * sku,
                "q95": 50.0 * sku,
            }
            for sku in range(1, 6)
            for store in (1, 2)
            for week in range(60, 73)
        ]
    )
    return history, forecast


def band_limits(collection: PolyCollection) -> tuple[float, float]:
    vertices = collection.get_paths()[0].vertices
    return vertices[:, 1].min(), vertices[:, 1].max()


def test_figure_shows_four_skus_with_history_median_and_both_bands():
    history, forecast = frames()
    figure = forecast_figure(history, forecast, store=2, skus=[1, 2, 3, 4], output=REFERENCE_OUTPUT)
    axes = figure.axes
    assert len(axes) == 4
    for axis, sku in zip(axes, [1, 2, 3, 4], strict=True):
        assert axis.get_title() == f"SKU {sku}, store 2"
        sales_line, median_line = axis.get_lines()
        assert sales_line.get_color() == "black" and sales_line.get_linestyle() == "-"
        expected_history = history[(history["sku"] == sku) & (history["store"] == 2) & (history["week"] > 19)]
        assert np.array_equal(sales_line.get_xdata(), expected_history["week"])
        assert np.array_equal(sales_line.get_ydata(), expected_history["sales"])
        assert median_line.get_linestyle() == "--"
        assert np.array_equal(median_line.get_xdata(), range(60, 73))
        assert np.array_equal(median_line.get_ydata(), 30.0 * sku + np.arange(60, 73))
        band_90, band_50 = [c for c in axis.collections if isinstance(c, PolyCollection)]
        assert tuple(band_90.get_facecolor()[0]) == to_rgba(BAND_90_COLOUR)
        assert tuple(band_50.get_facecolor()[0]) == to_rgba(BAND_50_COLOUR)
        assert band_limits(band_90) == (10.0 * sku, 50.0 * sku)
        assert band_limits(band_50) == (20.0 * sku, 40.0 * sku)


def test_cost_is_pool_nodes_times_the_job_span_times_the_vm_price():
    statuses = [
        TaskStatus("partition_000", "succeeded", 0, 1, "", queued_at=1000.0, started_at=1010.0, finished_at=1900.0),
        TaskStatus("partition_001", "succeeded", 0, 1, "", queued_at=1000.0, started_at=1500.0, finished_at=2800.0),
    ]
    settings = ForecastSettings(vm_hourly_prices={"Standard_F2s_v2": 0.085})
    plan = run_plan(StorageLayout("file:///unused"), "cost", {}, vm_size="Standard_F2s_v2", pool_size=4)
    cost = cost_estimate(plan, statuses, settings)
    assert cost["node_hours"] == pytest.approx(4 * 1800 / 3600)
    assert cost["usd"] == pytest.approx(2.0 * 0.085)
    unpriced = cost_estimate(replace(plan, vm_size="Standard_X"), statuses, settings)
    assert unpriced["usd"] is None and unpriced["node_hours"] == pytest.approx(2.0)


def test_a_rerun_replaces_its_accuracy_record_and_keeps_the_other_runs(tmp_path):
    layout = StorageLayout(f"file://{tmp_path}")
    record_accuracy(layout, {"run_id": "weekly-107", "origin": 107, "model_version": "m", "rows": 10, "mape_q50": 0.5})
    record_accuracy(layout, {"run_id": "backfill-56", "origin": 56, "model_version": "m", "rows": 8, "mape_q50": 0.2})
    history = record_accuracy(
        layout, {"run_id": "weekly-107", "origin": 107, "model_version": "m", "rows": 12, "mape_q50": 0.3}
    )
    for table in (history, accuracy_history(layout)):
        rows = table[["run_id", "rows", "mape_q50"]].values.tolist()
        assert rows == [["backfill-56", 8, 0.2], ["weekly-107", 12, 0.3]]


def test_figure_of_a_package_with_other_quantiles_draws_its_own_band_and_median():
    history, forecast = frames()
    forecast = forecast.rename(columns={"q5": "q10", "q95": "q90"}).drop(columns=["q25", "q75"])
    output = OutputContract(horizon=13, quantiles=(0.1, 0.5, 0.9))
    axis = forecast_figure(history, forecast, store=2, skus=[1, 2, 3, 4], output=output).axes[0]
    (band,) = [c for c in axis.collections if isinstance(c, PolyCollection)]
    assert band.get_label() == "10-90%" and band_limits(band) == (10.0, 50.0)
    assert axis.get_lines()[1].get_linestyle() == "--", "the median"


def test_packages_are_compared_by_their_newest_out_of_sample_run_over_the_same_products():
    def run(run_id, origin, version, pinball, hour, sample=OUT_OF_SAMPLE, products="p90"):
        return {
            "run_id": run_id,
            "origin": origin,
            "model_version": version,
            "rows": 90,
            "pinball_q50": pinball,
            "products": 90,
            "products_sha256": products,
            "sample": sample,
            "recorded_at": f"2026-11-30T{hour}",
        }

    records = pd.DataFrame(
        [
            run("a", 107, "gbm", 1933.0, "09"),
            run("b", 107, "forest", 1800.0, "10"),
            run("c", 107, "forest", 1749.0, "11"),
            run("d", 106, "gbm", 1.0, "12"),
            run("e", 107, "gbm", 5.0, "13", sample=IN_SAMPLE),  # seen its forecast weeks: no evidence
            run("f", 107, "ranger", 2.0, "14", products="p10"),  # a 10-product challenger
        ]
    )  # fmt: skip
    table = package_comparison(records, 107, "p90")
    rows = [line.split("|")[1:4] for line in table.splitlines()[2:4]]
    assert [[cell.strip() for cell in row] for row in rows] == [["forest", "c", "90"], ["gbm", "a", "90"]]
    assert table.endswith("Left out: 1 run(s) not out of sample, 1 over other products.")
    assert package_comparison(records, 107, "p10").startswith("| model_version"), "the challenger's own set"
    assert package_comparison(records, 106, "p10").startswith("(no out-of-sample run over these products)")


@pytest.mark.parametrize(
    ("origin", "training_weeks", "expected"),
    [
        (107, (0, 107), OUT_OF_SAMPLE),  # the committed package at the newest origin: weeks 108..120 are new
        (94, (0, 107), IN_SAMPLE),
        (60, (0, 60), OUT_OF_SAMPLE),  # forecasts weeks 61..73, trained through 60
        (59, (0, 60), IN_SAMPLE),  # week 60 is a forecast week it was trained on
        (10, (40, 60), OUT_OF_SAMPLE),  # weeks 11..23, before the window
        (30, (40, 60), IN_SAMPLE),  # weeks 31..43 reach into it
        (107, None, UNKNOWN_SAMPLE),
    ],
)
def test_a_forecast_is_in_sample_when_any_of_its_weeks_is_in_the_training_window(origin, training_weeks, expected):
    assert forecast_sample(origin, 13, training_weeks) == expected


def test_old_accuracy_records_count_as_of_unknown_sample(tmp_path):
    layout = StorageLayout(f"file://{tmp_path}")
    old = {"run_id": "old", "origin": 107, "model_version": "m", "rows": 10, "pinball_q50": 1.0, "recorded_at": "x"}
    record_accuracy(layout, old)
    history = accuracy_history(layout)
    assert history.loc[0, "sample"] == UNKNOWN_SAMPLE
    assert package_comparison(history, 107, "p").endswith(
        "Left out: 1 run(s) not out of sample, 0 over other products."
    )


def test_the_step_table_shows_each_horizon_steps_coverage():
    accuracy = {
        "rows": 2,
        "steps": {
            "1": {"rows": 1, "pinball_q50": 2.0, "coverage_50": 1.0, "coverage_90": 1.0},
            "13": {"rows": 1, "pinball_q50": 9.0, "coverage_50": 0.0, "coverage_90": 1.0},
        },
    }
    lines = step_table(accuracy).splitlines()
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == [
        "step",
        "rows",
        "pinball_q50",
        "coverage_50",
        "coverage_90",
    ]
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["1", "13"]
    assert step_table({"rows": 0}) == "(no actuals yet)"
