"""Model features, vectorized in pandas, with the reference architecture's semantics.

For step s, per (sku, store) series ordered by week: lag_k is log sales k+s-1 weeks back
(k = 1..5); month_mean/max/min summarize lag1..lag5; level is the cumulative mean of the
non-missing lag1 values. At scoring time, for target week origin+s, that makes lag_k the log
sales of week origin-k+1 and level the mean log sales of the whole visible history, whatever s.
"""

import numpy as np
import pandas as pd

from retail_scoring.errors import InputDataError
from retail_scoring.schema import HORIZON, N_LAGS, PRICE_COLUMNS, SERIES_KEY

LAG_COLUMNS = tuple(f"lag{k}" for k in range(1, N_LAGS + 1))
EXOGENOUS = ("base_sku", "deal", "feat", *PRICE_COLUMNS)


def _with_month_summaries(frame: pd.DataFrame) -> pd.DataFrame:
    lags = frame[list(LAG_COLUMNS)]
    month_mean = (frame["lag1"] + frame["lag2"] + frame["lag3"] + frame["lag4"] + frame["lag5"]) / 5
    return frame.assign(month_mean=month_mean, month_max=lags.max(axis=1), month_min=lags.min(axis=1))


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
    frame = _with_month_summaries(frame.assign(level=level.where(has_lag1)))
    return frame.dropna().reset_index(drop=True)


def scoring_features(history: pd.DataFrame, future: pd.DataFrame, origin: int, source: str) -> pd.DataFrame:
    """One row per (series, step 1..HORIZON) with every model feature, as of `origin`.

    `history` holds the series' weeks up to `origin` (with sales); `future` their planned
    exogenous values for weeks origin+1..origin+HORIZON. `source` names the product in errors.
    Works on numpy arrays of the series laid end to end: this runs once per product per task.
    """
    history = _sorted_by_series(history)
    sku, store, week = (history[c].to_numpy() for c in ("sku", "store", "week"))
    log_sales = np.log(history["sales"].to_numpy())
    starts = np.flatnonzero(np.r_[True, (sku[1:] != sku[:-1]) | (store[1:] != store[:-1])])
    ends = np.r_[starts[1:], len(week)] - 1
    _check_contiguous(sku, store, week, starts, ends, source)
    short = (week[ends] != origin) | (ends - starts + 1 < N_LAGS)
    if short.any():
        first = starts[short.argmax()]
        raise InputDataError(
            f"{source}: series sku={sku[first]} store={store[first]} lacks the {N_LAGS} weeks of sales up to "
            f"origin week {origin} that the lag features need"
        )
    per_series = pd.DataFrame({"sku": sku[starts], "store": store[starts]})
    for k in range(1, N_LAGS + 1):
        per_series[f"lag{k}"] = log_sales[ends - k + 1]
    per_series["level"] = np.add.reduceat(log_sales, starts) / (ends - starts + 1)
    per_series = _with_month_summaries(per_series)

    future = future[(future["week"] > origin) & (future["week"] <= origin + HORIZON)]
    rows = future[[*SERIES_KEY, "week", *EXOGENOUS]].merge(per_series, on=list(SERIES_KEY), how="right")
    planned_weeks = rows.groupby(list(SERIES_KEY), sort=False)["week"].nunique()
    if (planned_weeks < HORIZON).any() or len(rows) != len(per_series) * HORIZON:
        sku_, store_ = planned_weeks.index[(planned_weeks < HORIZON).argmax()]
        raise InputDataError(
            f"{source}: series sku={sku_} store={store_} lacks planned deal/feat/prices for some of "
            f"weeks {origin + 1}..{origin + HORIZON}"
        )
    rows = rows.assign(step=rows["week"] - origin).sort_values(["step", "sku", "store"], kind="stable")
    features = rows.drop(columns=["sku", "store", "week", "step"])
    if features.isna().to_numpy().any():
        column = features.columns[features.isna().any()][0]
        raise InputDataError(f"{source}: feature '{column}' is NaN for some rows")
    return rows.reset_index(drop=True)


def _sorted_by_series(history: pd.DataFrame) -> pd.DataFrame:
    """Product files are written sorted; sort only when one is not."""
    sku, store, week = (history[c].to_numpy() for c in ("sku", "store", "week"))
    ascending = (np.diff(sku) > 0) | (
        (np.diff(sku) == 0) & ((np.diff(store) > 0) | ((np.diff(store) == 0) & (np.diff(week) > 0)))
    )
    return history if ascending.all() else history.sort_values(["sku", "store", "week"])


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
