import numpy as np
import pandas as pd
import pytest

from retail_scoring.data.schema import HORIZON, PRICE_COLUMNS
from retail_scoring.errors import InputDataError
from retail_scoring.packages.gbm.features import scoring_features, training_features


def series(weeks: range, sales: list[float], sku: int = 1, store: int = 1) -> pd.DataFrame:
    frame = pd.DataFrame({"sku": sku, "base_sku": sku, "store": store, "week": list(weeks), "deal": 0, "feat": 0})
    for price in PRICE_COLUMNS:
        frame[price] = 0.5
    frame["sales"] = sales
    return frame


def plans(origin: int, sku: int = 1, store: int = 1) -> pd.DataFrame:
    frame = series(range(origin + 1, origin + HORIZON + 1), [np.nan] * HORIZON, sku, store)
    return frame.drop(columns="sales").assign(deal=range(HORIZON))


def test_scoring_lags_count_back_from_the_origin_for_every_step():
    sales = [float(v) for v in range(1, 11)]  # weeks 0..9
    rows = scoring_features(series(range(10), sales), plans(9), origin=9, source="p")
    assert len(rows) == HORIZON and list(rows["step"]) == list(range(1, HORIZON + 1))
    assert rows["week"].tolist() == list(range(10, 23))
    assert rows["deal"].tolist() == list(range(HORIZON)), "future features come from the target week"
    for k in range(1, 6):
        assert np.allclose(rows[f"lag{k}"], np.log(10 - k + 1))
    assert np.allclose(rows["level"], np.log(sales).mean())
    assert np.allclose(rows["month_mean"], np.log([10, 9, 8, 7, 6]).mean())
    assert np.allclose(rows["month_max"], np.log(10)) and np.allclose(rows["month_min"], np.log(6))


def test_scoring_rows_come_in_forecast_file_order_whatever_the_input_order():
    history = pd.concat([series(range(10), [2.0] * 10, sku=2), series(range(10), [1.0] * 10, sku=1, store=3)])
    future = pd.concat([plans(9, sku=1, store=3), plans(9, sku=2)]).iloc[::-1]
    rows = scoring_features(history.iloc[::-1], future, origin=9, source="p")
    expected = pd.DataFrame({"sku": [1] * 13 + [2] * 13, "store": [3] * 13 + [1] * 13, "week": [*range(10, 23)] * 2})
    pd.testing.assert_frame_equal(rows[["sku", "store", "week"]], expected)
    assert np.allclose(rows["level"], [0.0] * 13 + [np.log(2.0)] * 13), "per-series features stay with their series"


def test_training_features_shift_lags_by_the_step():
    sales = [float(v) for v in range(1, 21)]
    rows = training_features(series(range(20), sales), step=3)
    first = rows.iloc[0]
    # step 3: lag1 of week w is week w-3; lag5 week w-7, so the first complete row is week 7
    assert first["week"] == 7
    assert np.isclose(first["lag1"], np.log(5)) and np.isclose(first["lag5"], np.log(1))
    assert np.isclose(first["log_sales"], np.log(8))
    # level: cumulative mean of lag1 over the rows where lag1 exists (weeks 3..7 -> sales 1..5)
    assert np.isclose(first["level"], np.log([1, 2, 3, 4, 5]).mean())


def test_gap_in_history_is_an_error_naming_the_series():
    history = series(range(10), [1.0] * 10).drop(index=4)
    with pytest.raises(InputDataError, match=r"product_009.*sku=1 store=1 has gaps"):
        scoring_features(history, plans(9), origin=9, source="product_009")


def test_too_short_history_is_an_error_naming_the_series():
    history = series(range(7, 10), [1.0] * 3, sku=4, store=2)
    with pytest.raises(InputDataError, match=r"sku=4 store=2 lacks the 5 weeks"):
        scoring_features(history, plans(9, sku=4, store=2), origin=9, source="p")


def test_missing_future_plans_are_an_error():
    with pytest.raises(InputDataError, match=r"lacks planned deal/feat/prices for some of weeks 10..22"):
        scoring_features(series(range(10), [1.0] * 10), plans(9).iloc[:-1], origin=9, source="p")


def test_plans_for_a_series_without_history_are_an_error():
    future = pd.concat([plans(9), plans(9, sku=2)])
    with pytest.raises(InputDataError, match=r"planned weeks 10..22 hold duplicate rows or series without history"):
        scoring_features(series(range(10), [1.0] * 10), future, origin=9, source="p")


def test_nan_feature_is_an_error_naming_the_feature():
    future = plans(9).assign(price3=np.nan)
    with pytest.raises(InputDataError, match=r"feature 'price3' is NaN"):
        scoring_features(series(range(10), [1.0] * 10), future, origin=9, source="p")
