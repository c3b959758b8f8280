"""The plan task and its rules: which week a run forecasts from, which products, how they become
partitions, what the compute holds; the run manifest written and a constant-size plan returned."""

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from retail_scoring import storage
from retail_scoring.data.catalogue import read_catalogue
from retail_scoring.errors import InputDataError, ScoringError
from retail_scoring.layout import StorageLayout, partition_label, product_label
from retail_scoring.packages.base import (
    ENGINES,
    MANIFEST_FILE,
    PackageManifest,
    missing_r_dependencies,
    parse_manifest,
    read_manifest,
    worker_r_packages,
)
from retail_scoring.run.calibration import Calibration, CalibrationError, read_calibration
from retail_scoring.run.contract import RunManifest, RunPlan
from scoring_airflow.compute import ComputeBackend, ComputeError, backend_for_run
from scoring_airflow.outages import survives_outages
from scoring_airflow.settings import MAX_POOL_SIZE, ForecastSettings


class PlanError(ValueError):
    """A run cannot be planned as asked (origin outside the data, unknown products, bad params)."""


def origin_for_logical_date(logical_date: datetime | date, week0_monday: date) -> int:
    """The dataset week a run forecasts from: the last week completed before the logical date.

    Dataset week w spans the seven days from week0_monday + w weeks, so a run on Monday
    2026-11-23 (dataset week 108 with the default week0_monday 2024-10-28) forecasts from week 107.
    """
    day = logical_date.date() if isinstance(logical_date, datetime) else logical_date
    return (day - week0_monday).days // 7 - 1


def run_origin(params: dict, run_date: datetime | date, week0_monday: date) -> int:
    """The week a run forecasts from: its `origin_week` param, else the one its logical date gives."""
    origin = params.get("origin_week")
    if origin is None:
        return origin_for_logical_date(run_date, week0_monday)
    return whole_number("origin_week", origin)


def logical_date_for_origin(origin: int, week0_monday: date) -> date:
    """The Monday whose run forecasts from `origin` (the inverse of origin_for_logical_date)."""
    return week0_monday + timedelta(weeks=origin + 1)


def check_origin(origin: int, first_origin: int, last_origin: int, horizon: int) -> None:
    if not first_origin <= origin <= last_origin:
        raise PlanError(
            f"forecast origin week {origin} is outside the data: origins {first_origin}..{last_origin} have "
            f"enough history for the lags and {horizon} planned weeks after them"
        )


def partition_products(
    products: list[int], task_slots: int, partitioning: str, max_products: int
) -> dict[str, list[int]]:
    """`per_node`: one partition per task slot of the pool (the reference's advice: models loaded
    once per node), and more, of at most `max_products` each, when the products would not fit;
    the pool works through them in turn. `per_product`: one per product."""
    if partitioning == "per_product":
        groups = [[product] for product in products]
    elif partitioning == "per_node":
        count = max(min(task_slots, len(products)), math.ceil(len(products) / max_products))
        groups = [products[i::count] for i in range(count)]
    else:
        raise PlanError(f"partitioning must be 'per_node' or 'per_product', got {partitioning!r}")
    return {partition_label(i): sorted(group) for i, group in enumerate(groups)}


