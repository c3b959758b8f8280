"""What the DAG's plain tasks do: plan, collect logs, validate, publish. Kept out of the DAG file
so the DAG only wires, and testable without a scheduler."""

import json
import logging
import os
from datetime import UTC, date, datetime

import pandas as pd
import psutil

from retail_scoring import storage
from retail_scoring.catalogue import read_catalogue
from retail_scoring.errors import InputDataError, ScoringError
from retail_scoring.layout import StorageLayout, product_label
from retail_scoring.package import (
    ENGINES,
    MANIFEST_FILE,
    PackageManifest,
    missing_r_dependencies,
    parse_manifest,
    read_manifest,
    worker_r_packages,
)
from scoring_airflow import partitions
from scoring_airflow.compute import BACKENDS, backend_for
from scoring_airflow.outages import survives_outages
from scoring_airflow.partitions import partition_labels, run_problems
from scoring_airflow.planning import (
    PlanError,
    batch_id,
    check_origin,
    is_job_of_run,
    partition_products,
    requested_products,
    run_origin,
    select_products,
    storage_run_id,
    whole_number,
)
from scoring_airflow.settings import MAX_POOL_SIZE, ForecastSettings

log = logging.getLogger(__name__)


class ValidationFailed(Exception):
    """The run's forecasts are incomplete or wrong; the report in storage lists every problem."""


def package_manifest(layout: StorageLayout, model_version: str) -> tuple[PackageManifest, str]:
    """The model package's manifest, checked, and its sha256; refused when the worker environment
    lacks an R package it depends on (before any pool exists)."""
    try:
        raw_manifest, manifest_sha256 = read_manifest(layout, model_version)
        manifest = parse_manifest(raw_manifest, layout.model_file(model_version, MANIFEST_FILE))
    except ScoringError as error:
        raise PlanError(str(error)) from error
    missing = missing_r_dependencies(manifest.r_dependencies, worker_r_packages())
    if missing:
        raise PlanError(
            f"{manifest.source}: the worker environment cannot run model package {model_version}: "
            f"{'; '.join(missing)} (the worker image's R packages: worker_image/retail_scoring/worker_r_packages.txt)"
        )
    return manifest, manifest_sha256


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
    return first, int(readable["planned_through"].min()) - manifest.output.horizon


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


@survives_outages
def plan_run(
    dag_id: str, airflow_run_id: str, run_date: datetime | date, params: dict, settings: ForecastSettings
) -> dict:
    """Resolve the run's origin, products and partitions from the product catalogue, write the run
    manifest (with every partition's products) to storage, and return the plan: counts and ids
    only, the same size for 90 products or 100,000."""
    layout = StorageLayout(settings.storage_root)
    pool_size = whole_number("pool_size", param(params, "pool_size", settings.pool_size))
    if not 1 <= pool_size <= MAX_POOL_SIZE:
        raise PlanError(f"pool_size must be between 1 and {MAX_POOL_SIZE}, got {pool_size}")
    catalogue = read_products(layout)
    products = select_products(catalogue.index.tolist(), requested_products(params.get("products")))
    catalogue = catalogue.loc[products]
    model_version = param(params, "model_version", settings.model_version)
    manifest, manifest_sha256 = package_manifest(layout, model_version)
    origin = run_origin(params, run_date, settings.week0_monday)
    check_origin(origin, *origin_range(layout, catalogue, manifest))
    check_sku_owners(catalogue)
    run_id = storage_run_id(dag_id, airflow_run_id)
    backend = param(params, "compute_backend", settings.compute_backend)
    node_settings = {
        "vm_size": param(params, "vm_size", settings.vm_size),
        "spot_nodes": whole_number("spot_nodes", param(params, "spot_nodes", settings.spot_nodes)),
        "task_slots_per_node": whole_number(
            "task_slots_per_node", param(params, "task_slots_per_node", settings.task_slots_per_node)
        ),
    }
    task_slots = check_capacity(backend, pool_size, node_settings, settings)
    engine = param(params, "engine", settings.engine)
    if engine not in ENGINES:
        raise PlanError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "compiled" and "compiled_engine" not in manifest.raw:
        raise PlanError(
            f"{manifest.source}: model package {model_version} has no compiled engine; run with engine auto or r, "
            "or package it with `retail-scoring package --compile`"
        )
    partitions = partition_products(
        products, task_slots, param(params, "partitioning", "per_node"), settings.max_products_per_partition
    )
    plan = {
        "run_id": run_id,
        "airflow_run_id": airflow_run_id,
        "run_date": run_date.isoformat(),
        "origin": origin,
        "model_version": model_version,
        "model_manifest_sha256": manifest_sha256,
        "package_kind": manifest.kind,
        "output": manifest.output.to_dict(),
        "storage_root": settings.storage_root,
        "run_manifest": layout.run_manifest(run_id),
        "compute_backend": backend,
        "backend_config": backend_config(backend, settings, node_settings),
        "pool_id": settings.keep_warm_pool or batch_id(f"pool-{run_id}"),
        "pool_size": pool_size,
        "vm_size": node_settings["vm_size"],
        "force": bool(params.get("force", False)),
        "publish": bool(param(params, "publish", True)),
        "max_forecast_ratio": settings.max_forecast_ratio,
        "engine": engine,
        "engine_threads": engine_threads(backend, pool_size, node_settings, settings),
        "product_count": len(products),
        "partition_count": len(partitions),
    }
    series = {str(p): None if pd.isna(n) else int(n) for p, n in catalogue["series"].items()}
    run_manifest = {**plan, "partitions": partitions, "series_per_product": series}
    storage.write_bytes_atomic(plan["run_manifest"], json.dumps(run_manifest).encode())
    log.info(
        "run %s: origin week %d, model %s, %d products in %d partitions on a pool of %d (%s backend)",
        run_id,
        origin,
        model_version,
        len(products),
        len(partitions),
        pool_size,
        backend,
    )
    return plan


