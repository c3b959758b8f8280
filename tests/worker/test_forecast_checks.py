"""Validation catches forecasts that have the right schema but the wrong content."""

import numpy as np
import pandas as pd
import pytest

from retail_scoring.run.forecast_checks import check_forecast

ORIGIN = 107
QUANTILES = ["q5", "q25", "q50", "q75", "q95"]
PLANNED = pd.DataFrame({"sku": [1, 2, 3], "store": [1, 1, 1]})


def good_forecast(n_series: int = 3) -> pd.DataFrame:
    rows = [
        {
            "sku": sku,
            "store": 1,
            "week": ORIGIN + step,
            "q5": 1.0,
            "q25": 2.0,
            "q50": 3.0,
            "q75": 4.0,
            "q95": 5.0,
            "forecast_origin": ORIGIN,
            "model_version": "v1",
        }
        for sku in range(1, n_series + 1)
        for step in range(1, 14)
    ]
    return pd.DataFrame(rows)


def test_a_good_forecast_has_no_problems():
    assert check_forecast(good_forecast(), 3, ORIGIN, "v1") == []


@pytest.mark.parametrize(
    ("garble", "expected"),
    [
        (lambda f: f.iloc[:-2], "37 rows, expected 3 series x 13 weeks = 39"),
        (lambda f: pd.concat([f.iloc[:-1], f.iloc[[0]]]), "1 duplicate (sku, store, week) rows"),
        (lambda f: f.assign(week=f["week"] + 1), "weeks [121] outside the forecast weeks 108..120"),
        (lambda f: f[f["sku"] != 3], "2 series found (3 expected)"),
        (lambda f: f.assign(q50=f["q50"].where(f.index != 4)), "1 rows with NaN quantiles"),
        (lambda f: f.assign(q5=f["q5"].where(f.index != 4, -1.0)), "1 rows with negative quantiles"),
        (
            lambda f: f.assign(**{q: f[q].where(f.index != 6, np.inf) for q in QUANTILES}),
            "1 rows with infinite quantiles",
        ),
        (lambda f: f.assign(q75=f["q75"].where(f.index > 1, 1.5)), "2 rows with crossing quantiles"),
        (lambda f: f.assign(forecast_origin=100), "forecast_origin differs from the run's origin 107"),
        (lambda f: f.assign(model_version="v0"), "model_version differs from the run's v1"),
        (lambda f: f.drop(columns="q95"), "differ from the forecast schema"),
    ],
    ids=[
        "rows-missing",
        "row-duplicated",
        "wrong-weeks",
        "series-missing",
        "nan",
        "negative",
        "infinite",
        "crossing",
        "wrong-origin",
        "wrong-model",
        "schema",
    ],
)
@pytest.mark.parametrize("planned", [None, PLANNED], ids=["unplanned", "planned"])
def test_garbage_is_caught(garble, expected, planned):
    """With the planned series given, well-formed rows take a fast path: garbage must not."""
    problems = check_forecast(garble(good_forecast()).reset_index(drop=True), 3, ORIGIN, "v1", planned=planned)
    assert any(expected in problem for problem in problems), problems


def test_rows_in_another_order_are_still_valid():
    shuffled = good_forecast().sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert check_forecast(shuffled, 3, ORIGIN, "v1", planned=PLANNED) == []


def test_quantiles_are_never_reported_crossing_when_equal():
    flat = good_forecast().assign(q5=3.0, q25=3.0, q50=3.0, q75=3.0, q95=3.0)
    assert check_forecast(flat, 3, ORIGIN, "v1") == []


def test_series_must_be_exactly_the_planned_ones():
    planned = PLANNED
    assert check_forecast(good_forecast(), 3, ORIGIN, "v1", planned=planned) == []
    foreign = good_forecast().assign(sku=lambda f: f["sku"] + 11)  # another product's SKUs
    problems = check_forecast(foreign, 3, ORIGIN, "v1", planned=planned)
    assert "3 series not planned for this product, first sku=12 store=1" in problems
    assert "3 series planned but missing, first sku=1 store=1" in problems


def test_quantiles_far_above_the_series_history_are_refused():
    peaks = pd.Series([10.0, 10.0, 0.04], index=pd.MultiIndex.from_tuples([(1, 1), (2, 1), (3, 1)]))
    problems = check_forecast(good_forecast(), 3, ORIGIN, "v1", history_peak=peaks, max_ratio=100)
    assert problems == [
        "13 rows forecast more than 100x their series' highest weekly sales, first sku=3 store=1 week=108 "
        "(q95 5, history peak 0.04)"
    ]
    assert check_forecast(good_forecast(), 3, ORIGIN, "v1", history_peak=peaks, max_ratio=200) == []