@dataclass(frozen=True)
class ProductSelection:
    """The `products` param as given: single numbers and inclusive ranges, never expanded, so a
    typed range costs the same whatever its size."""

    numbers: tuple[int, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()


NAMED = 10  # messages name at most this many products or ranges, then count the rest


def requested_products(value: str | list | None, name: str = "products") -> ProductSelection | None:
    """The `products` param: a list of numbers (API, CLI), or what a person types into the form,
    numbers and ranges like `3, 17, 40-45` (brackets allowed; the form may send the text as one
    string or one per line). None or empty: every product."""
    numbers: list[int] = []
    ranges: list[tuple[int, int]] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            typed_numbers, typed_ranges = typed_products(item, name)
            numbers += typed_numbers
            ranges += typed_ranges
        elif item is not None:
            numbers.append(whole_number(f"{name} item", item))
    return ProductSelection(tuple(numbers), tuple(ranges)) if numbers or ranges else None


def typed_products(text: str, name: str = "products") -> tuple[list[int], list[tuple[int, int]]]:
    numbers, ranges = [], []
    for token in re.split(r"[,\s]+", text.strip().strip("[]")):
        if re.fullmatch(r"\d+", token):
            numbers.append(int(token))
        elif match := re.fullmatch(r"(\d+)-(\d+)", token):
            low, high = int(match[1]), int(match[2])
            if low > high:
                raise PlanError(f"{name}: the range {token!r} is reversed; write it as {high}-{low}")
            ranges.append((low, high))
        elif token:
            raise PlanError(f"{name}: {token[:40]!r} is neither a number nor a range like 40-45")
    return numbers, ranges


def select_products(available: list[int], requested: ProductSelection | None) -> list[int]:
    """The requested products among `available` (sorted), in time and memory of the catalogue's
    size, not of the numbers typed. Numbers the catalogue lacks are refused, counted and named
    briefly, a range reaching beyond it too."""
    if not available:
        raise PlanError("no products found in storage; seed the data first")
    if requested is None:
        return available
    catalogue = np.sort(np.asarray(available))
    chosen = np.isin(catalogue, np.asarray(requested.numbers, dtype=np.int64))
    unknown = np.setdiff1d(np.asarray(requested.numbers, dtype=np.int64), catalogue)
    outside = []
    for low, high in requested.ranges:
        first, last = np.searchsorted(catalogue, [low, high + 1])
        chosen[first:last] = True
        if last - first < high - low + 1:
            found = catalogue[first:last]
            gaps = np.flatnonzero(found != np.arange(low, low + len(found)))
            first_missing = low + (int(gaps[0]) if len(gaps) else len(found))
            outside.append(f"{low}-{high} ({high - low + 1 - (last - first)} of its numbers, first {first_missing})")
    where = f"storage has {len(catalogue)} products, {catalogue[0]}..{catalogue[-1]}"
    if len(unknown) or outside:
        named = ", ".join(map(str, unknown[:NAMED])) + (
            f" and {len(unknown) - NAMED} more" if len(unknown) > NAMED else ""
        )
        ranges = ", ".join(outside[:NAMED]) + (
            f" and {len(outside) - NAMED} more ranges" if len(outside) > NAMED else ""
        )
        found = "; ".join(
            part
            for part in (
                named and f"unknown products {named}",
                ranges and f"ranges over numbers the catalogue lacks: {ranges}",
            )
            if part
        )
        raise PlanError(f"{found}; {where}")
    return catalogue[chosen].tolist()


def storage_run_id(dag_id: str, airflow_run_id: str) -> str:
    """A folder- and Batch-safe id, unique per DAG run, stable across its retries: the run's id
    with characters that must be folded (':', '+', '.', ...) folded, and always a hash of the
    original, so no run's id can name another run's folder, whatever it is called."""
    original = f"{dag_id}__{airflow_run_id}"
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", original).strip("-")[:100]
    return f"{readable}-{hashlib.sha256(original.encode()).hexdigest()[:16]}"


def whole_number(name: str, value: object) -> int:
    """A param that must be an integer: JSON Schema's "integer" lets 1.0 through, we do not."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{name} must be a whole number, got {value!r}")
    return value


log = logging.getLogger(__name__)


def package_manifest(layout: StorageLayout, model_version: str) -> tuple[PackageManifest, str]:
    """The model package's manifest, checked, and its sha256; refused when the worker environment
    lacks an R package it depends on (before any pool exists)."""
    try:
        raw_manifest, manifest_sha256 = read_manifest(layout, model_version)
        manifest = parse_manifest(raw_manifest, layout.model_file(model_version, MANIFEST_FILE))
    except ScoringError as error:
        raise PlanError(str(error)) from error
    missing = worker_cannot_run(manifest.source, model_version, manifest.r_dependencies)
    if missing:
        raise PlanError(missing)
    return manifest, manifest_sha256


def worker_cannot_run(source: str, model_version: str, r_dependencies: dict[str, str]) -> str | None:
    """Why the worker environment cannot run a package needing `r_dependencies`, None if it can."""
    missing = missing_r_dependencies(r_dependencies, worker_r_packages())
    if not missing:
        return None
    return (
        f"{source}: the worker environment cannot run model package {model_version}: {'; '.join(missing)} "
        "(the worker image's R packages: worker_image/retail_scoring/worker_r_packages.txt)"
    )


def read_products(layout: StorageLayout) -> pd.DataFrame:
    """The product catalogue, indexed by product."""
    try:
        return read_catalogue(layout).set_index("product", drop=False)
    except InputDataError as error:
        raise PlanError(str(error)) from error


def origin_range(layout: StorageLayout, catalogue: pd.DataFrame, manifest: PackageManifest) -> tuple[int, int]:
    """Origins with the package's weeks of history in every series of the run's products and its
    horizon of planned weeks after them. Tables the package's input contract does not fit fail the
    plan (naming a file), since every product with those columns would fail. Unreadable products
    are the scoring tasks' to report, naming them; the others are scored."""
    readable = catalogue[catalogue["problem"].isna()]
    if readable.empty:
        raise PlanError("no product's tables could be read: " + "; ".join(catalogue["problem"].head(5)))
    for columns, products in readable.groupby("columns")["product"]:
        for file_name, kinds in json.loads(columns).items():
            table, _, suffix = file_name.partition(".")
            source = layout.product_file(int(products.iloc[0]), table, suffix)
            mismatch = manifest.input.mismatch(kinds, source, manifest.version)
            if mismatch:
                more = f" (and {len(products) - 1} more products' tables)" if len(products) > 1 else ""
                raise PlanError(mismatch + more)
    first = int(readable["history_start"].max()) + manifest.input.history_weeks - 1
    planned_through, horizon = int(readable["planned_through"].min()), manifest.output.horizon
    if first > planned_through - horizon:
        raise PlanError(
            f"model package {manifest.version} forecasts {horizon} weeks after {manifest.input.history_weeks} weeks "
            f"of history, but the products' tables hold history from week {first - manifest.input.history_weeks + 1} "
            f"and planned weeks through {planned_through}: no origin has both"
        )
    return first, planned_through - horizon


def check_sku_owners(catalogue: pd.DataFrame) -> None:
    """A SKU belongs to one product: a product file holding another product's SKUs would publish
    two forecasts for one SKU."""
    owners = catalogue[["product", "skus"]].explode("skus").dropna()
    repeated = owners[owners["skus"].duplicated(keep=False)]
    if not repeated.empty:
        sku = repeated["skus"].iloc[0]
        first, second = repeated.loc[repeated["skus"] == sku, "product"].iloc[:2]
        raise PlanError(
            f"SKU {sku} is planned by both {product_label(int(first))} and {product_label(int(second))} "
            "(their futurex tables, as the product catalogue lists them); a SKU belongs to one product"
        )


def param(params: dict, name: str, default):
    """A run param, or the setting's default when the param is not given. 0 and False are given."""
    value = params.get(name)
    return default if value is None else value


def backtest_record(layout: StorageLayout, backtest_id: str) -> dict:
    """A finished backtest's accuracy record: what it calibrated, from which origins."""
    url = layout.backtest_accuracy(backtest_id)
    record = storage.read_json(url)
    if not record:
        raise PlanError(f"{url}: no backtest {backtest_id} has finished (its accuracy record is missing)")
    return record


def run_calibration(
    layout: StorageLayout, reference: str | None, model_version: str, manifest: PackageManifest, origin: int
) -> tuple[Calibration, str, str] | None:
    """The calibration a run applies (the `calibration` param: a backtest's id, and `:model_version`
    when it calibrated several packages), its URL and sha256. The file is found where the layout
    puts it and trusted as far as the backtest's record says: refused when its content is not what
    the record pins, when it claims other origins than the record's, when it does not fit the
    package's output, or when those origins' sales lie beyond what the run's origin may see."""
    if not reference:
        return None
    backtest_id, _, learned_on = reference.partition(":")
    record = backtest_record(layout, backtest_id)
    calibrations = record.get("calibrations", {})
    if not learned_on:
        learned_on = model_version if model_version in calibrations else next(iter(calibrations), model_version)
        if len(calibrations) > 1 and model_version not in calibrations:
            raise PlanError(
                f"backtest {backtest_id} calibrated {', '.join(calibrations)}: name one as "
                f"calibration `{backtest_id}:<model version>`"
            )
    if learned_on not in calibrations:
        package = record.get("packages", {}).get(learned_on)
        why = (
            f"none of its origins {record.get('origins')} was out of sample for {learned_on} with every forecast "
            f"week's sales (in sample: {package.get('in_sample_origins')})"
            if package
            else f"it did not backtest model package {learned_on!r}"
        )
        raise PlanError(f"backtest {backtest_id} has no calibration for model package {learned_on!r}: {why}")
    recorded = calibrations[learned_on]
    url = layout.calibration_file(backtest_id, learned_on)
    try:
        calibration, sha256 = read_calibration(url, recorded["sha256"])
        calibration.check_fits(model_version, manifest.output.horizon, manifest.output.quantiles, url)
    except CalibrationError as error:
        raise PlanError(str(error)) from error
    if calibration.origins != recorded["learned_from"]:
        raise PlanError(
            f"{url}: claims to be learned from origins {calibration.origins}, but backtest {backtest_id} recorded "
            f"{recorded['learned_from']}"
        )
    usable_from = max(recorded["learned_from"]) + calibration.horizon
    if origin < usable_from:
        raise PlanError(
            f"{url}: learned from origins up to {max(recorded['learned_from'])}, whose forecasts reach "
            f"week {usable_from}; a forecast from origin {origin} may not use sales it could not have "
            f"seen: calibrate origins {usable_from} and later only"
        )
    return calibration, url, sha256


@dataclass(frozen=True)
class PlannedCompute:
    """Where a run scores, from its compute params: the backend (its name and itself), the pool's
    size and VM size, and the scoring tasks the pool runs at once."""

    name: str
    backend: ComputeBackend
    pool_size: int
    vm_size: str
    task_slots: int


def planned_compute(params: dict, settings: ForecastSettings) -> PlannedCompute:
    """The compute params checked against the backend (its cores, memory, VM sizes)."""
    pool_size = whole_number("pool_size", param(params, "pool_size", settings.pool_size))
    if not 1 <= pool_size <= MAX_POOL_SIZE:
        raise PlanError(f"pool_size must be between 1 and {MAX_POOL_SIZE}, got {pool_size}")
    name = param(params, "compute_backend", settings.compute_backend)
    node_settings = {
        "vm_size": param(params, "vm_size", settings.vm_size),
        "spot_nodes": whole_number("spot_nodes", param(params, "spot_nodes", settings.spot_nodes)),
        "task_slots_per_node": whole_number(
            "task_slots_per_node", param(params, "task_slots_per_node", settings.task_slots_per_node)
        ),
    }
    try:
        backend = backend_for_run(name, settings, node_settings)
        slots = backend.task_slots(pool_size, settings)
    except ComputeError as error:
        raise PlanError(str(error)) from error
    return PlannedCompute(name, backend, pool_size, node_settings["vm_size"], slots)


@survives_outages
def plan_run(
    dag_id: str,
    airflow_run_id: str,
    run_date: datetime | date,
    params: dict,
    settings: ForecastSettings,
    run_id: str | None = None,
    pool_id: str | None = None,
    profile_residuals: bool = False,
) -> RunPlan:
    """Resolve the run's origin, products and partitions from the product catalogue, write the run
    manifest (with every partition's products) to storage, and return the plan: counts and ids
    only, the same size for 90 products or 100,000. A backtest gives each of its runs' `run_id`,
    the one `pool_id` they share, and asks for the residual profile it calibrates from."""
    layout = StorageLayout(settings.storage_root)
    compute = planned_compute(params, settings)
    catalogue = read_products(layout)
    products = select_products(catalogue.index.tolist(), requested_products(params.get("products")))
    catalogue = catalogue.loc[products]
    model_version = param(params, "model_version", settings.model_version)
    manifest, manifest_sha256 = package_manifest(layout, model_version)
    origin = run_origin(params, run_date, settings.week0_monday)
    check_origin(origin, *origin_range(layout, catalogue, manifest), manifest.output.horizon)
    check_sku_owners(catalogue)
    calibration = run_calibration(layout, params.get("calibration"), model_version, manifest, origin)
    run_id = run_id or storage_run_id(dag_id, airflow_run_id)
    engine = param(params, "engine", settings.engine)
    if engine not in ENGINES:
        raise PlanError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "compiled" and "compiled_engine" not in manifest.raw:
        raise PlanError(
            f"{manifest.source}: model package {model_version} has no compiled engine; run with engine auto or r, "
            "or package it with `retail-scoring package --compile`"
        )
    partitions = partition_products(
        products, compute.task_slots, param(params, "partitioning", "per_node"), settings.max_products_per_partition
    )
    plan = RunPlan(
        run_id=run_id,
        airflow_run_id=airflow_run_id,
        run_date=run_date.isoformat(),
        origin=origin,
        model_version=model_version,
        model_manifest_sha256=manifest_sha256,
        package_kind=manifest.kind,
        output=manifest.output,
        storage_root=settings.storage_root,
        run_manifest=layout.run_manifest(run_id),
        compute_backend=compute.name,
        backend_config=compute.backend.config(),
        pool_id=pool_id or settings.keep_warm_pool or ComputeBackend.pool_id_for(run_id),
        pool_size=compute.pool_size,
        vm_size=compute.vm_size,
        force=bool(params.get("force", False)),
        publish=bool(param(params, "publish", True)),
        max_forecast_ratio=settings.max_forecast_ratio,
        engine=engine,
        engine_threads=compute.backend.engine_threads(compute.pool_size, settings),
        worker_memory_mb=settings.worker_memory_mb,
        product_count=len(products),
        partition_count=len(partitions),
        training_weeks=manifest.training_weeks,
        calibration_url=calibration[1] if calibration else None,
        calibration_sha256=calibration[2] if calibration else None,
        profile_residuals=profile_residuals,
    )
    series = {str(p): None if pd.isna(n) else int(n) for p, n in catalogue["series"].items()}
    storage.write_bytes_atomic(plan.run_manifest, RunManifest(plan, partitions, series).to_json())
    log.info(
        "run %s: origin week %d, model %s%s, %d products in %d partitions on a pool of %d (%s backend)",
        run_id,
        origin,
        model_version,
        f" calibrated by {calibration[1]}" if calibration else "",
        len(products),
        len(partitions),
        compute.pool_size,
        compute.name,
    )
    return plan


def read_plan(document: dict) -> RunPlan:
    """The plan as the plan task returned it, read back from XCom by the run's other tasks."""
    return RunPlan.from_dict(document, "the run plan (the plan task's XCom)")
