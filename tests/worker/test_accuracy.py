import numpy as np
import pandas as pd
import pytest

from retail_scoring.data.schema import QUANTILE_COLUMNS, QUANTILES, quantile_column
from retail_scoring.run.accuracy import accuracy_sums, central_intervals, combine_accuracy


def accuracy_metrics(forecast: pd.DataFrame, actuals: pd.DataFrame, quantiles=QUANTILES) -> dict:
    """The metrics of one frame of forecasts: its sums, combined."""
    return combine_accuracy([accuracy_sums(forecast, actuals, quantiles)], quantiles)


def pinball_loss(actual: list[float], predicted: list[float], quantile: float) -> float:
    """Mean pinball loss of one quantile through the sums the workers write."""
    weeks = range(1, len(actual) + 1)
    forecast = pd.DataFrame(
        {"sku": 1, "store": 1, "week": weeks, "forecast_origin": 0, quantile_column(quantile): predicted}
    )
    actuals = pd.DataFrame({"sku": 1, "store": 1, "week": weeks, "sales": actual})
    return accuracy_metrics(forecast, actuals, (quantile,))[f"pinball_{quantile_column(quantile)}"]


def test_pinball_loss_weights_under_and_over_forecasts_by_the_quantile():
    # actual 10: forecast 8 is 2 under (cost 0.9*2), forecast 14 is 4 over (cost 0.1*4)
    assert pinball_loss([10.0, 10.0], [8.0, 14.0], 0.9) == pytest.approx((1.8 + 0.4) / 2)
    assert pinball_loss([10.0], [10.0], 0.5) == 0


def test_metrics_on_a_hand_computed_example():
    forecast = pd.DataFrame(
        {
            "sku": [1, 1, 1, 1],
            "store": [1, 1, 1, 1],
            "week": [10, 11, 12, 13],
            "forecast_origin": 9,
            "q5": [50.0, 50, 50, 50],
            "q25": [80.0, 80, 80, 80],
            "q50": [100.0, 100, 100, 100],
            "q75": [120.0, 120, 120, 120],
            "q95": [150.0, 150, 150, 150],
        }
    )
    # week 13 has no actual yet: it is left out
    actuals = pd.DataFrame({"sku": [1, 1, 1], "store": [1, 1, 1], "week": [10, 11, 12], "sales": [100.0, 125.0, 40.0]})
    metrics = accuracy_metrics(forecast, actuals)
    assert metrics["rows"] == 3
    # 50% interval [80, 120] holds only 100; 90% interval [50, 150] holds 100 and 125
    assert metrics["coverage_50"] == pytest.approx(1 / 3)
    assert metrics["coverage_90"] == pytest.approx(2 / 3)
    # |100-100|/100, |125-100|/125, |40-100|/40 -> 0, 0.2, 1.5
    assert metrics["mape_q50"] == pytest.approx((0 + 0.2 + 1.5) / 3)
    # q50 pinball: 0.5 * (0 + 25 + 60) / 3
    assert metrics["pinball_q50"] == pytest.approx(0.5 * 85 / 3)
    # q5 (=50): errors 50, 75, -10 -> 0.05*50, 0.05*75, 0.95*10
    assert metrics["pinball_q5"] == pytest.approx((2.5 + 3.75 + 9.5) / 3)
    # by horizon step: weeks 10, 11, 12 are steps 1, 2, 3 of origin 9; step 4 has no actual yet
    steps = metrics["steps"]
    assert list(steps) == ["1", "2", "3"] and all(step["rows"] == 1 for step in steps.values())
    assert (steps["1"]["coverage_50"], steps["2"]["coverage_50"], steps["2"]["coverage_90"]) == (1, 0, 1)
    assert steps["3"]["pinball_q50"] == pytest.approx(0.5 * 60)


def test_no_overlapping_actuals_gives_zero_rows():
    forecast = pd.DataFrame(
        {"sku": [1], "store": [1], "week": [5], "forecast_origin": [4], **{c: [1.0] for c in QUANTILE_COLUMNS}}
    )
    actuals = pd.DataFrame({"sku": [1], "store": [1], "week": [4], "sales": [1.0]})
    assert accuracy_metrics(forecast, actuals) == {"rows": 0}


