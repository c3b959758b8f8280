"""Forecast accuracy against actual sales: pinball loss per quantile, interval coverage, MAPE.

Workers sum what they scored (`accuracy_sums`, per product, where the forecasts and actuals are in
memory); the report adds the partitions' sums up (`combine_accuracy`), so it never reads a forecast."""

import math

import numpy as np
import pandas as pd

from retail_scoring.data.schema import QUANTILES, ROW_KEY, quantile_column

SALES_COLUMNS = [*ROW_KEY, "sales"]  # known sales: held-back actuals, or history after the origin
IN_SAMPLE, OUT_OF_SAMPLE, UNKNOWN_SAMPLE = "in sample", "out of sample", "training weeks unknown"


def central_intervals(quantiles: tuple[float, ...]) -> dict[int, tuple[float, float]]:
    """Every symmetric pair of the declared quantiles as a central interval, by its nominal
    coverage in percent: q5/q95 is the 90% interval, q10/q90 the 80%, q25/q75 the 50%."""
    intervals = {}
    for low in quantiles:
        high = next((q for q in quantiles if low < 0.5 and math.isclose(q, 1 - low)), None)
        if high is not None:
            intervals[round((high - low) * 100)] = (low, high)
    return intervals


def accuracy_sums(forecast: pd.DataFrame, actuals: pd.DataFrame, quantiles: tuple[float, ...] = QUANTILES) -> dict:
    """Additive sums over the forecast rows that have an actual: `rows` of them out of
    `forecast_rows`, pinball loss per quantile, rows inside each central interval of the declared
    quantiles (`inside_90` for q5/q95) and the median's absolute percentage errors; the same per
    horizon step under `steps` (step 1 is the week after the forecast's origin)."""
    return joined_sums(with_actuals(forecast, actuals), len(forecast), quantiles)


def joined_sums(joined: pd.DataFrame, forecast_rows: int, quantiles: tuple[float, ...] = QUANTILES) -> dict:
    """`accuracy_sums` of forecast rows already joined with their actuals (`with_actuals`): each
    row's terms once, summed over all rows and per step."""
    actual = joined["sales"].to_numpy(dtype="float64")
    step = (joined["week"] - joined["forecast_origin"]).to_numpy()
    terms = {"rows": np.ones(len(actual))}
    for quantile in quantiles:
        column = quantile_column(quantile)
        error = actual - joined[column].to_numpy(dtype="float64")  # under-forecasts cost `quantile` per unit
        terms[f"pinball_{column}"] = np.maximum(quantile * error, (quantile - 1) * error)
    for level, (low, high) in central_intervals(quantiles).items():
        inside = (actual >= joined[quantile_column(low)].to_numpy()) & (
            actual <= joined[quantile_column(high)].to_numpy()
        )
        terms[f"inside_{level}"] = inside.astype("float64")
    if 0.5 in quantiles:
        terms["ape_q50"] = np.abs(actual - joined[quantile_column(0.5)].to_numpy(dtype="float64")) / actual
    counted = {"rows", *(key for key in terms if key.startswith("inside_"))}

    def total(key: str, value: float) -> int | float:
        return int(round(value)) if key in counted else float(value)

    present = np.unique(step)
    by_step = {
        key: np.bincount(step, values, minlength=int(present.max(initial=0)) + 1) for key, values in terms.items()
    }
    steps = {str(s): {key: total(key, by_step[key][s]) for key in terms} for s in present.tolist()}
    return {"forecast_rows": forecast_rows, **{key: total(key, np.sum(v)) for key, v in terms.items()}, "steps": steps}


def with_actuals(forecast: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """The forecast rows that have an actual, with it as `sales`."""
    return forecast.merge(actuals[SALES_COLUMNS], on=list(ROW_KEY), how="inner")


def add_sums(total: dict, more: dict) -> dict:
    """Two accuracy sums added up, key by key, `steps` step by step."""
    added = {key: total.get(key, 0) + value for key, value in more.items() if key != "steps"}
    steps = {**total.get("steps", {})}
    for step, sums in more.get("steps", {}).items():
        steps[step] = add_sums(steps.get(step, {}), sums)
    return {**added, "steps": steps} if "steps" in total or "steps" in more else added


def combine_accuracy(partial_sums: list[dict], quantiles: tuple[float, ...] = QUANTILES) -> dict:
    """The metrics of all rows the partial sums cover: means of the pinball losses and percentage
    errors, interval coverage as a share of rows; only `rows` when no row has an actual yet; the
    same per horizon step under `steps`."""
    rows = sum(part["rows"] for part in partial_sums)
    if not rows:
        return {"rows": 0}
    metrics: dict = {"rows": rows}
    for quantile in quantiles:
        key = f"pinball_{quantile_column(quantile)}"
        metrics[key] = sum(part[key] for part in partial_sums) / rows
    for level in central_intervals(quantiles):
        metrics[f"coverage_{level}"] = sum(part[f"inside_{level}"] for part in partial_sums) / rows
    if 0.5 in quantiles:
        metrics["mape_q50"] = sum(part["ape_q50"] for part in partial_sums) / rows
    by_step: dict[str, list[dict]] = {}
    for part in partial_sums:
        for step, sums in part.get("steps", {}).items():
            by_step.setdefault(step, []).append(sums)
    if by_step:
        ordered = sorted(by_step, key=int)
        metrics["steps"] = {step: combine_accuracy(by_step[step], quantiles) for step in ordered}
    return metrics


def forecast_sample(origin: int, horizon: int, training_weeks: tuple[int, int] | None) -> str:
    """How far a forecast from `origin` can be trusted as evidence: out of sample when none of its
    weeks (origin+1..origin+horizon) lies in the package's training window, in sample when one
    does (the models have seen those sales), unknown when the package does not state its window.
    Only out-of-sample figures compare packages."""
    if training_weeks is None:
        return UNKNOWN_SAMPLE
    first, last = training_weeks
    return IN_SAMPLE if origin + 1 <= last and origin + horizon >= first else OUT_OF_SAMPLE


def known_sales(tables: list[pd.DataFrame], weeks: range) -> pd.DataFrame:
    """Sales of `weeks` from the first of `tables` that has them (held-back actuals before the
    history); none when none has them yet, normal for the newest weeks in production."""
    frames = [table[SALES_COLUMNS] for table in tables if set(SALES_COLUMNS) <= set(table.columns)]
    if not frames:
        return pd.DataFrame(columns=SALES_COLUMNS)
    sales = pd.concat(frames, ignore_index=True).drop_duplicates(list(ROW_KEY))
    return sales[sales["week"].between(weeks.start, weeks.stop - 1)]
