"""Regression: one predicted number per input row, judged by RMSE and MAE against the target."""

from dataclasses import dataclass
from typing import Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retail_scoring.scenarios.profiles.base import TaskProfile


@dataclass(frozen=True)
class Regression(TaskProfile):
    target: str
    prediction: str  # the output column

    @classmethod
    def from_parameters(cls, parameters: dict, source: str) -> Self:
        from retail_scoring.scenarios.document import ScenarioError

        expected = {"target", "prediction"}
        if set(parameters) != expected or not all(isinstance(parameters[name], str) for name in expected):
            raise ScenarioError(
                f"{source}: parameters of the regression profile are {sorted(expected)} (strings), got {parameters!r}"
            )
        return cls(parameters["target"], parameters["prediction"])

    def problems(self, input_columns: dict, output_columns: dict) -> list[str]:
        problems = []
        if getattr(input_columns.get(self.target), "type", None) not in ("integer", "number"):
            problems.append(f"the target {self.target!r} is no numeric input column")
        if getattr(output_columns.get(self.prediction), "type", None) != "number":
            problems.append(f"the prediction {self.prediction!r} is no output number")
        return problems

    def observed(self, batch: pa.Table, output: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        known = pc.is_valid(batch[self.target])
        actual = batch[self.target].filter(known).cast(pa.float64()).to_numpy()
        return output[self.prediction].filter(known).to_numpy(), actual

    def metric_sums(self, predicted: np.ndarray, actual: np.ndarray) -> dict:
        error = np.asarray(predicted, dtype="float64") - np.asarray(actual, dtype="float64")
        return {
            "rows": int(len(error)),
            "squared_error": float(np.sum(error**2)),
            "absolute_error": float(np.sum(np.abs(error))),
        }

    def metrics(self, sums: dict) -> dict[str, float]:
        rows = sums["rows"]
        return {
            "rows": rows,
            "rmse": float(np.sqrt(sums["squared_error"] / rows)),
            "mae": sums["absolute_error"] / rows,
        }
