"""A scenario's run planned: refused before any pool exists when the package does not fit or the
as-of date is no date; the scenario pinned by content and copied into the run; the manifest
giving every shard to one partition; the validation of what the tasks wrote."""

import dataclasses
import json
from datetime import date

import pyarrow as pa
import pytest

from retail_scoring import storage
from retail_scoring.errors import ContentChangedError
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from retail_scoring.run.contract import ContractError, ScenarioPartitionSummary, ScenarioRunManifest
from retail_scoring.scenarios.churn_data import (
    churn_customers,
    load_mlc_churn,
    seal,
    table_manifest,
    train_glm,
    write_by_state,
)
from retail_scoring.scenarios.document import Scenario
from retail_scoring.scenarios.task import read_run_scenario
from scoring_airflow.partitions import pin_summaries, problem_list
from scoring_airflow.planning import PlanError
from scoring_airflow.scenario_planning import plan_scenario_run
from scoring_airflow.scenario_publishing import refuse_repeated_keys
from scoring_airflow.scenario_validation import (
    checked_scenario_partitions,
    read_scenario_manifest,
    validate_scenario_run,
)
from scoring_airflow.settings import ForecastSettings
from scoring_airflow.validation import ValidationFailed
from tests.churn import SCENARIO_FILE, SNAPSHOT, churn_url

RUN_DATE = date(2026, 12, 1)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario.from_json(SCENARIO_FILE.read_bytes(), str(SCENARIO_FILE))


@pytest.fixture(scope="module")
def glm(tmp_path_factory, scenario):
    return seal(scenario, train_glm(tmp_path_factory.mktemp("glm") / "glm-churn-v1"), "glm-churn-v1")


@pytest.fixture
def layout(tmp_path, glm) -> StorageLayout:
    layout = StorageLayout(f"file://{tmp_path}/storage")
    write_by_state(churn_customers(load_mlc_churn(), 500, SNAPSHOT), churn_url(layout.root), rows_per_file=4)
    upload_package(glm, layout)
    return layout


def plan(layout: StorageLayout, **params):
    settings = dataclasses.replace(ForecastSettings(), storage_root=layout.root, pool_size=2)
    return plan_scenario_run(
        "scenario_customer_churn", "manual__1", RUN_DATE, {"model_version": "glm-churn-v1", **params}, settings,
        SCENARIO_FILE,
    )  # fmt: skip


def test_a_plan_pins_the_scenario_copies_it_and_gives_every_shard_to_one_partition(layout):
    planned = plan(layout)
    assert planned.as_of == "2026-11-30", "the day before the run's date"
    manifest = ScenarioRunManifest.from_json(storage.read_bytes(planned.run_manifest), planned.run_manifest)
    assert (planned.row_count, planned.partition_count) == (500, 2)
    assert sorted(n for shard in manifest.partitions.values() for n in shard) == list(range(planned.shard_count))
    assert all(shard.rows <= 100_000 for shard in manifest.shards)
    assert storage.read_bytes(planned.scenario_url) == SCENARIO_FILE.read_bytes()
    assert read_run_scenario(planned).dataset.url == churn_url(layout.root)


def test_a_scenario_copy_changed_since_planning_is_refused_by_the_worker(layout):
    planned = plan(layout)
    edited = SCENARIO_FILE.read_bytes().replace(b'"maximum": 1', b'"maximum": 2')
    storage.write_bytes_atomic(planned.scenario_url, edited)
    with pytest.raises(ContentChangedError, match=f"^{planned.scenario_url}: .* when the run was planned"):
        read_run_scenario(planned)


def test_a_manifest_leaving_a_shard_to_no_partition_is_refused(layout):
    planned = plan(layout)
    document = json.loads(storage.read_bytes(planned.run_manifest))
    document["partitions"]["partition_000"] = document["partitions"]["partition_000"][1:]
    with pytest.raises(ContractError, match="do not give every shard to one partition"):
        ScenarioRunManifest.from_json(json.dumps(document).encode(), "manifest.json")


