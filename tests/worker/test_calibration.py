"""Calibration: residual profiles give any shift's accuracy exactly, learned shifts reach their
levels, calibrated quantiles never cross, and a calibration file is used only as it was written."""

import numpy as np
import pandas as pd
import pytest

from retail_scoring import storage
from retail_scoring.data.schema import QUANTILE_COLUMNS, QUANTILES
from retail_scoring.run.accuracy import accuracy_sums, combine_accuracy, with_actuals
from retail_scoring.run.calibration import (
    GRID_STEP,
    Calibration,
    CalibrationError,
    add_profiles,
    learn_calibration,
    origin_weights,
    profile_document,
    read_calibration,
    residual_sums,
    shifted_accuracy,
)

ORIGIN = 50


def residual_profile(forecast: pd.DataFrame, actuals: pd.DataFrame, quantiles: tuple[float, ...]) -> dict:
    """A forecast's residual profile as a partition summary holds it."""
    return profile_document(residual_sums(with_actuals(forecast, actuals), quantiles, 13), quantiles)


def too_narrow_forecast(seed: int, rows: int = 4000, spread: float = 0.3, bias: float = 0.05):
    """Forecast quantiles of log-normal sales whose true spread is 0.5, forecast as `spread`."""
    rng = np.random.default_rng(seed)
    median = np.exp(rng.normal(3, 1, rows))
    keys = {"sku": np.arange(rows), "store": 1, "week": ORIGIN + rng.integers(1, 14, rows)}
    normal_quantiles = [-1.645, -0.674, 0.0, 0.674, 1.645]
    forecast = pd.DataFrame({**keys, "forecast_origin": ORIGIN})
    for column, z in zip(QUANTILE_COLUMNS, normal_quantiles, strict=True):
        forecast[column] = median * np.exp(spread * z)
    actuals = pd.DataFrame({**keys, "sales": median * np.exp(rng.normal(bias, 0.5, rows))})
    return forecast, actuals


def metrics(sums: dict) -> dict:
    return {key: value for key, value in combine_accuracy([sums]).items() if key != "steps"}


def learned(profiles: dict[int, dict], half_life: float | None = None) -> Calibration:
    return learn_calibration(profiles, QUANTILES, 13, half_life, model_version="m", package_sha256="s", backtest_id="b")


def test_a_profile_gives_the_accuracy_of_the_forecast_itself():
    forecast, actuals = too_narrow_forecast(1)
    profile = residual_profile(forecast, actuals, QUANTILES)
    expected, got = metrics(accuracy_sums(forecast, actuals)), metrics(shifted_accuracy(profile, None, QUANTILES))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-7), key


def test_a_profile_gives_the_accuracy_of_the_calibrated_forecast_exactly():
    """What the backtest computes from summaries is what a calibrated run's forecast scores."""
    forecast, actuals = too_narrow_forecast(2)
    calibration = learned({ORIGIN: residual_profile(forecast, actuals, QUANTILES)})
    calibrated = calibration.apply(forecast, QUANTILE_COLUMNS)
    expected = metrics(accuracy_sums(calibrated, actuals))
    got = metrics(shifted_accuracy(residual_profile(forecast, actuals, QUANTILES), calibration.shifts, QUANTILES))
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-7), key


def test_learned_shifts_bring_too_narrow_intervals_to_their_levels_on_new_data():
    forecast, actuals = too_narrow_forecast(3)
    before = metrics(accuracy_sums(forecast, actuals))
    assert before["coverage_90"] < 0.75 and before["coverage_50"] < 0.40
    calibration = learned({ORIGIN: residual_profile(forecast, actuals, QUANTILES)})
    new_forecast, new_actuals = too_narrow_forecast(4)
    after = metrics(accuracy_sums(calibration.apply(new_forecast, QUANTILE_COLUMNS), new_actuals))
    assert after["coverage_90"] == pytest.approx(0.90, abs=0.015)
    assert after["coverage_50"] == pytest.approx(0.50, abs=0.025)
    assert after["pinball_q50"] <= metrics(accuracy_sums(new_forecast, new_actuals))["pinball_q50"]


def test_profiles_add_up_like_the_rows_they_summarise():
    forecast, actuals = too_narrow_forecast(5)
    half = len(forecast) // 2
    parts = [residual_profile(f, actuals, QUANTILES) for f in (forecast.iloc[:half], forecast.iloc[half:])]
    whole = residual_profile(forecast, actuals, QUANTILES)
    added = add_profiles(*parts)
    assert metrics(shifted_accuracy(added, None, QUANTILES)) == pytest.approx(
        metrics(shifted_accuracy(whole, None, QUANTILES)), rel=1e-7
    )


