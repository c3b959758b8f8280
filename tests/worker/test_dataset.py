import numpy as np

from retail_scoring.data.dataset import product_tables
from retail_scoring.data.schema import HORIZON, TABLES


def test_reference_series_follow_the_reference_cleaning(reference_series):
    # The "last week is 160" rule keeps 80 of the 83 stores (3 stores' series end earlier).
    series = reference_series.groupby(["sku", "store"])["week"].agg(["min", "max", "count"])
    assert len(series) == 880
    assert reference_series["sku"].nunique() == 11
    assert sorted(reference_series["store"].unique()) == list(range(1, 81))
    assert reference_series["week"].min() == 0 and (series["max"] == 120).all()
    assert (series["max"] - series["min"] + 1 == series["count"]).all(), "every week inside a series present"
    assert not reference_series.isna().any().any()
    assert list(reference_series.columns) == list(TABLES["history"].names)


def test_missing_weeks_carry_the_previous_week_forward(reference_series):
    # store 1 (raw store 2) brand 1 has no raw row for raw week 41..45: week 1..5 copy week 0
    series = reference_series[(reference_series["store"] == 1) & (reference_series["base_sku"] == 1)]
    first_weeks = series.set_index("week").loc[0:5]
    assert (first_weeks["sales"] == first_weeks["sales"].iloc[0]).all()
    assert np.isclose(first_weeks["sales"].iloc[0], np.exp(9.018695))


def test_products_get_unique_sku_ids_and_hold_back_the_last_weeks(small_reference):
    first, second = product_tables(small_reference, 1), product_tables(small_reference, 2)
    assert set(first["history"]["sku"]).isdisjoint(second["history"]["sku"])
    assert (first["history"]["base_sku"] == second["history"]["base_sku"]).all()
    last_week = small_reference["week"].max()
    assert first["history"]["week"].max() == last_week - HORIZON
    assert sorted(first["futurex"]["week"].unique()) == list(range(last_week - HORIZON + 1, last_week + 1))
    assert list(first["actuals"].columns) == ["sku", "store", "week", "sales"]
    assert "sales" not in first["futurex"]
