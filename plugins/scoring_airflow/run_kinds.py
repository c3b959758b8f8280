"""What the score operator needs of a run, whatever it scores: its plan's compute, its partitions,
which of them are valid already (a rerun skips those), each partition's scoring task (the worker's
arguments and the files it may write) and how to name a partition's work in a message. One class
per kind of run plus one line in RUN_KINDS: a sales forecast of products, a scenario's shards."""

from abc import ABC, abstractmethod
from functools import cached_property
from typing import Literal

from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import RunManifest, RunPlan, ScenarioRunManifest, ScenarioRunPlan
from scoring_airflow.partitions import read_run_manifest, run_problems
from scoring_airflow.planning import read_plan
from scoring_airflow.scenario_planning import read_scenario_plan
from scoring_airflow.scenario_validation import checked_scenario_partitions, read_scenario_manifest

RunKind = Literal["forecast", "scenario"]
NAMED = 20  # a message lists a partition's products or shards up to this many


def named(what: str, items: list[str]) -> str:
    more = len(items) - NAMED
    return f"{what} {', '.join(items[:NAMED])}" + (f" and {more} more" if more > 0 else "")


class ScoringRun(ABC):
    """A planned run as the score operator sees it (`document`: the plan task's XCom)."""

    unit: str  # what a partition's items are, in progress lines
    files_page: str | None  # the outputs app's page of the run's files (links.ForecastFilesLink), None: none

    def __init__(self, document: dict):
        self.plan = self.read(document)
        self.layout = StorageLayout(self.plan.storage_root)

    @staticmethod
    @abstractmethod
    def read(document: dict) -> RunPlan | ScenarioRunPlan: ...

    @abstractmethod
    def partitions(self) -> dict[str, list[int]]:
        """Each partition's items (products, shard numbers), from the run manifest in storage."""

    @abstractmethod
    def problems(self) -> dict[str, dict[str, list[str]]]:
        """What keeps each partition from being valid; empty for a valid one."""

    @abstractmethod
    def arguments(self, partition: str) -> list[str]:
        """The worker CLI's arguments for the partition, the same on every backend."""

    @abstractmethod
    def writes(self, partition: str) -> tuple[str, ...]:
        """Every file the partition's task writes (the layout's list; Batch grants exactly these)."""

    @abstractmethod
    def describe(self, partition: str) -> str:
        """The partition's work for a failure message."""


class ForecastRun(ScoringRun):
    unit = "products"
    files_page = "forecasts"

    @staticmethod
    def read(document: dict) -> RunPlan:
        return read_plan(document)

    @cached_property
    def manifest(self) -> RunManifest:
        return read_run_manifest(self.plan)

    def partitions(self) -> dict[str, list[int]]:
        return self.manifest.partitions

    def problems(self) -> dict[str, dict[str, list[str]]]:
        return run_problems(self.layout, self.manifest)

    def arguments(self, partition: str) -> list[str]:
        plan = self.plan
        return ["score", "--storage", plan.storage_root, "--run-id", plan.run_id, "--partition", partition]

    def writes(self, partition: str) -> tuple[str, ...]:
        calibrated = self.plan.calibration_url is not None
        return self.layout.scoring_task_writes(self.plan.run_id, partition, self.partitions()[partition], calibrated)

    def describe(self, partition: str) -> str:
        return named("products", [str(product) for product in self.partitions()[partition]])


class ScenarioRun(ScoringRun):
    unit = "shards"
    files_page = None

    @staticmethod
    def read(document: dict) -> ScenarioRunPlan:
        return read_scenario_plan(document)

    @cached_property
    def manifest(self) -> ScenarioRunManifest:
        return read_scenario_manifest(self.plan)

    def partitions(self) -> dict[str, list[int]]:
        return self.manifest.partitions

    def problems(self) -> dict[str, dict[str, list[str]]]:
        return {checked.name: checked.problems for checked in checked_scenario_partitions(self.layout, self.manifest)}

    def arguments(self, partition: str) -> list[str]:
        plan = self.plan
        return ["score-scenario", "--storage", plan.storage_root, "--run-id", plan.run_id, "--partition", partition]

    def writes(self, partition: str) -> tuple[str, ...]:
        return self.layout.scenario_task_writes(self.plan.run_id, partition, self.partitions()[partition])

    def describe(self, partition: str) -> str:
        return named("shards", [self.manifest.shards[number].label for number in self.partitions()[partition]])


RUN_KINDS: dict[RunKind, type[ScoringRun]] = {"forecast": ForecastRun, "scenario": ScenarioRun}