def check_capacity(backend: str, pool_size: int, node_settings: dict, settings: ForecastSettings) -> int:
    """How many scoring tasks run at once, refused when the compute cannot hold them: local workers
    beyond this machine's cores or available memory (each worker peaks at about
    `worker_memory_mb`), or more task slots per Batch node than its VM size has cores or memory."""
    if backend == "local":
        cores = os.cpu_count() or 1
        available_mb = psutil.virtual_memory().available / 2**20
        limit = min(cores, int(available_mb // settings.worker_memory_mb))
        if pool_size > limit:
            raise PlanError(
                f"pool_size {pool_size} is more local workers than this machine can run at once: at most {limit} "
                f"({cores} cores; {available_mb / 1024:.1f} GB memory available at "
                f"{settings.worker_memory_mb} MB per worker, FORECAST_WORKER_MEMORY_MB). "
                "Use a smaller pool_size, or compute_backend azure_batch"
            )
        return pool_size
    slots, vm_size = node_settings["task_slots_per_node"], node_settings["vm_size"]
    shape = settings.vm_sizes.get(vm_size)
    if shape is None:
        log.warning("VM size %s is not in FORECAST_VM_SIZES: its task slots per node are not checked", vm_size)
    elif slots > shape["cores"] or slots * settings.worker_memory_mb > shape["memory_gb"] * 1024:
        raise PlanError(
            f"task_slots_per_node {slots} is more scoring tasks than a {vm_size} node can run at once "
            f"({shape['cores']} cores, {shape['memory_gb']} GB memory at {settings.worker_memory_mb} MB per "
            "task); use fewer slots or a larger VM size"
        )
    return pool_size * slots


def engine_threads(backend: str, pool_size: int, node_settings: dict, settings: ForecastSettings) -> int:
    """Threads the compiled engine of each scoring task uses: the cores of its machine shared
    among the tasks running there at once (1 where the VM size is unknown)."""
    if backend == "local":
        return max(1, (os.cpu_count() or 1) // pool_size)
    shape = settings.vm_sizes.get(node_settings["vm_size"])
    return max(1, shape["cores"] // node_settings["task_slots_per_node"]) if shape else 1


def backend_config(backend: str, settings: ForecastSettings, node_settings: dict) -> dict:
    """What the backend needs to rebuild itself anywhere (the triggerer, the teardown): ids and
    settings only; credentials stay in the Airflow connections."""
    if backend == "local":
        return {}  # the local backend takes its pool folder and worker command from its own settings
    if backend == "azure_batch":
        if not settings.storage_root.startswith("abfs://"):
            raise PlanError(f"azure_batch needs blob storage (abfs://...), got {settings.storage_root}")
        from scoring_airflow.compute.azure_batch import AzureBatchBackend

        return AzureBatchBackend.from_settings(settings, node_settings).config()
    raise PlanError(f"unknown compute backend {backend!r}; available: {', '.join(BACKENDS)}")


def create_pool(plan: dict) -> str:
    backend_for(plan["compute_backend"], plan["backend_config"]).create_pool(plan["pool_id"], plan["pool_size"])
    return plan["pool_id"]


def delete_pool(plan: dict) -> None:
    """Teardown: the run's own jobs (whatever state they are in), then the pool."""
    backend = backend_for(plan["compute_backend"], plan["backend_config"])
    for job in backend.job_ids():
        if is_job_of_run(job, plan["run_id"]):
            backend.delete_job(job)
    backend.delete_pool(plan["pool_id"])


@survives_outages
def collect_task_logs(plan: dict, cap_bytes: int) -> None:
    """Copy each partition's stdout/stderr into this task's log, the last `cap_bytes` of each."""
    layout = StorageLayout(plan["storage_root"])
    for partition in partition_labels(plan):
        for stream in ("stdout", "stderr"):
            url = layout.task_log(plan["run_id"], partition, stream)
            try:
                text = storage.read_bytes(url).decode(errors="replace")
            except FileNotFoundError:
                log.info("----- %s %s: none (not run in this run, or never started)", partition, stream)
                continue
            shown = text[-cap_bytes:]
            cut = f", last {len(shown)} of {len(text)} characters" if len(shown) < len(text) else ""
            log.info("----- %s %s (%s%s) -----\n%s", partition, stream, url, cut, shown)


@survives_outages
def validate_run(plan: dict) -> dict:
    """Check every partition's summary (its scoring task checked each forecast as it wrote it; the
    score task pinned the summary when the job ended) and that the forecasts it names are in
    storage as written; write the report, fail with a readable summary. Reads P summaries and two
    listings, never the N forecasts."""
    layout = StorageLayout(plan["storage_root"])
    report_partitions = run_problems(layout, plan)[0]
    problems = [problem for found in report_partitions.values() for lst in found.values() for problem in lst]
    report = {
        "run_id": plan["run_id"],
        "valid": not problems,
        "checked_products": plan["product_count"],
        "problem_count": len(problems),
        "partitions": report_partitions,
        "checked_at": datetime.now(UTC).isoformat(),
    }
    report_url = layout.validation_report(plan["run_id"])
    storage.write_bytes_atomic(report_url, json.dumps(report, indent=2).encode())
    if problems:
        raise ValidationFailed(
            f"{len(problems)} problems in partitions {[p for p, found in report_partitions.items() if found]} "
            f"(full report: {report_url}):\n" + describe_problems(problems)
        )
    log.info("all %d products valid; report at %s", report["checked_products"], report_url)
    return report


def describe_problems(problems: list[str], shown: int = 20) -> str:
    more = f"\n... and {len(problems) - shown} more" if len(problems) > shown else ""
    return "\n".join(f"- {problem}" for problem in problems[:shown]) + more


@survives_outages
def publish_run(plan: dict) -> dict:
    """Publish the run's products under its origin and into the current forecast, which holds each
    product's newest published forecast: a reforecast or a run at a newer origin replaces just its
    products, a backfill of an older origin leaves products with newer forecasts alone. Each entry
    pins the forecast's content (sha256, stored identity), checked once more here against storage,
    so what is published is what was scored and validated. Both indexes are updated by
    compare-and-swap, so publishers finishing together lose nothing."""
    layout = StorageLayout(plan["storage_root"])
    problems, summaries = run_problems(layout, plan)
    found = [problem for partition in problems.values() for lst in partition.values() for problem in lst]
    if found:
        raise ValidationFailed("changed since validation; nothing published:\n" + describe_problems(found))
    origin = plan["origin"]
    published_at = datetime.now(UTC).isoformat()
    entries = {
        product: {
            "origin": origin,
            "run_id": plan["run_id"],
            "forecast": layout.forecast_file(plan["run_id"], int(product)),
            **written,
            "model_version": plan["model_version"],
            "published_at": published_at,
        }
        for summary in summaries.values()
        for product, written in summary["forecasts"].items()
    }

    def merged(index: dict | None, newer_only: bool) -> dict:
        products = (index or {}).get("products", {})
        replaced = {p: e for p, e in entries.items() if not newer_only or products.get(p, e)["origin"] <= origin}
        return {"products": {**products, **replaced}}

    storage.update_json(layout.published_index(origin), lambda index: {"origin": origin, **merged(index, False)})
    current = storage.update_json(layout.current_forecast(), lambda index: merged(index, True))
    moved = sum(current["products"][p]["run_id"] == plan["run_id"] for p in entries)
    log.info(
        "published %d products of run %s under origin %d; %d of them now in the current forecast%s",
        len(entries),
        plan["run_id"],
        origin,
        moved,
        f" ({len(entries) - moved} have newer forecasts)" if moved < len(entries) else "",
    )
    return {
        "origin": origin,
        "products": len(entries),
        "current": moved,
        "run_id": plan["run_id"],
        "index": layout.current_forecast() if moved else layout.published_index(origin),
    }


def changed_since_published(layout: StorageLayout, entries: dict[str, dict]) -> list[str]:
    """The published forecasts (product -> index entry) that storage no longer holds as published:
    one listing per run behind them, no file read."""
    changed = []
    for run_id in sorted({entry["run_id"] for entry in entries.values()}):
        stored = partitions.stored_forecasts(layout, run_id)
        for entry in entries.values():
            if entry["run_id"] == run_id and stored.get(entry["forecast"].rsplit("/", 1)[-1]) != entry["identity"]:
                changed.append(entry["forecast"])
    return changed


def read_current(layout: StorageLayout) -> dict | None:
    return storage.read_json(layout.current_forecast())
