"""Classification: a probability of the positive class per input row, judged by AUC, Brier score
and log loss against the label once it is known."""

from dataclasses import dataclass
from typing import Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retail_scoring.scenarios.profiles.base import TaskProfile

SCORE_BINS = 10_000  # AUC from per-class histograms: exact up to ties within 1e-4 of probability
EPSILON = 1e-15  # log loss clips probabilities as scikit-learn does


@dataclass(frozen=True)
class Classification(TaskProfile):
    label: str
    positive_class: str
    probability: str  # the output column holding P(label == positive_class)

    @classmethod
    def from_parameters(cls, parameters: dict, source: str) -> Self:
        from retail_scoring.scenarios.document import ScenarioError

        expected = {"label", "positive_class", "probability"}
        if set(parameters) != expected or not all(isinstance(parameters[name], str) for name in expected):
            raise ScenarioError(
                f"{source}: parameters of the classification profile are {sorted(expected)} (strings), "
                f"got {parameters!r}"
            )
        return cls(parameters["label"], parameters["positive_class"], parameters["probability"])

    def problems(self, input_columns: dict, output_columns: dict) -> list[str]:
        label, probability = input_columns.get(self.label), output_columns.get(self.probability)
        problems = []
        if label is None or label.type != "categorical" or self.positive_class not in (label.levels or ()):
            problems.append(
                f"the label {self.label!r} is no categorical input column with the level {self.positive_class!r}"
            )
        if probability is None or probability.type != "number" or (probability.minimum, probability.maximum) != (0, 1):
            problems.append(f"the probability {self.probability!r} is no output number with minimum 0 and maximum 1")
        return problems

    def observed(self, batch: pa.Table, output: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        known = pc.is_valid(batch[self.label])
        predicted = output[self.probability].filter(known).to_numpy()
        return predicted, pc.equal(batch[self.label].filter(known), self.positive_class).to_numpy()

    def metric_sums(self, predicted: np.ndarray, actual: np.ndarray) -> dict:
        """`predicted` probabilities, `actual` True where the label is the positive class."""
        p = np.asarray(predicted, dtype="float64")
        y = np.asarray(actual, dtype=bool)
        clipped = np.clip(p, EPSILON, 1 - EPSILON)
        bins = np.minimum((p * SCORE_BINS).astype("int64"), SCORE_BINS - 1)
        return {
            "rows": int(len(p)),
            "positives": int(y.sum()),
            "brier": float(np.sum((p - y) ** 2)),
            "log_loss": float(-np.sum(np.where(y, np.log(clipped), np.log1p(-clipped)))),
            "positive_bins": np.bincount(bins[y], minlength=SCORE_BINS).tolist(),
            "negative_bins": np.bincount(bins[~y], minlength=SCORE_BINS).tolist(),
        }

    def metrics(self, sums: dict) -> dict[str, float]:
        rows, positives = sums["rows"], sums["positives"]
        positive_bins = np.asarray(sums["positive_bins"], dtype="float64")
        negative_bins = np.asarray(sums["negative_bins"], dtype="float64")
        negatives_below = np.cumsum(negative_bins) - negative_bins  # negatives in lower bins
        pairs = positives * (rows - positives)
        # a positive beats every negative in a lower bin and half of those in its own
        auc = float(np.sum(positive_bins * (negatives_below + negative_bins / 2)) / pairs) if pairs else float("nan")
        return {"rows": rows, "auc": auc, "brier": sums["brier"] / rows, "log_loss": sums["log_loss"] / rows}