def test_metrics_follow_the_quantiles_a_package_forecasts():
    forecast = pd.DataFrame(
        {"sku": [1, 1], "store": [1, 1], "week": [5, 6], "forecast_origin": 4, "q10": [8.0, 8.0], "q90": [12.0, 12.0]}
    )
    actuals = pd.DataFrame({"sku": [1, 1], "store": [1, 1], "week": [5, 6], "sales": [10.0, 13.0]})
    metrics = accuracy_metrics(forecast, actuals, quantiles=(0.1, 0.9))
    assert metrics["pinball_q10"] == pytest.approx((0.1 * 2 + 0.1 * 5) / 2)
    assert metrics["pinball_q90"] == pytest.approx((0.1 * 2 + 0.9 * 1) / 2)
    assert not {"coverage_50", "coverage_90", "mape_q50"} & set(metrics), "no such quantiles forecast"


def test_partial_sums_added_up_give_the_metrics_of_all_rows_at_once():
    """Workers sum per product, the report adds the sums: the same metrics as over all rows (equal
    to the last bits of a float, since the additions happen in another order)."""
    rng = np.random.default_rng(7)
    weeks = np.arange(1, 41)
    actuals = pd.DataFrame({"sku": 1, "store": 1, "week": weeks, "sales": rng.uniform(10, 200, len(weeks))})
    levels = np.sort(rng.uniform(0, 250, (len(weeks), 5)), axis=1)
    quantiles = dict(zip(QUANTILE_COLUMNS, levels.T, strict=True))
    forecast = pd.DataFrame(
        {"sku": 1, "store": 1, "week": weeks, "forecast_origin": (weeks - 1) // 13 * 13, **quantiles}
    )
    parts = [accuracy_sums(forecast.iloc[start : start + 7], actuals) for start in range(0, len(weeks), 7)]
    whole, combined = accuracy_metrics(forecast, actuals), combine_accuracy(parts)
    assert combined["steps"].keys() == whole["steps"].keys() == {str(step) for step in range(1, 14)}
    assert [combined["steps"][s]["rows"] for s in ("1", "2", "13")] == [4, 3, 3], "weeks 1, 14, 27, 40 are step 1"
    assert combined["steps"]["5"]["pinball_q50"] == pytest.approx(whole["steps"]["5"]["pinball_q50"], rel=1e-14)
    combined.pop("steps"), whole.pop("steps")
    assert combined.keys() == whole.keys() and combined["rows"] == whole["rows"] == 40
    assert (combined["coverage_50"], combined["coverage_90"]) == (whole["coverage_50"], whole["coverage_90"])
    for key in ("pinball_q5", "pinball_q50", "pinball_q95", "mape_q50"):
        assert combined[key] == pytest.approx(whole[key], rel=1e-14, abs=0)
    assert sum(part["forecast_rows"] for part in parts) == 40


@pytest.mark.parametrize(
    ("quantiles", "intervals"),
    [
        (QUANTILES, {90: (0.05, 0.95), 50: (0.25, 0.75)}),
        ((0.1, 0.5, 0.9), {80: (0.1, 0.9)}),
        ((0.1, 0.25, 0.75, 0.95), {50: (0.25, 0.75)}),  # q10 has no q90: no interval
        ((0.5,), {}),
    ],
)
def test_every_symmetric_pair_of_declared_quantiles_is_a_central_interval(quantiles, intervals):
    assert central_intervals(quantiles) == intervals


def test_coverage_is_reported_for_every_central_interval_a_package_declares():
    weeks = range(4)
    forecast = pd.DataFrame(
        {"sku": 1, "store": 1, "week": weeks, "forecast_origin": -1, "q10": 5.0, "q50": 10.0, "q90": 15.0}
    )
    actuals = pd.DataFrame({"sku": 1, "store": 1, "week": weeks, "sales": [4.0, 5.0, 15.0, 16.0]})
    metrics = accuracy_metrics(forecast, actuals, (0.1, 0.5, 0.9))
    assert metrics["coverage_80"] == 0.5, "5 and 15 lie inside [q10, q90], 4 and 16 outside"
    assert "coverage_50" not in metrics and "coverage_90" not in metrics
