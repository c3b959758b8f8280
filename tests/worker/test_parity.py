"""The Python worker's quantiles equal an independent dplyr implementation run by Rscript."""

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from retail_scoring.data.tables import read_forecast, read_product_table
from retail_scoring.run.scoring import ScoringJob, score_partition
from tests.conftest import TINY_MODELS, local_path

REFERENCE_SCRIPT = Path(__file__).parents[1] / "r" / "reference_forecast.R"


def reference_forecast(layout, product: int, origin: int, tmp_path: Path) -> pd.DataFrame:
    inputs = {}
    for table in ("history", "futurex"):
        inputs[table] = tmp_path / f"{table}.csv"
        read_product_table(layout, product, table).to_csv(inputs[table], index=False, float_format="%.17g")
    output = tmp_path / "reference.csv"
    model_dir = local_path(layout.package_dir(TINY_MODELS))
    subprocess.run(
        [
            "Rscript",
            str(REFERENCE_SCRIPT),
            str(inputs["history"]),
            str(inputs["futurex"]),
            str(model_dir),
            str(origin),
            str(output),
        ],
        check=True,
    )
    return pd.read_csv(output, float_precision="round_trip")


def assert_same_quantiles(layout, product: int, origin: int, tmp_path: Path) -> None:
    score_partition(ScoringJob(layout, [product], origin, TINY_MODELS, run_id="parity"))
    ours = read_forecast(layout.forecast_file("parity", product))
    theirs = reference_forecast(layout, product, origin, tmp_path)
    assert len(ours) == len(theirs) == 66 * 13
    assert (ours[["sku", "store", "week"]].to_numpy() == theirs[["sku", "store", "week"]].to_numpy()).all()
    for column in ("q5", "q25", "q50", "q75", "q95"):
        relative = np.abs(ours[column] - theirs[column]) / np.abs(theirs[column])
        assert relative.max() < 1e-9, f"{column}: max relative difference {relative.max()}"


def test_worker_matches_independent_r_forecast_at_latest_origin(layout, tmp_path):
    assert_same_quantiles(layout, product=2, origin=107, tmp_path=tmp_path)


def test_worker_matches_independent_r_forecast_at_an_older_origin(layout, tmp_path):
    # History is cut at week 60; weeks 61..73 come from the history file's planned features.
    assert_same_quantiles(layout, product=1, origin=60, tmp_path=tmp_path)
