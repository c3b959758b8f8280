"""The interface every task profile implements."""

from abc import ABC, abstractmethod
from typing import Self

import numpy as np
import pyarrow as pa


class TaskProfile(ABC):
    """A kind of prediction: its parameters, and the sums a partition's summary keeps so that the
    run's metrics come from P summaries, never from every row."""

    @classmethod
    @abstractmethod
    def from_parameters(cls, parameters: dict, source: str) -> Self:
        """The profile with the scenario's `parameters` checked (ScenarioError naming `source`)."""

    @abstractmethod
    def problems(self, input_columns: dict, output_columns: dict) -> list[str]:
        """What the scenario's columns (name -> Column) lack for this profile's parameters."""

    @abstractmethod
    def observed(self, batch: pa.Table, output: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """The predictions and actuals of the rows whose actual is known (the shard's input and
        its output, row for row)."""

    @abstractmethod
    def metric_sums(self, predicted: np.ndarray, actual: np.ndarray) -> dict:
        """A shard's additive sums for the profile's metrics (rows with a known actual only)."""

    @abstractmethod
    def metrics(self, sums: dict) -> dict[str, float]:
        """The metrics of rows whose sums were added up (add_metric_sums)."""


def add_metric_sums(total: dict, more: dict) -> dict:
    """Two shards' sums added up, value by value (lists element-wise)."""
    if not total:
        return more
    return {
        name: (np.add(total[name], value).tolist() if isinstance(value, list) else total[name] + value)
        for name, value in more.items()
    }
