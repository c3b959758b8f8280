"""What the DAG's plain tasks do: plan, collect logs, validate, publish. Kept out of the DAG file
so the DAG only wires, and testable without a scheduler."""

import json
import logging
from datetime import UTC, date, datetime

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.models import read_manifest
from retail_scoring.schema import HORIZON, N_LAGS
from retail_scoring.tables import read_product_table, read_raw_product_table
from retail_scoring.validation import forecast_problems
from scoring_airflow.blob import use_connection_for_abfs
from scoring_airflow.compute import backend_for
from scoring_airflow.operators import plan_expectations
from scoring_airflow.planning import (
    PlanError,
    batch_id,
    check_origin,
    job_id_prefix,
    origin_for_logical_date,
    partition_products,
    select_products,
    storage_run_id,
)
from scoring_airflow.settings import MAX_POOL_SIZE, ForecastSettings

log = logging.getLogger(__name__)


class ValidationFailed(Exception):
    """The run's forecasts are incomplete or wrong; the report in storage lists every problem."""


def available_products(layout: StorageLayout) -> list[int]:
    return sorted(int(name.removeprefix("product_")) for name in storage.list_names(layout.products_dir()))


def origin_range(layout: StorageLayout, product: int) -> tuple[int, int]:
    """Origins with 5 weeks of history in every series and 13 planned weeks after them."""
    history = read_product_table(layout, product, "history")
    futurex = read_product_table(layout, product, "futurex")
    first_weeks = history.groupby(["sku", "store"])["week"].min()
    return int(first_weeks.max()) + N_LAGS - 1, int(futurex["week"].max()) - HORIZON


def series_count(layout: StorageLayout, product: int) -> int:
    """Series a product's forecast must cover: those with planned weeks. Only the keys are read;
    checking the data is each scoring task's job, with errors naming the partition."""
    url, futurex = read_raw_product_table(layout, product, "futurex", columns=["sku", "store"])
    missing = {"sku", "store"} - set(futurex.columns)
    if missing:
        raise PlanError(f"{url}: lacks columns {sorted(missing)}")
    return int(futurex[["sku", "store"]].drop_duplicates().shape[0])


def plan_run(
    dag_id: str, airflow_run_id: str, run_date: datetime | date, params: dict, settings: ForecastSettings
) -> dict:
    """Resolve the run's origin, products and partitions, and write the run manifest to storage."""
    layout = StorageLayout(settings.storage_root)
    pool_size = int(params.get("pool_size") or settings.pool_size)
    if not 1 <= pool_size <= MAX_POOL_SIZE:
        raise PlanError(f"pool_size must be between 1 and {MAX_POOL_SIZE}, got {pool_size}")
    products = select_products(available_products(layout), params.get("products"))
    origin = params.get("origin_week")
    origin = int(origin) if origin is not None else origin_for_logical_date(run_date, settings.week0_monday)
    check_origin(origin, *origin_range(layout, products[0]))
    model_version = params.get("model_version") or settings.model_version
    manifest = read_manifest(layout.model_set_dir(model_version))
    run_id = storage_run_id(dag_id, airflow_run_id)
    backend = params.get("compute_backend") or settings.compute_backend
    node_settings = {
        "vm_size": params.get("vm_size") or settings.vm_size,
        "spot_nodes": int(params.get("spot_nodes") or settings.spot_nodes),
        "task_slots_per_node": int(params.get("task_slots_per_node") or settings.task_slots_per_node),
    }
    plan = {
        "run_id": run_id,
        "airflow_run_id": airflow_run_id,
        "run_date": run_date.isoformat(),
        "origin": origin,
        "model_version": model_version,
        "model_sha256": {m["name"]: m["sha256"] for m in manifest["models"]},
        "storage_root": settings.storage_root,
        "compute_backend": backend,
        "backend_config": backend_config(backend, settings, node_settings),
        "pool_id": settings.keep_warm_pool or batch_id(f"pool-{run_id}"),
        "pool_size": pool_size,
        "vm_size": node_settings["vm_size"],
        "force": bool(params.get("force", False)),
        "partitions": partition_products(products, pool_size, params.get("partitioning") or "per_node"),
        "series_per_product": {str(p): series_count(layout, p) for p in products},
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


def connect_storage(_context: object = None) -> None:
    """Before every task: abfs:// URLs use the `wasb` connection's account when one is configured
    (otherwise adlfs' own AZURE_STORAGE_* variables)."""
    settings = ForecastSettings()
    if settings.wasb_conn_id:
        use_connection_for_abfs(settings.wasb_conn_id)


def backend_config(backend: str, settings: ForecastSettings, node_settings: dict) -> dict:
    """What the backend needs to rebuild itself anywhere (the triggerer, the teardown): ids and
    settings only; credentials stay in the Airflow connections."""
    if backend == "local":
        return {"pool_dir": str(settings.local_pool_dir)}
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
            "pool_poll_s": settings.poll_interval_s,
            **node_settings,
        }
    raise PlanError(f"unknown compute backend {backend!r}; available: 'local', 'azure_batch'")


def create_pool(plan: dict) -> str:
    backend_for(plan["compute_backend"], plan["backend_config"]).create_pool(plan["pool_id"], plan["pool_size"])
    return plan["pool_id"]


def delete_pool(plan: dict) -> None:
    """Teardown: the run's jobs (whatever state they are in), then the pool."""
    backend = backend_for(plan["compute_backend"], plan["backend_config"])
    backend.delete_jobs(job_id_prefix(plan["run_id"]))
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
    """Point `latest.json` at this run; one atomic write, so readers never see a partial run."""
    layout = StorageLayout(plan["storage_root"])
    pointer = {
        "run_id": plan["run_id"],
        "origin": plan["origin"],
        "model_version": plan["model_version"],
        "forecasts": f"{layout.run_dir(plan['run_id'])}/forecasts",
        "validation_report": layout.validation_report(plan["run_id"]),
        "published_at": datetime.now(UTC).isoformat(),
    }
    storage.write_bytes_atomic(layout.latest_pointer(), json.dumps(pointer, indent=2).encode())
    log.info("published run %s as latest: %s", plan["run_id"], pointer["forecasts"])
    return pointer


def read_latest(layout: StorageLayout) -> dict | None:
    url = layout.latest_pointer()
    return json.loads(storage.read_bytes(url)) if storage.exists(url) else None
