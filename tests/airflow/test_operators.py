"""The rerun skip: a partition counts as done only when every product's forecast validates, not
when its files merely exist."""

import numpy as np

from retail_scoring.tables import read_raw_product_table, write_table
from scoring_airflow.operators import partition_is_done
from tests.conftest import TINY_MODELS, local_path

PLAN = {"run_id": "rerun", "origin": 107, "model_version": TINY_MODELS, "series_per_product": {"1": 66, "2": 66}}


def write_forecast(layout, product: int, change=lambda frame: frame) -> None:
    keys = read_raw_product_table(layout, product, "futurex", columns=["sku", "store", "week"])[1]
    frame = keys.sort_values(["sku", "store", "week"]).assign(
        q5=1.0, q25=2.0, q50=3.0, q75=4.0, q95=5.0, forecast_origin=107, model_version=TINY_MODELS
    )
    write_table(layout.forecast_file("rerun", product), change(frame), "forecast")


def test_a_partition_is_done_only_when_every_forecast_exists_and_validates(layout):
    assert not partition_is_done(layout, PLAN, [1, 2])
    write_forecast(layout, 1)
    assert partition_is_done(layout, PLAN, [1])
    assert not partition_is_done(layout, PLAN, [1, 2]), "product 2 has no forecast"
    write_forecast(layout, 2, lambda frame: frame.assign(q50=np.where(frame.index == 5, np.nan, 3.0)))
    assert not partition_is_done(layout, PLAN, [1, 2]), "product 2's forecast has a NaN"
    write_forecast(layout, 2, lambda frame: frame.iloc[:-1])
    assert not partition_is_done(layout, PLAN, [2]), "product 2's forecast lacks a row"
    local_path(layout.forecast_file("rerun", 2)).write_bytes(b"PAR1 not really")
    assert not partition_is_done(layout, PLAN, [2]), "product 2's forecast is unreadable"
    write_forecast(layout, 2)
    assert partition_is_done(layout, PLAN, [1, 2])
