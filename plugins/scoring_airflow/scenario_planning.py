"""The plan task of a scenario's run: the scenario document read and pinned, the as-of date it
scores, the model package checked against the scenario (before any pool exists), the input cut
into shards from the files' metadata, the shards dealt into partitions; the scenario copied into
the run and the run manifest written, a constant-size plan returned."""

import logging
from datetime import date, datetime, timedelta
from pathlib import Path

from retail_scoring import storage
from retail_scoring.errors import ScoringError
from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import ScenarioRunManifest, ScenarioRunPlan
from retail_scoring.scenarios.document import Scenario
from retail_scoring.scenarios.package import TablePackageManifest, read_table_manifest
from retail_scoring.scenarios.shards import plan_shards
from scoring_airflow.compute import ComputeBackend
from scoring_airflow.outages import survives_outages
from scoring_airflow.planning import (
    PlanError,
    param,
    partition_products,
    planned_compute,
    storage_run_id,
    worker_cannot_run,
)
from scoring_airflow.settings import ForecastSettings

log = logging.getLogger(__name__)


def read_scenario_file(path: Path) -> tuple[Scenario, bytes]:
    """The scenario a DAG names, checked whole, and its bytes (what the run pins and copies)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PlanError(f"{path}: the scenario document cannot be read ({error.strerror})") from error
    try:
        return Scenario.from_json(data, str(path)), data
    except ScoringError as error:
        raise PlanError(str(error)) from error


def run_as_of(params: dict, run_date: datetime | date) -> str:
    """The date a run scores: its `as_of` param (an ISO date), else the day before its logical
    date (a monthly run on 2026-12-01 scores the snapshot of 2026-11-30)."""
    given = params.get("as_of")
    if given is None:
        day = run_date.date() if isinstance(run_date, datetime) else run_date
        return (day - timedelta(days=1)).isoformat()
    try:
        return date.fromisoformat(given).isoformat()
    except (TypeError, ValueError) as error:
        raise PlanError(f"as_of must be a date as YYYY-MM-DD, got {given!r}") from error


def scenario_package(layout: StorageLayout, model_version: str, scenario: Scenario) -> TablePackageManifest:
    """The package's manifest, refused unless it fits the scenario and the worker image has its R
    packages."""
    try:
        manifest = read_table_manifest(layout, model_version, None)
    except ScoringError as error:
        raise PlanError(str(error)) from error
    problems = manifest.misfit(scenario)
    missing = worker_cannot_run(manifest.source, model_version, manifest.r_dependencies)
    if missing:
        problems.append(missing)
    if problems:
        raise PlanError("; ".join(problems))
    return manifest


@survives_outages
def plan_scenario_run(
    dag_id: str,
    airflow_run_id: str,
    run_date: datetime | date,
    params: dict,
    settings: ForecastSettings,
    scenario_file: Path,
) -> ScenarioRunPlan:
    """Plan a run of the scenario in `scenario_file` with the package `params["model_version"]`:
    refused with the file and field, column or package named before any pool exists."""
    layout = StorageLayout(settings.storage_root)
    compute = planned_compute(params, settings)
    scenario, document = read_scenario_file(scenario_file)
    as_of = run_as_of(params, run_date)
    resolved = scenario.for_run(settings.storage_root, as_of)
    model_version = params.get("model_version")
    if not model_version:
        raise PlanError(f"scenario {scenario.name}: no model_version given: name the model package to score with")
    manifest = scenario_package(layout, model_version, scenario)
    try:
        shards = plan_shards(resolved.dataset, resolved.sharding, settings.storage_root)
    except ScoringError as error:
        raise PlanError(str(error)) from error
    if not shards:
        raise PlanError(f"{resolved.dataset.url}: the scenario's dataset holds no rows for as_of {as_of}")
    partitions = partition_products(
        list(range(len(shards))), compute.task_slots, param(params, "partitioning", "per_node"),
        settings.max_products_per_partition,
    )  # fmt: skip
    run_id = storage_run_id(dag_id, airflow_run_id)
    plan = ScenarioRunPlan(
        run_id=run_id,
        airflow_run_id=airflow_run_id,
        run_date=run_date.isoformat(),
        as_of=as_of,
        scenario_name=scenario.name,
        scenario_url=layout.run_scenario(run_id),
        scenario_sha256=storage.sha256_hex(document),
        model_version=model_version,
        model_manifest_sha256=manifest.sha256,
        storage_root=settings.storage_root,
        run_manifest=layout.run_manifest(run_id),
        compute_backend=compute.name,
        backend_config=compute.backend.config(),
        pool_id=settings.keep_warm_pool or ComputeBackend.pool_id_for(run_id),
        pool_size=compute.pool_size,
        vm_size=compute.vm_size,
        force=bool(params.get("force", False)),
        publish=bool(param(params, "publish", True)),
        worker_memory_mb=settings.worker_memory_mb,
        row_count=sum(shard.rows for shard in shards),
        shard_count=len(shards),
        partition_count=len(partitions),
    )
    storage.write_bytes_atomic(plan.scenario_url, document)
    storage.write_bytes_atomic(plan.run_manifest, ScenarioRunManifest(plan, shards, partitions).to_json())
    log.info(
        "run %s: scenario %s as of %s, model %s, %d rows in %d shards, %d partitions on a pool of %d (%s backend)",
        run_id, scenario.name, as_of, model_version, plan.row_count, len(shards), len(partitions),
        compute.pool_size, compute.name,
    )  # fmt: skip
    return plan


def read_scenario_plan(document: dict) -> ScenarioRunPlan:
    """The plan as the plan task returned it, read back from XCom by the run's other tasks."""
    return ScenarioRunPlan.from_dict(document, "the scenario run plan (the plan task's XCom)")
