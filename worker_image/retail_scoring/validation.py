"""Checks that a forecast file is complete and sane before anyone is allowed to read it."""

import numpy as np
import pandas as pd
import pyarrow as pa

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.schema import HORIZON, QUANTILE_COLUMNS, ROW_KEY, TABLES
from retail_scoring.tables import read_forecast


def check_forecast(frame: pd.DataFrame, n_series: int, origin: int, model_version: str) -> list[str]:
    """Problems of one product's forecast; empty when it is valid."""
    expected_columns = list(TABLES["forecast"].names)
    if list(frame.columns) != expected_columns:
        return [f"columns {list(frame.columns)} differ from the forecast schema {expected_columns}"]
    problems = []
    if len(frame) != n_series * HORIZON:
        problems.append(f"{len(frame)} rows, expected {n_series} series x {HORIZON} weeks = {n_series * HORIZON}")
    if frame.duplicated(list(ROW_KEY)).any():
        problems.append(f"{int(frame.duplicated(list(ROW_KEY)).sum())} duplicate (sku, store, week) rows")
    expected_weeks = set(range(origin + 1, origin + HORIZON + 1))
    wrong_weeks = sorted(set(frame["week"]) - expected_weeks)
    if wrong_weeks:
        problems.append(f"weeks {wrong_weeks} outside the forecast weeks {origin + 1}..{origin + HORIZON}")
    weeks_per_series = frame.groupby(["sku", "store"])["week"].nunique()
    if (weeks_per_series != HORIZON).any() or len(weeks_per_series) != n_series:
        problems.append(f"{len(weeks_per_series)} series found ({n_series} expected), not all with {HORIZON} weeks")
    quantiles = frame[list(QUANTILE_COLUMNS)].to_numpy(dtype="float64")
    if np.isnan(quantiles).any():
        problems.append(f"{int(np.isnan(quantiles).any(axis=1).sum())} rows with NaN quantiles")
    if (quantiles < 0).any():
        problems.append(f"{int((quantiles < 0).any(axis=1).sum())} rows with negative quantiles")
    if (np.diff(quantiles, axis=1) < 0).any():
        problems.append(f"{int((np.diff(quantiles, axis=1) < 0).any(axis=1).sum())} rows with crossing quantiles")
    if not (frame["forecast_origin"] == origin).all():
        problems.append(f"forecast_origin differs from the run's origin {origin}")
    if not (frame["model_version"] == model_version).all():
        problems.append(f"model_version differs from the run's {model_version}")
    return problems


def forecast_problems(
    layout: StorageLayout, run_id: str, product: int, n_series: int, origin: int, model_version: str
) -> list[str]:
    url = layout.forecast_file(run_id, product)
    if not storage.exists(url):
        return [f"{url}: missing"]
    try:
        frame = read_forecast(url)
    except (pa.ArrowException, OSError) as error:
        return [f"{url}: unreadable ({error})"]
    return [f"{url}: {problem}" for problem in check_forecast(frame, n_series, origin, model_version)]
