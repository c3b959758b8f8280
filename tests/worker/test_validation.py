"""Validation catches forecasts that have the right schema but the wrong content."""

import pandas as pd
import pytest

from retail_scoring.validation import check_forecast

ORIGIN = 107


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
        "crossing",
        "wrong-origin",
        "wrong-model",
        "schema",
    ],
)
def test_garbage_is_caught(garble, expected):
    problems = check_forecast(garble(good_forecast()).reset_index(drop=True), 3, ORIGIN, "v1")
    assert any(expected in problem for problem in problems), problems


def test_quantiles_are_never_reported_crossing_when_equal():
    flat = good_forecast().assign(q5=3.0, q25=3.0, q50=3.0, q75=3.0, q95=3.0)
    assert check_forecast(flat, 3, ORIGIN, "v1") == []
