"""A weekly cadence that works: a Monday run waits for last week's sales, fails saying which week
is missing after its deadline, and succeeds once the week lands (the demo's nightly ingest)."""

from datetime import UTC, datetime

import pandas as pd

from retail_scoring.data.catalogue import read_sales_through
from retail_scoring.data.dataset import ingest_next_week, record_sales_through
from retail_scoring.data.tables import read_forecast, read_product_table
from scoring_airflow.planning import storage_run_id
from scoring_airflow.publishing import read_current
from tests.airflow.conftest import run_dag

NEXT_MONDAY = datetime(2026, 11, 30, 6, tzinfo=UTC)  # forecasts from week 108, not in the demo data yet


def test_a_run_waits_for_its_weeks_sales_fails_after_the_deadline_and_succeeds_once_they_land(
    airflow_db, layout, forecast_env, monkeypatch, capsys
):
    monkeypatch.setenv("FORECAST_SALES_WAIT_TIMEOUT_S", "2")
    monkeypatch.setenv("FORECAST_SALES_POLL_INTERVAL_S", "0.5")
    waited = run_dag(NEXT_MONDAY, {"products": [1, 2]})
    assert waited.state == "failed"
    assert waited.get_task_instance("wait_for_sales").state == "failed"
    assert waited.get_task_instance("plan").state == "upstream_failed", "nothing planned, no pool created"
    assert (
        "the sales of week 108 (the week of 2026-11-23) have not arrived within 2 s: "
        f"{layout.sales_through()} says sales are in through week 107"
    ) in capsys.readouterr().out

    history_before = read_product_table(layout, 1, "history")
    assert ingest_next_week(layout) == 108
    assert read_sales_through(layout) == 108
    history = read_product_table(layout, 1, "history")
    landed = history[history["week"] == 108]
    actuals = read_product_table(layout, 1, "actuals")
    expected_sales = actuals[actuals["week"] == 108].set_index(["sku", "store"])["sales"]
    pd.testing.assert_series_equal(landed.set_index(["sku", "store"])["sales"], expected_sales)
    assert len(history) == len(history_before) + len(landed)
    futurex = read_product_table(layout, 1, "futurex")
    assert (futurex["week"].min(), futurex["week"].max()) == (109, 121)

    rerun = run_dag(NEXT_MONDAY, {"products": [1, 2]})
    assert rerun.state == "success"
    forecast = read_forecast(layout.forecast_file(storage_run_id(rerun.dag_id, rerun.run_id), 1))
    assert sorted(forecast["week"].unique()) == list(range(109, 122))
    assert {read_current(layout)["products"][p]["origin"] for p in ("1", "2")} == {108}


def test_an_ingest_interrupted_before_its_marker_moved_lands_nothing_twice(layout):
    assert ingest_next_week(layout) == 108
    histories = {product: read_product_table(layout, product, "history") for product in (1, 2, 3)}
    record_sales_through(layout, 107)  # as if the ingest had died after the product files
    assert ingest_next_week(layout) == 108
    for product, history in histories.items():
        pd.testing.assert_frame_equal(read_product_table(layout, product, "history"), history)
    assert ingest_next_week(layout) == 109
    assert len(read_product_table(layout, 2, "history")) == len(histories[2]) + 66
