"""The run contract: plan, run manifest and partition summary survive the trip through JSON as the
same typed objects, and a document of another version or shape is refused naming it, on both
sides of the boundary."""

import json
import subprocess
import sys

import pytest

from retail_scoring import storage
from retail_scoring.errors import EXIT_BAD_INPUT
from retail_scoring.run.contract import CONTRACT_VERSION, ContractError, PartitionSummary, RunManifest, RunPlan
from scoring_airflow.planning import read_plan
from tests.conftest import run_plan, write_plan


def test_plan_manifest_and_summary_read_back_as_written(layout):
    plan = write_plan(layout, "trip", {"partition_000": [1, 2], "partition_001": [3]}, engine_threads=2)
    assert RunPlan.from_dict(json.loads(json.dumps(plan.to_dict())), "xcom") == plan
    manifest = RunManifest.from_json(storage.read_bytes(plan.run_manifest), plan.run_manifest)
    assert manifest.plan == plan and manifest.partitions == {"partition_000": [1, 2], "partition_001": [3]}
    assert manifest.series_per_product == {"1": 66, "2": 66, "3": 66}
    summary = PartitionSummary(products=[1], package_sha256="abc", problems={"1": ["too big"]})
    summary.forecasts["1"] = storage.write_recorded(f"{layout.root}/f.bin", b"forecast")
    assert PartitionSummary.from_json(summary.to_json(), "summary") == summary


@pytest.mark.parametrize("version", [None, 0, CONTRACT_VERSION + 1])
def test_a_plan_of_another_contract_version_is_refused_naming_the_xcom(layout, version):
    document = {**run_plan(layout, "old", {"partition_000": [1]}).to_dict(), "contract_version": version}
    if version is None:
        del document["contract_version"]
    with pytest.raises(ContractError) as refused:
        read_plan(document)
    assert str(refused.value) == (
        f"the run plan (the plan task's XCom): run contract version {version}, but this release reads version "
        f"{CONTRACT_VERSION}: Airflow's plugins and the worker image must be of the same release; plan the run again"
    )


def test_a_document_missing_or_adding_fields_is_refused_naming_them(layout):
    document = run_plan(layout, "odd", {"partition_000": [1]}).to_dict()
    del document["pool_id"]
    with pytest.raises(
        ContractError, match=rf"^xcom: not a version {CONTRACT_VERSION} run document: missing pool_id; unknown extra$"
    ):
        RunPlan.from_dict({**document, "extra": 1}, "xcom")
    with pytest.raises(ContractError, match=r"^summary\.json: not a run contract document: not JSON"):
        PartitionSummary.from_json(b"PAR1", "summary.json")
    with pytest.raises(ContractError, match=r"^summary\.json: not a run contract document \(a JSON object\), got list"):
        PartitionSummary.from_json(b"[]", "summary.json")


def test_the_worker_refuses_a_run_manifest_of_another_version_naming_it(layout):
    plan = write_plan(layout, "future", {"partition_000": [1]})
    document = json.loads(storage.read_bytes(plan.run_manifest))
    storage.write_bytes_atomic(
        plan.run_manifest, json.dumps({**document, "contract_version": CONTRACT_VERSION + 1}).encode()
    )
    command = [sys.executable, "-m", "retail_scoring.cli", "score", "--storage", layout.root]
    result = subprocess.run(
        [*command, "--run-id", "future", "--partition", "partition_000"], capture_output=True, text=True
    )
    assert result.returncode == EXIT_BAD_INPUT
    newer, this = CONTRACT_VERSION + 1, CONTRACT_VERSION
    assert (
        f"error: {plan.run_manifest}: run contract version {newer}, but this release reads version {this}"
        in result.stderr
    )
    assert not storage.list_names(layout.forecasts_dir("future")), "nothing scored"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["plan"].update(origin="107"), "(its plan): field origin is '107', not of type int"),
        (
            lambda m: m["plan"].update(engine="turbo"),
            "(its plan): field engine is 'turbo', not of type Literal['auto', 'r', 'compiled']",
        ),
        (lambda m: m["plan"].update(force=1), "(its plan): field force is 1, not of type bool"),
        (lambda m: m.update(contract_version=str(CONTRACT_VERSION)), f"run contract version '{CONTRACT_VERSION}', but"),
        (lambda m: m.update(partitions={"partition_000": ["1"]}), "field partitions is {'partition_000': ['1']}"),
        (lambda m: m.update(series_per_product={}), "series_per_product (0 products) do not agree"),
    ],
    ids=["origin-text", "unknown-engine", "force-number", "version-text", "products-text", "no-series"],
)
def test_the_worker_refuses_a_run_manifest_of_wrong_types_naming_the_field_and_value(layout, change, message):
    """Exit 2 (bad input, never retried), not a TypeError or KeyError from deep in scoring."""
    plan = write_plan(layout, "typed", {"partition_000": [1]})
    document = json.loads(storage.read_bytes(plan.run_manifest))
    change(document)
    storage.write_bytes_atomic(plan.run_manifest, json.dumps(document).encode())
    command = [sys.executable, "-m", "retail_scoring.cli", "score", "--storage", layout.root]
    result = subprocess.run(
        [*command, "--run-id", "typed", "--partition", "partition_000"], capture_output=True, text=True
    )
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert f"error: {plan.run_manifest}" in result.stderr and message in result.stderr
    assert not storage.list_names(layout.forecasts_dir("typed")), "nothing scored"


@pytest.mark.parametrize(
    "field, value", [("sha256", None), ("bytes", "8"), ("bytes", True)], ids=["no-sha256", "bytes-text", "bytes-bool"]
)
def test_a_summary_whose_forecast_record_lacks_or_mistypes_a_field_is_a_problem_not_a_crash(field, value):
    """None: the field left out. JSON's true is no number of bytes, though Python's bool is an int."""
    summary = PartitionSummary(products=[1], package_sha256="abc")
    summary.forecasts["1"] = storage.RecordedFile(bytes=8, sha256="0" * 64, identity="i")
    document = json.loads(summary.to_json())
    if value is None:
        del document["forecasts"]["1"][field]
    else:
        document["forecasts"]["1"][field] = value
    with pytest.raises(ContractError, match=r"^summary\.json: field forecasts is \{'1': \{"):
        PartitionSummary.from_json(json.dumps(document).encode(), "summary.json")