def test_calibrated_quantiles_never_cross_even_when_shifts_would_cross_them():
    forecast, _ = too_narrow_forecast(6)
    crossing = {str(step): {"q5": 40, "q25": 30, "q50": 0, "q75": -30, "q95": -40} for step in range(1, 14)}
    calibration = Calibration("m", "s", "b", "test", None, [1], 1, 13, list(QUANTILES), GRID_STEP, crossing)
    moved = calibration.apply(forecast, QUANTILE_COLUMNS)[list(QUANTILE_COLUMNS)].to_numpy()
    assert (np.diff(moved, axis=1) >= 0).all()


def test_sales_equal_to_the_forecast_count_inside_the_interval_as_in_the_accuracy_sums():
    """Integer sales and forecasts drawn from past sales (a quantile forest's) meet often."""
    forecast, actuals = too_narrow_forecast(7)
    forecast[list(QUANTILE_COLUMNS)] = forecast[list(QUANTILE_COLUMNS)].round()
    actuals["sales"] = actuals["sales"].round().clip(lower=1)
    actuals.loc[::3, "sales"] = forecast.loc[::3, "q25"].clip(lower=1)
    actuals.loc[1::3, "sales"] = forecast.loc[1::3, "q75"].clip(lower=1)
    profile = residual_profile(forecast, actuals, QUANTILES)
    assert profile["1"]["q25"]["hits"] > 0
    expected, got = metrics(accuracy_sums(forecast, actuals)), metrics(shifted_accuracy(profile, None, QUANTILES))
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-7), key


def test_a_median_that_a_fifth_of_the_sales_equal_stays_where_it_is():
    """Sales meeting the forecast count half below, half above: two fifths 5% below, a fifth equal
    and two fifths 5% above is a median already at its level, not one to move down by 5%."""
    rows = 500
    keys = {"sku": np.arange(rows), "store": 1, "week": ORIGIN + 1, "forecast_origin": ORIGIN}
    forecast = pd.DataFrame({**keys, **{column: 100.0 for column in QUANTILE_COLUMNS}})
    sales = np.repeat([95.0, 100.0, 105.0], [200, 100, 200])
    calibration = learned({ORIGIN: residual_profile(forecast, pd.DataFrame({**keys, "sales": sales}), QUANTILES)})
    assert calibration.shifts["1"]["q50"] == 0


def test_recent_origins_weigh_more():
    assert origin_weights([80, 93, 106], 13.0) == pytest.approx({80: 0.25, 93: 0.5, 106: 1.0})
    assert origin_weights([80, 106], None) == {80: 1.0, 106: 1.0}


def test_a_calibration_is_usable_only_once_its_last_forecast_weeks_have_sales():
    forecast, actuals = too_narrow_forecast(8)
    profile = residual_profile(forecast, actuals, QUANTILES)
    calibration = learned({61: profile, 81: profile})
    assert calibration.learned_through == 81 and calibration.usable_from == 94


def test_a_calibration_file_is_read_only_as_pinned(tmp_path):
    forecast, actuals = too_narrow_forecast(9)
    calibration = learned({ORIGIN: residual_profile(forecast, actuals, QUANTILES)})
    url = f"file://{tmp_path}/calibration.json"
    storage.write_bytes_atomic(url, calibration.to_json())
    read, sha256 = read_calibration(url, storage.sha256_hex(calibration.to_json()))
    assert read == calibration
    storage.write_bytes_atomic(url, calibration.to_json().replace(b'"q95": ', b'"q95": 1'))
    with pytest.raises(CalibrationError, match=rf"^{url}: content \w+ is not the calibration the run pinned"):
        read_calibration(url, sha256)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "not a calibration file: not JSON"),
        (b'{"calibration_version": 99}', "calibration version 99, but this release reads version 1"),
        (b'{"calibration_version": 1, "model_version": "m"}', "not a calibration file: missing package_sha256"),
    ],
)
def test_a_file_that_is_no_calibration_of_this_release_is_refused_naming_it(tmp_path, content, message):
    url = f"file://{tmp_path}/calibration.json"
    storage.write_bytes_atomic(url, content)
    with pytest.raises(CalibrationError, match=f"^{url}: {message}"):
        read_calibration(url)


def test_a_calibration_for_other_quantiles_is_refused():
    forecast, actuals = too_narrow_forecast(10)
    calibration = learned({ORIGIN: residual_profile(forecast, actuals, QUANTILES)})
    with pytest.raises(CalibrationError, match=r"learned for 13 weeks at quantiles .* but model package p forecasts"):
        calibration.check_fits("p", 13, (0.1, 0.5, 0.9), "calibration.json")
