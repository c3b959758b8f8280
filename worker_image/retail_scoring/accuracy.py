"""Forecast accuracy against actual sales: pinball loss per quantile, interval coverage, MAPE."""

import numpy as np
import pandas as pd

from retail_scoring.schema import QUANTILE_COLUMNS, QUANTILES, ROW_KEY


def pinball_loss(actual: np.ndarray, predicted: np.ndarray, quantile: float) -> float:
    """Mean quantile loss: under-forecasts cost `quantile`, over-forecasts `1 - quantile`, per unit."""
    error = np.asarray(actual, dtype="float64") - np.asarray(predicted, dtype="float64")
    return float(np.mean(np.maximum(quantile * error, (quantile - 1) * error)))


def accuracy_metrics(forecast: pd.DataFrame, actuals: pd.DataFrame) -> dict:
    """Metrics over the forecast rows that have an actual; `rows` says how many that was."""
    joined = forecast.merge(actuals[[*ROW_KEY, "sales"]], on=list(ROW_KEY), how="inner")
    if joined.empty:
        return {"rows": 0}
    actual = joined["sales"].to_numpy()
    metrics: dict = {"rows": len(joined)}
    for quantile, column in zip(QUANTILES, QUANTILE_COLUMNS, strict=True):
        metrics[f"pinball_{column}"] = pinball_loss(actual, joined[column].to_numpy(), quantile)
    metrics["coverage_50"] = float(np.mean((actual >= joined["q25"]) & (actual <= joined["q75"])))
    metrics["coverage_90"] = float(np.mean((actual >= joined["q5"]) & (actual <= joined["q95"])))
    metrics["mape_q50"] = float(np.mean(np.abs(actual - joined["q50"]) / actual))
    return metrics
