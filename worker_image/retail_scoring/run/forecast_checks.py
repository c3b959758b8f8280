"""Checks that a forecast file is complete and sane before anyone is allowed to read it."""

import numpy as np
import pandas as pd

from retail_scoring.data.schema import ROW_KEY, SERIES_KEY, forecast_schema
from retail_scoring.data.tables import has_forecast_rows
from retail_scoring.packages.base import REFERENCE_OUTPUT, OutputContract

DEFAULT_MAX_FORECAST_RATIO = 100.0


def check_forecast(
    frame: pd.DataFrame,
    n_series: int,
    origin: int,
    model_version: str,
    planned: pd.DataFrame | None = None,
    history_peak: pd.Series | None = None,
    max_ratio: float = DEFAULT_MAX_FORECAST_RATIO,
    output: OutputContract = REFERENCE_OUTPUT,
) -> list[str]:
    """Problems of one product's forecast against the package's output contract; empty when it is
    valid. `planned` holds the (sku, store) series the forecast must cover, exactly; `history_peak`
    each series' highest weekly sales up to the origin, which no quantile may exceed `max_ratio` times."""
    expected_columns = list(forecast_schema(output.columns).names)
    if list(frame.columns) != expected_columns:
        return [f"columns {list(frame.columns)} differ from the forecast schema {expected_columns}"]
    problems = []
    horizon = output.horizon
    if not _exactly_the_planned_rows(frame, n_series, origin, planned, horizon):
        problems += _row_problems(frame, n_series, origin, planned, horizon)
    quantiles = frame[list(output.columns)].to_numpy(dtype="float64")
    if np.isnan(quantiles).any():
        problems.append(f"{int(np.isnan(quantiles).any(axis=1).sum())} rows with NaN quantiles")
    if np.isinf(quantiles).any():
        problems.append(f"{int(np.isinf(quantiles).any(axis=1).sum())} rows with infinite quantiles")
    if output.non_negative and (quantiles < 0).any():
        problems.append(f"{int((quantiles < 0).any(axis=1).sum())} rows with negative quantiles")
    if (np.diff(quantiles, axis=1) < 0).any():
        problems.append(f"{int((np.diff(quantiles, axis=1) < 0).any(axis=1).sum())} rows with crossing quantiles")
    if history_peak is not None:
        problems += _magnitude_problems(frame, history_peak, max_ratio, output.columns[-1])
    if not (frame["forecast_origin"] == origin).all():
        problems.append(f"forecast_origin differs from the run's origin {origin}")
    if not (frame["model_version"] == model_version).all():
        problems.append(f"model_version differs from the run's {model_version}")
    return problems


def _exactly_the_planned_rows(
    frame: pd.DataFrame, n_series: int, origin: int, planned: pd.DataFrame | None, horizon: int
) -> bool:
    """Rows in (sku, store, week) order that are exactly each planned series' forecast weeks: how
    the worker writes every forecast, recognised in one vectorised pass (the row checks below
    would take most of a forecast's checking time to find nothing)."""
    if planned is None or len(frame) != n_series * horizon:
        return False
    series = planned[list(SERIES_KEY)].drop_duplicates().sort_values(list(SERIES_KEY))
    sku, store = series["sku"].to_numpy(), series["store"].to_numpy()
    return len(series) == n_series and has_forecast_rows(frame, sku, store, origin, horizon)


def _row_problems(
    frame: pd.DataFrame, n_series: int, origin: int, planned: pd.DataFrame | None, horizon: int
) -> list[str]:
    """What is wrong with the rows: their count, duplicates, weeks, series."""
    problems = []
    if len(frame) != n_series * horizon:
        problems.append(f"{len(frame)} rows, expected {n_series} series x {horizon} weeks = {n_series * horizon}")
    if frame.duplicated(list(ROW_KEY)).any():
        problems.append(f"{int(frame.duplicated(list(ROW_KEY)).sum())} duplicate (sku, store, week) rows")
    expected_weeks = set(range(origin + 1, origin + horizon + 1))
    wrong_weeks = sorted(set(frame["week"]) - expected_weeks)
    if wrong_weeks:
        problems.append(f"weeks {wrong_weeks} outside the forecast weeks {origin + 1}..{origin + horizon}")
    weeks_per_series = frame.groupby(["sku", "store"])["week"].nunique()
    if (weeks_per_series != horizon).any() or len(weeks_per_series) != n_series:
        problems.append(f"{len(weeks_per_series)} series found ({n_series} expected), not all with {horizon} weeks")
    if planned is not None:
        problems += _series_problems(frame, planned)
    return problems


def _series_problems(frame: pd.DataFrame, planned: pd.DataFrame) -> list[str]:
    """The forecast's series are exactly the product's planned ones: none of another product's."""
    found = frame[list(SERIES_KEY)].drop_duplicates()
    merged = found.merge(planned[list(SERIES_KEY)].drop_duplicates(), how="outer", indicator=True)
    problems = []
    for side, what in (("left_only", "not planned for this product"), ("right_only", "planned but missing")):
        rows = merged[merged["_merge"] == side]
        if len(rows):
            problems.append(f"{len(rows)} series {what}, first sku={rows['sku'].iloc[0]} store={rows['store'].iloc[0]}")
    return problems


def _magnitude_problems(frame: pd.DataFrame, history_peak: pd.Series, max_ratio: float, highest: str) -> list[str]:
    """Rows whose highest quantile exceeds `max_ratio` times the series' peak."""
    peaks = history_peak.reindex(pd.MultiIndex.from_frame(frame[list(SERIES_KEY)])).to_numpy()
    absurd = frame[highest].to_numpy(dtype="float64") > max_ratio * peaks
    if not absurd.any():
        return []
    first = frame.iloc[int(absurd.argmax())]
    return [
        f"{int(absurd.sum())} rows forecast more than {max_ratio:g}x their series' highest weekly sales, first "
        f"sku={first['sku']} store={first['store']} week={first['week']} ({highest} {first[highest]:.4g}, "
        f"history peak {peaks[int(absurd.argmax())]:.4g})"
    ]
