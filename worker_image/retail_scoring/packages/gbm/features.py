"""Model features, vectorized, with the reference architecture's semantics.

For step s, per (sku, store) series ordered by week: lag_k is log sales k+s-1 weeks back
(k = 1..5); month_mean/max/min summarize lag1..lag5; level is the cumulative mean of the
non-missing lag1 values. At scoring time, for target week origin+s, that makes lag_k the log
sales of week origin-k+1 and level the mean log sales of the whole visible history, whatever s.
"""

import numpy as np
import pandas as pd

from retail_scoring.data.schema import HORIZON, N_LAGS, SERIES_KEY
from retail_scoring.data.series import check_series_reach_origin, series_bounds, sorted_by_series
from retail_scoring.data.tables import has_forecast_rows
from retail_scoring.errors import InputDataError
from retail_scoring.packages.base import REFERENCE_INPUT

LAG_COLUMNS = tuple(f"lag{k}" for k in range(1, N_LAGS + 1))
EXOGENOUS = tuple(column for column, _ in REFERENCE_INPUT.exogenous)  # the kind reads the reference's columns


def month_summaries(lags: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, max and min over the lag columns of a (rows, N_LAGS) array."""
    return {
        "month_mean": sum(lags[:, k] for k in range(N_LAGS)) / N_LAGS,
        "month_max": lags.max(axis=1),
        "month_min": lags.min(axis=1),
    }


def training_features(history: pd.DataFrame, step: int) -> pd.DataFrame:
    """Rows with complete features for a model of `step`; `log_sales` is the target."""
    frame = history.sort_values(["sku", "store", "week"]).reset_index(drop=True)
    log_sales = np.log(frame["sales"])
    by_series = log_sales.groupby([frame["sku"], frame["store"]])
    lags = {f"lag{k}": by_series.shift(k + step - 1) for k in range(1, N_LAGS + 1)}
    frame = frame.assign(log_sales=log_sales, **lags)
    has_lag1 = frame["lag1"].notna()
    keys = [frame["sku"], frame["store"]]
    level = frame["lag1"].fillna(0.0).groupby(keys).cumsum() / has_lag1.groupby(keys).cumsum()
    frame = frame.assign(level=level.where(has_lag1), **month_summaries(frame[list(LAG_COLUMNS)].to_numpy()))
    return frame.dropna().reset_index(drop=True)


def scoring_features(history: pd.DataFrame, future: pd.DataFrame, origin: int, source: str) -> pd.DataFrame:
    """One row per (series, step 1..HORIZON) with every model feature, as of `origin`, in
    (sku, store, week) order: the order of the forecast file.

    `history` holds the series' weeks up to `origin` (with sales); `future` their planned
    exogenous values for weeks origin+1..origin+HORIZON. `source` names the product in errors.
    Works on numpy arrays of the series laid end to end: this runs once per product per task.
    """
    history = sorted_by_series(history)
    sku, store, week = (history[c].to_numpy() for c in ("sku", "store", "week"))
    log_sales = np.log(history["sales"].to_numpy())
    starts, ends = series_bounds(history)
    _check_contiguous(sku, store, week, starts, ends, source)
    check_series_reach_origin(history, starts, ends, origin, N_LAGS, source, "the lag features need")
    lags = np.stack([log_sales[ends - k + 1] for k in range(1, N_LAGS + 1)], axis=1)
    per_series = {
        **dict(zip(LAG_COLUMNS, lags.T, strict=True)),
        "level": np.add.reduceat(log_sales, starts) / (ends - starts + 1),
        **month_summaries(lags),
    }
    planned = _planned_weeks(future, sku[starts], store[starts], origin, source)
    rows = pd.DataFrame(
        {
            **{column: planned[column].to_numpy() for column in (*SERIES_KEY, "week", *EXOGENOUS)},
            **{name: np.repeat(values, HORIZON) for name, values in per_series.items()},
            "step": np.tile(np.arange(1, HORIZON + 1), len(starts)),
        }
    )
    features = rows.drop(columns=["sku", "store", "week", "step"])
    nan_columns = [column for column in features.columns if np.isnan(features[column].to_numpy(dtype="float64")).any()]
    if nan_columns:
        raise InputDataError(f"{source}: feature '{nan_columns[0]}' is NaN for some rows")
    return rows


def _planned_weeks(future: pd.DataFrame, series_sku, series_store, origin: int, source: str) -> pd.DataFrame:
    """The planned rows of weeks origin+1..origin+HORIZON for exactly the given series, in their
    order; an error names the first series whose plans are incomplete."""
    future = sorted_by_series(future[(future["week"] > origin) & (future["week"] <= origin + HORIZON)])
    if has_forecast_rows(future, series_sku, series_store, origin, HORIZON):
        return future
    weeks_planned = future.groupby(list(SERIES_KEY))["week"].nunique()
    weeks_planned = weeks_planned.reindex(pd.MultiIndex.from_arrays([series_sku, series_store]), fill_value=0)
    if (weeks_planned == HORIZON).all():
        raise InputDataError(
            f"{source}: planned weeks {origin + 1}..{origin + HORIZON} hold duplicate rows or series without history"
        )
    sku, store = weeks_planned.index[(weeks_planned < HORIZON).argmax()]
    raise InputDataError(
        f"{source}: series sku={sku} store={store} lacks planned deal/feat/prices for some of "
        f"weeks {origin + 1}..{origin + HORIZON}"
    )


def _check_contiguous(sku, store, week, starts, ends, source: str) -> None:
    """Lags count rows, so a missing week would silently shift every lag after it."""
    gaps = week[ends] - week[starts] + 1 != ends - starts + 1
    if gaps.any():
        index = gaps.argmax()
        first, last = starts[index], ends[index]
        raise InputDataError(
            f"{source}: series sku={sku[first]} store={store[first]} has gaps in its weekly history "
            f"({last - first + 1} rows for weeks {week[first]}..{week[last]})"
        )
