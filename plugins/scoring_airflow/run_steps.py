"""What the DAG's plain tasks do: plan, collect logs, validate, publish. Kept out of the DAG file
so the DAG only wires, and testable without a scheduler."""

import json
import logging
from datetime import UTC, date, datetime

import pandas as pd

from retail_scoring import storage
from retail_scoring.errors import ContractMismatchError, InputDataError, ScoringError
from retail_scoring.layout import StorageLayout, product_label, product_of_folder
from retail_scoring.package import (
    MANIFEST_FILE,
    PackageManifest,
    missing_r_dependencies,
    parse_manifest,
    read_manifest,
    worker_r_packages,
)
from retail_scoring.scoring import product_tables
from retail_scoring.tables import read_raw_product_table
from retail_scoring.validation import forecast_problems
from scoring_airflow.compute import backend_for
from scoring_airflow.operators import plan_expectations
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


def available_products(layout: StorageLayout) -> list[int]:
    """Products with a `product_NNN` folder; anything else under data/products is ignored, said once."""
    products = []
    for name in storage.list_names(layout.products_dir()):
        product = product_of_folder(name)
        if product is None:
            log.warning("%s/%s: not a product folder (product_NNN); ignored", layout.products_dir(), name)
        else:
            products.append(product)
    return sorted(products)


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


def origin_range(layout: StorageLayout, product: int, manifest: PackageManifest) -> tuple[int, int]:
    """Origins with the package's weeks of history in every series and its horizon of planned weeks
    after them. A table the package's input contract does not fit fails the plan: every product's
    would."""
    try:
        history, futurex = product_tables(layout, product, manifest)
    except ContractMismatchError as error:
        raise PlanError(str(error)) from error
    first_weeks = history.groupby(["sku", "store"])["week"].min()
    last_origin = int(futurex["week"].max()) - manifest.output.horizon
    return int(first_weeks.max()) + manifest.input.history_weeks - 1, last_origin


def catalogue_origin_range(layout: StorageLayout, products: list[int], manifest: PackageManifest) -> tuple[int, int]:
    """The origin range of the first product whose tables read; a broken product is the scoring
    task's to report (naming it), not a reason to refuse the whole run."""
    problems = []
    for product in products:
        try:
            return origin_range(layout, product, manifest)
        except InputDataError as error:
            problems.append(str(error))
    raise PlanError("no product's tables could be read: " + "; ".join(problems[:5]))


def planned_series(layout: StorageLayout, product: int) -> pd.DataFrame | None:
    """The (sku, store) series a product's forecast must cover: those with planned weeks. Only the
    keys are read; None when the product's futurex cannot be read (its scoring task names why)."""
    try:
        url, futurex = read_raw_product_table(layout, product, "futurex", columns=["sku", "store"])
    except InputDataError as error:
        log.warning("%s: %s; its partition will fail naming it, the others are scored", product_label(product), error)
        return None
    missing = {"sku", "store"} - set(futurex.columns)
    if missing:
        raise PlanError(f"{url}: lacks columns {sorted(missing)}")
    return futurex[["sku", "store"]].drop_duplicates()


def check_sku_owners(series_by_product: dict[int, pd.DataFrame | None]) -> None:
    """A SKU belongs to one product: a product file holding another product's SKUs would publish
    two forecasts for one SKU."""
    owner: dict[int, int] = {}
    for product, series in series_by_product.items():
        for sku in [] if series is None else series["sku"].unique().tolist():
            if owner.setdefault(sku, product) != product:
                raise PlanError(
                    f"SKU {sku} is planned by both {product_label(owner[sku])} and {product_label(product)} "
                    "(their futurex tables); a SKU belongs to one product"
                )


def param(params: dict, name: str, default):
    """A run param, or the setting's default when the param is not given. 0 and False are given."""
    value = params.get(name)
    return default if value is None else value


def plan_run(
    dag_id: str, airflow_run_id: str, run_date: datetime | date, params: dict, settings: ForecastSettings
) -> dict:
    """Resolve the run's origin, products and partitions, and write the run manifest to storage."""
    layout = StorageLayout(settings.storage_root)
    pool_size = whole_number("pool_size", param(params, "pool_size", settings.pool_size))
    if not 1 <= pool_size <= MAX_POOL_SIZE:
        raise PlanError(f"pool_size must be between 1 and {MAX_POOL_SIZE}, got {pool_size}")
    products = select_products(available_products(layout), requested_products(params.get("products")))
    model_version = param(params, "model_version", settings.model_version)
    manifest, manifest_sha256 = package_manifest(layout, model_version)
    origin = run_origin(params, run_date, settings.week0_monday)
    check_origin(origin, *catalogue_origin_range(layout, products, manifest))
    run_id = storage_run_id(dag_id, airflow_run_id)
    backend = param(params, "compute_backend", settings.compute_backend)
    node_settings = {
        "vm_size": param(params, "vm_size", settings.vm_size),
        "spot_nodes": whole_number("spot_nodes", param(params, "spot_nodes", settings.spot_nodes)),
        "task_slots_per_node": whole_number(
            "task_slots_per_node", param(params, "task_slots_per_node", settings.task_slots_per_node)
        ),
    }
    series = {product: planned_series(layout, product) for product in products}
    check_sku_owners(series)
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
        "compute_backend": backend,
        "backend_config": backend_config(backend, settings, node_settings),
        "pool_id": settings.keep_warm_pool or batch_id(f"pool-{run_id}"),
        "pool_size": pool_size,
        "vm_size": node_settings["vm_size"],
        "force": bool(params.get("force", False)),
        "publish": bool(param(params, "publish", True)),
        "max_forecast_ratio": settings.max_forecast_ratio,
        "partitions": partition_products(products, pool_size, param(params, "partitioning", "per_node")),
        "series_per_product": {str(p): None if s is None else len(s) for p, s in series.items()},
    }
    storage.write_bytes_atomic(layout.run_manifest(run_id), json.dumps(plan, indent=2).encode())
    log.info(
        "run %s: origin week %d, model %s, %d products in %d partitions on a pool of %d (%s backend)",
        run_id,
        origin,
        model_version,
        len(products),
        len(plan["partitions"]),
        pool_size,
        backend,
    )
    return plan


