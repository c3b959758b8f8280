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
    """
    history = history.sort_values(["sku", "store", "week"])
    _check_contiguous(history, source)
    history = history.assign(log_sales=np.log(history["sales"]))
    by_series = history.groupby(list(SERIES_KEY), sort=True)
    recent = history[history["week"] > origin - N_LAGS]
    lags = recent.pivot(index=list(SERIES_KEY), columns="week", values="log_sales")
    lags = lags.reindex(columns=range(origin, origin - N_LAGS, -1))
    short = lags.isna().any(axis=1)
    if short.any():
        sku, store = lags.index[short][0]
        raise InputDataError(
            f"{source}: series sku={sku} store={store} lacks the {N_LAGS} weeks of sales up to "
            f"origin week {origin} that the lag features need"
        )
    per_series = pd.DataFrame(lags.to_numpy(), index=lags.index, columns=list(LAG_COLUMNS))
    per_series["level"] = by_series["log_sales"].sum() / by_series["log_sales"].count()
    per_series = _with_month_summaries(per_series).reset_index()

    future = future[(future["week"] > origin) & (future["week"] <= origin + HORIZON)]
    future_weeks = future.groupby(list(SERIES_KEY))["week"].nunique()
    incomplete = future_weeks.reindex(lags.index, fill_value=0) < HORIZON
    if incomplete.any():
        sku, store = lags.index[incomplete][0]
        raise InputDataError(
            f"{source}: series sku={sku} store={store} lacks planned deal/feat/prices for some of "
            f"weeks {origin + 1}..{origin + HORIZON}"
        )
    rows = future[[*SERIES_KEY, "week", *EXOGENOUS]].merge(per_series, on=list(SERIES_KEY), how="inner")
    rows = rows.assign(step=rows["week"] - origin).sort_values(["step", "sku", "store"])
    features = rows.drop(columns=["sku", "store", "week", "step"])
    if features.isna().any().any():
        column = features.columns[features.isna().any()][0]
        raise InputDataError(f"{source}: feature '{column}' is NaN for some rows")
    return rows.reset_index(drop=True)


def _check_contiguous(history: pd.DataFrame, source: str) -> None:
    """Lags count rows, so a missing week would silently shift every lag after it."""
    span = history.groupby(list(SERIES_KEY))["week"].agg(["min", "max", "count"])
    gaps = span[span["max"] - span["min"] + 1 != span["count"]]
    if not gaps.empty:
        (sku, store), row = next(iter(gaps.iterrows()))
        raise InputDataError(
            f"{source}: series sku={sku} store={store} has gaps in its weekly history "
            f"({int(row['count'])} rows for weeks {int(row['min'])}..{int(row['max'])})"
        )
