"""Forecast accuracy against actual sales: pinball loss per quantile, interval coverage, MAPE."""

import numpy as np
import pandas as pd

from retail_scoring.schema import QUANTILES, ROW_KEY, quantile_column


def pinball_loss(actual: np.ndarray, predicted: np.ndarray, quantile: float) -> float:
    """Mean quantile loss: under-forecasts cost `quantile`, over-forecasts `1 - quantile`, per unit."""
    error = np.asarray(actual, dtype="float64") - np.asarray(predicted, dtype="float64")
    return float(np.mean(np.maximum(quantile * error, (quantile - 1) * error)))


def accuracy_metrics(forecast: pd.DataFrame, actuals: pd.DataFrame, quantiles: tuple[float, ...] = QUANTILES) -> dict:
    """Metrics over the forecast rows that have an actual; `rows` says how many that was. Pinball
    loss per quantile forecast; the 50% and 90% interval coverage and the median's MAPE where the
    package forecasts those quantiles."""
    joined = forecast.merge(actuals[[*ROW_KEY, "sales"]], on=list(ROW_KEY), how="inner")
    if joined.empty:
        return {"rows": 0}
    actual = joined["sales"].to_numpy()
    metrics: dict = {"rows": len(joined)}
    for quantile in quantiles:
        column = quantile_column(quantile)
        metrics[f"pinball_{column}"] = pinball_loss(actual, joined[column].to_numpy(), quantile)
    for name, (low, high) in {"coverage_50": (0.25, 0.75), "coverage_90": (0.05, 0.95)}.items():
        if low in quantiles and high in quantiles:
            inside = (actual >= joined[quantile_column(low)]) & (actual <= joined[quantile_column(high)])
            metrics[name] = float(np.mean(inside))
    if 0.5 in quantiles:
        metrics["mape_q50"] = float(np.mean(np.abs(actual - joined[quantile_column(0.5)]) / actual))
    return metrics