def test_a_package_that_does_not_fit_is_refused_before_any_pool_naming_it(layout, scenario, glm, tmp_path):
    misfit = tmp_path / "glm-churn-v9"
    misfit.mkdir()
    for file in ("glm.rds", "score.R"):
        (misfit / file).write_bytes((glm / file).read_bytes())
    manifest = table_manifest(scenario, misfit, "glm-churn-v9", output=["p_stay"], r_dependencies={"churnmodels": ""})
    (misfit / "manifest.json").write_text(json.dumps(manifest))
    upload_package(misfit, layout)
    with pytest.raises(PlanError) as refused:
        plan(layout, model_version="glm-churn-v9")
    message = str(refused.value)
    assert "model package glm-churn-v9 does not fit scenario customer_churn: it returns ['p_stay']" in message
    assert "the worker environment cannot run model package glm-churn-v9: R package 'churnmodels' is not" in message
    assert storage.list_names(layout.runs_dir()) == [], "nothing of the run written"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"as_of": "30/11/2026"}, "as_of must be a date as YYYY-MM-DD, got '30/11/2026'"),
        ({"as_of": "2026-10-31"}, "the scenario's dataset cannot be read"),
        ({"model_version": ""}, "no model_version given"),
    ],
)
def test_bad_run_params_are_refused_naming_them(layout, params, message):
    with pytest.raises(PlanError, match=message):
        plan(layout, **params)


def test_two_results_for_one_customer_are_refused_before_publishing():
    output = pa.table({"customer_id": [1, 2, 1], "snapshot": [SNAPSHOT] * 3, "p_churn": [0.1, 0.2, 0.3]})
    with pytest.raises(ValidationFailed, match="1 keys have more than one result, first customer_id=1"):
        refuse_repeated_keys(output, ("customer_id",), "run-1")


def write_scored_partitions(layout, planned, change=lambda summary, first: {}) -> ScenarioRunManifest:
    """Each partition's outputs and summary as its task would write them, pinned as the score task
    pins them when the job ends; `change(summary, first shard)` gives the first partition's summary
    other fields."""
    manifest = read_scenario_manifest(planned)
    for partition, shards in manifest.partitions.items():
        outputs = {str(n): storage.write_recorded(layout.shard_output(planned.run_id, n), b"rows") for n in shards}
        summary = ScenarioPartitionSummary(
            shards=shards, scenario_sha256=planned.scenario_sha256, package_sha256=planned.model_manifest_sha256,
            outputs=outputs, rows=dict.fromkeys(outputs, 1),
        )  # fmt: skip
        if partition == "partition_000":
            summary = dataclasses.replace(summary, **change(summary, str(shards[0])))
        storage.write_bytes_atomic(layout.partition_summary(planned.run_id, partition), summary.to_json())
    pin_summaries(layout, planned.run_id, list(manifest.partitions))
    return manifest


def without(outputs: dict, shard: str) -> dict:
    return {number: written for number, written in outputs.items() if number != shard}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s, first: {}, None),
        (lambda s, first: {"scenario_sha256": "0" * 64}, "scored with scenario content 000000000000, the run pins"),
        (lambda s, first: {"package_sha256": "0" * 64}, "scored with model package content 000000000000, the run"),
        (lambda s, first: {"shards": s.shards[1:]}, "written for other shards than the run's plan gives the partition"),
        (lambda s, first: {"error": "glm-churn-v1 did not load"}, "glm-churn-v1 did not load"),
        (lambda s, first: {"failures": {first: "shard state=AK: R failed"}}, "shard state=AK: R failed"),
        (lambda s, first: {"outputs": without(s.outputs, first)}, "its scoring task recorded no output for it"),
    ],
    ids=["valid", "other-scenario", "other-package", "other-shards", "error", "failed-shard", "no-output"],
)
def test_a_summary_vouches_for_its_shards_only_when_it_is_the_runs(layout, change, problem):
    """Each partition's summary as a task would write it (its outputs written), `change` made to
    the first partition's; validation finds exactly the problem the change makes."""
    planned = plan(layout)
    manifest = write_scored_partitions(layout, planned, change)
    problems = problem_list({c.name: c.problems for c in checked_scenario_partitions(layout, manifest)})
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_an_output_written_again_after_its_task_is_refused(layout):
    planned = plan(layout)
    write_scored_partitions(layout, planned)
    storage.write_bytes_atomic(layout.shard_output(planned.run_id, 0), b"other rows")
    with pytest.raises(ValidationFailed, match=r"shard_00000.parquet: not the file the partition's scoring task wrote"):
        validate_scenario_run(planned)
    assert not json.loads(storage.read_bytes(layout.validation_report(planned.run_id)))["valid"]
