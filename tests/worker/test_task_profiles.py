"""The task profiles' metrics, added up from shards' sums, equal the metrics computed
over all rows at once by their textbook definitions."""

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from retail_scoring.scenarios.document import ScenarioError
from retail_scoring.scenarios.profiles import profile_for
from retail_scoring.scenarios.profiles.base import add_metric_sums

PARAMETERS = {"label": "churn", "positive_class": "yes", "probability": "p_churn"}


def test_metrics_from_shard_sums_equal_the_metrics_of_all_rows():
    rng = np.random.default_rng(7)
    actual = rng.random(5000) < 0.15
    predicted = np.clip(0.15 + 0.4 * (actual - 0.15) + rng.normal(0, 0.2, 5000), 0, 1).round(5)
    profile = profile_for("classification", PARAMETERS, "churn.json")
    sums = {}
    for shard in np.array_split(np.arange(5000), 7):
        sums = add_metric_sums(sums, profile.metric_sums(predicted[shard], actual[shard]))
    metrics = profile.metrics(sums)
    u = mannwhitneyu(predicted[actual], predicted[~actual]).statistic  # ties count half
    assert metrics["auc"] == pytest.approx(u / (actual.sum() * (~actual).sum()), abs=1e-4)
    assert metrics["brier"] == pytest.approx(np.mean((predicted - actual) ** 2))
    clipped = np.clip(predicted, 1e-15, 1 - 1e-15)
    log_loss = -np.mean(actual * np.log(clipped) + (~actual) * np.log(1 - clipped))
    assert metrics["log_loss"] == pytest.approx(log_loss) and metrics["rows"] == 5000


def test_an_unknown_profile_or_wrong_parameters_are_refused_naming_the_scenario():
    with pytest.raises(
        ScenarioError, match="churn.json: unknown profile 'clasification'; known profiles: classification"
    ):
        profile_for("clasification", PARAMETERS, "churn.json")
    with pytest.raises(ScenarioError, match="churn.json: parameters of the classification profile"):
        profile_for("classification", {"label": "churn"}, "churn.json")


def test_regression_metrics_from_shard_sums_equal_those_of_all_rows():
    rng = np.random.default_rng(3)
    actual, predicted = rng.normal(10, 3, 999), rng.normal(10, 3, 999)
    profile = profile_for("regression", {"target": "amount", "prediction": "predicted_amount"}, "credit.json")
    sums = {}
    for shard in np.array_split(np.arange(999), 4):
        sums = add_metric_sums(sums, profile.metric_sums(predicted[shard], actual[shard]))
    metrics = profile.metrics(sums)
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - actual) ** 2)))
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(predicted - actual)))
