"""The rerun skip: a partition counts as done only when every product's forecast is the file its
scoring task wrote (the checksum it recorded) and validates, not when files merely exist."""

import json

import numpy as np

from retail_scoring import storage
from retail_scoring.tables import read_raw_product_table, write_table
from scoring_airflow.operators import partition_is_done
from tests.conftest import TINY_MODELS

PLAN = {
    "run_id": "rerun",
    "origin": 107,
    "model_version": TINY_MODELS,
    "series_per_product": {"1": 66, "2": 66},
    "partitions": {"partition_000": [1, 2]},
    "max_forecast_ratio": 100.0,
}


def write_forecast(layout, product: int, change=lambda frame: frame) -> str:
    keys = read_raw_product_table(layout, product, "futurex", columns=["sku", "store", "week"])[1]
    frame = keys.sort_values(["sku", "store", "week"]).assign(
        q5=1.0, q25=2.0, q50=3.0, q75=4.0, q95=5.0, forecast_origin=107, model_version=TINY_MODELS
    )
    return write_table(layout.forecast_file("rerun", product), change(frame).reset_index(drop=True), "forecast")


def record_written(layout, checksums: dict[int, str]) -> None:
    """What the partition's scoring task records when it is done."""
    timings = {"forecast_sha256": {str(product): sha for product, sha in checksums.items()}}
    storage.write_bytes_atomic(layout.task_timings("rerun", "partition_000"), json.dumps(timings).encode())


def test_a_partition_is_done_when_its_task_recorded_every_forecast_and_they_validate(layout):
    assert not partition_is_done(layout, PLAN, "partition_000"), "nothing written"
    checksums = {product: write_forecast(layout, product) for product in (1, 2)}
    assert not partition_is_done(layout, PLAN, "partition_000"), "files there, but no task recorded them"
    record_written(layout, checksums)
    assert partition_is_done(layout, PLAN, "partition_000")


def test_a_forecast_file_the_task_did_not_write_is_rescored(layout):
    checksums = {product: write_forecast(layout, product) for product in (1, 2)}
    record_written(layout, checksums)
    write_forecast(layout, 2, lambda frame: frame.assign(q50=3.5))  # valid-looking, but not the task's
    assert not partition_is_done(layout, PLAN, "partition_000")


def test_a_recorded_forecast_that_fails_validation_is_rescored(layout):
    garbage = {
        "nan": lambda frame: frame.assign(q50=np.where(frame.index == 5, np.nan, 3.0)),
        "inf": lambda frame: frame.assign(q95=np.where(frame.index == 5, np.inf, 5.0)),
        "row-missing": lambda frame: frame.iloc[:-1],
        "absurd": lambda frame: frame.assign(q95=1e12),
        "foreign-skus": lambda frame: frame.assign(sku=frame["sku"] + 11),
    }
    for name, change in garbage.items():
        record_written(layout, {1: write_forecast(layout, 1), 2: write_forecast(layout, 2, change)})
        assert not partition_is_done(layout, PLAN, "partition_000"), name
