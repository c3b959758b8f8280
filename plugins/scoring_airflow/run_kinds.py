"""What the scoring chain (scoring_chain.py) needs of a run, whatever it scores: its plan's
compute, its partitions, which of them are valid already (a rerun skips those), each partition's
scoring task (the worker's arguments and the files it may write), how to name a partition's work
in a message, and its validation, publishing and report. One class per kind of run plus one line
in RUN_KINDS: a sales forecast of products, a scenario's shards."""

from abc import ABC, abstractmethod
from functools import cached_property
from typing import Literal

from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import RunManifest, RunPlan, ScenarioRunManifest, ScenarioRunPlan
from scoring_airflow import publishing, report, scenario_publishing, scenario_report, validation
from scoring_airflow.partitions import read_run_manifest, run_problems
from scoring_airflow.planning import read_plan
from scoring_airflow.scenario_planning import read_scenario_plan
from scoring_airflow.scenario_validation import (
    checked_scenario_partitions,
    read_scenario_manifest,
    validate_scenario_run,
)
from scoring_airflow.settings import ForecastSettings

RunKind = Literal["forecast", "scenario"]
NAMED = 20  # a message lists a partition's products or shards up to this many


def named(what: str, items: list[str]) -> str:
    more = len(items) - NAMED
    return f"{what} {', '.join(items[:NAMED])}" + (f" and {more} more" if more > 0 else "")


class ScoringRun(ABC):
    """A planned run as the score operator sees it (`document`: the plan task's XCom)."""

    unit: str  # what a partition's items are, in progress lines
    # whether validation runs after a failed score task too, so that its verdict names each bad partition
    validates_failed_scoring: bool

    def __init__(self, document: dict):
        self.plan = self.read(document)
        self.layout = StorageLayout(self.plan.storage_root)

    @staticmethod
    @abstractmethod
    def read(document: dict) -> RunPlan | ScenarioRunPlan: ...

    @abstractmethod
    def page(self, dag_id: str, name: str) -> str | None:
        """The outputs app's page `name` ("report", "files") of this run of `dag_id`, relative to
        the app (links.py); None where the app serves no such page."""

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

    @abstractmethod
    def validate(self) -> dict:
        """The validate task: the verdict on every partition, written to storage; fails on any problem."""

    @abstractmethod
    def publish(self) -> dict:
        """The publish task: the run's valid outputs made current by compare-and-swap."""

    @abstractmethod
    def write_report(self, score_result: dict, settings: ForecastSettings) -> str:
        """The report task: the run's report in storage; returns its URL."""


class ForecastRun(ScoringRun):
    unit = "products"
    validates_failed_scoring = False
    PAGES = {"report": "report", "files": "forecasts"}

    def page(self, dag_id: str, name: str) -> str | None:
        return f"runs/{self.plan.run_id}/{self.PAGES[name]}/"

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

    def validate(self) -> dict:
        return validation.validate_run(self.plan)

    def publish(self) -> dict:
        return publishing.publish_run(self.plan)

    def write_report(self, score_result: dict, settings: ForecastSettings) -> str:
        return report.write_report(self.plan, score_result, settings)


class ScenarioRun(ScoringRun):
    unit = "shards"
    validates_failed_scoring = True  # the verdict names every bad shard with its rule: the errors a user reads

    def page(self, dag_id: str, name: str) -> str | None:
        """The report, for the scenario DAG's readers (outputs_app.scenario_report); no files page yet."""
        return f"dags/{dag_id}/runs/{self.plan.run_id}/report/" if name == "report" else None

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

    def validate(self) -> dict:
        return validate_scenario_run(self.plan)

    def publish(self) -> dict:
        return scenario_publishing.publish_scenario_run(self.plan)

    def write_report(self, score_result: dict, settings: ForecastSettings) -> str:
        return scenario_report.write_scenario_report(self.plan)


RUN_KINDS: dict[RunKind, type[ScoringRun]] = {"forecast": ForecastRun, "scenario": ScenarioRun}