def backend_config(backend: str, settings: ForecastSettings, node_settings: dict) -> dict:
    """What the backend needs to rebuild itself anywhere (the triggerer, the teardown): ids and
    settings only; credentials stay in the Airflow connections."""
    if backend == "local":
        return {}  # the local backend takes its pool folder and worker command from its own settings
    if backend == "azure_batch":
        if not settings.storage_root.startswith("abfs://"):
            raise PlanError(f"azure_batch needs blob storage (abfs://...), got {settings.storage_root}")
        return {
            "storage_root": settings.storage_root,
            "worker_image": settings.worker_image,
            "batch_conn_id": settings.batch_conn_id,
            "wasb_conn_id": settings.wasb_conn_id or "wasb_default",
            "registry_conn_id": settings.registry_conn_id,
            "autoscale_formula": settings.autoscale_formula,
            "keep_warm_pool": settings.keep_warm_pool,
            "node_wait_timeout_s": settings.node_wait_timeout_s,
            "pool_lifetime_s": settings.pool_lifetime_s,
            "pool_poll_s": settings.poll_interval_s,
            **node_settings,
        }
    raise PlanError(f"unknown compute backend {backend!r}; available: 'local', 'azure_batch'")


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


def collect_task_logs(plan: dict, cap_bytes: int) -> None:
    """Copy each partition's stdout/stderr into this task's log, the last `cap_bytes` of each."""
    layout = StorageLayout(plan["storage_root"])
    for partition in plan["partitions"]:
        for stream in ("stdout", "stderr"):
            url = layout.task_log(plan["run_id"], partition, stream)
            if not storage.exists(url):
                log.info("----- %s %s: none (not run in this run, or never started)", partition, stream)
                continue
            text = storage.read_bytes(url).decode(errors="replace")
            shown = text[-cap_bytes:]
            cut = f", last {len(shown)} of {len(text)} characters" if len(shown) < len(text) else ""
            log.info("----- %s %s (%s%s) -----\n%s", partition, stream, url, cut, shown)


def validate_run(plan: dict) -> dict:
    """Check every product's forecast, write the report, fail with a readable summary."""
    layout = StorageLayout(plan["storage_root"])
    report_partitions = {}
    for partition, products in plan["partitions"].items():
        problems = {str(p): forecast_problems(layout, **plan_expectations(plan, p)) for p in products}
        report_partitions[partition] = {p: found for p, found in problems.items() if found}
    problems = [problem for found in report_partitions.values() for lst in found.values() for problem in lst]
    report = {
        "run_id": plan["run_id"],
        "valid": not problems,
        "checked_products": sum(len(products) for products in plan["partitions"].values()),
        "problem_count": len(problems),
        "partitions": report_partitions,
        "checked_at": datetime.now(UTC).isoformat(),
    }
    report_url = layout.validation_report(plan["run_id"])
    storage.write_bytes_atomic(report_url, json.dumps(report, indent=2).encode())
    if problems:
        bad = [partition for partition, found in report_partitions.items() if found]
        raise ValidationFailed(
            f"{len(problems)} problems in partitions {bad} (full report: {report_url}):\n"
            + "\n".join(f"- {problem}" for problem in problems[:20])
        )
    log.info("all %d products valid; report at %s", report["checked_products"], report_url)
    return report


def publish_run(plan: dict) -> dict:
    """Publish the run's products under its origin, and make them part of the current forecast
    when that origin is the newest published: a reforecast of some products replaces just those,
    a backfill of an older origin leaves the current forecast alone. Both indexes are updated by
    compare-and-swap, so publishers finishing together lose nothing."""
    layout = StorageLayout(plan["storage_root"])
    origin = plan["origin"]
    published_at = datetime.now(UTC).isoformat()
    entries = {
        str(product): {
            "run_id": plan["run_id"],
            "forecast": layout.forecast_file(plan["run_id"], product),
            "model_version": plan["model_version"],
            "published_at": published_at,
        }
        for products in plan["partitions"].values()
        for product in products
    }

    def merged(index: dict | None) -> dict:
        return {"origin": origin, "products": {**(index or {}).get("products", {}), **entries}}

    origin_index = storage.update_json(layout.published_index(origin), merged)

    def moved(current: dict | None) -> dict:
        if current is None or current["origin"] < origin:
            return origin_index  # a newer origin: its whole index becomes current
        return merged(current) if current["origin"] == origin else current

    current = storage.update_json(layout.current_forecast(), moved)
    is_current = current["origin"] == origin
    log.info(
        "published %d products of run %s under origin %d%s",
        len(entries),
        plan["run_id"],
        origin,
        f"; the current forecast (origin {origin}) has {len(current['products'])} products"
        if is_current
        else f"; the current forecast stays at the newer origin {current['origin']}",
    )
    return {
        "origin": origin,
        "products": len(entries),
        "current": is_current,
        "run_id": plan["run_id"],
        "index": layout.current_forecast() if is_current else layout.published_index(origin),
    }


def read_current(layout: StorageLayout) -> dict | None:
    url = layout.current_forecast()
    return json.loads(storage.read_bytes(url)) if storage.exists(url) else None
