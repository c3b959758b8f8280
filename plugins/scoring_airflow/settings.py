"""Defaults of the forecast pipeline in one typed object; overridden by environment variables
(FORECAST_*) and, per run, by DAG params. Credentials never live here: they are Airflow connections."""

import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


# Ubuntu 22.04 HPC (Docker preinstalled, as Batch container pools need); Batch supports 22.04 nodes
# until 2027-06-30: docs/deployment.md says how to move to another image.
DEFAULT_BATCH_IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"
DEFAULT_NODE_AGENT_SKU = "batch.node.ubuntu 22.04"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FORECAST_{name}", default)


def _env_flag(name: str, default: bool) -> bool:
    value = _env(name, str(default)).strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"FORECAST_{name} must be true or false, got {value!r}")
    return value in ("true", "1")


def image_reference(text: str) -> dict[str, str]:
    """A Batch VM image as `publisher:offer:sku:version` (FORECAST_BATCH_IMAGE)."""
    parts = text.split(":")
    if len(parts) != 4 or not all(parts):
        raise ValueError(f"a Batch VM image is publisher:offer:sku:version, got {text!r}")
    return dict(zip(("publisher", "offer", "sku", "version"), parts, strict=True))


@dataclass(frozen=True)
class ForecastSettings:
    storage_root: str = field(default_factory=lambda: _env("STORAGE_ROOT", f"file://{PROJECT_DIR}/.local/storage"))
    model_version: str = field(default_factory=lambda: _env("MODEL_VERSION", "gbm-1250x6-v1"))
    compute_backend: str = field(default_factory=lambda: _env("COMPUTE_BACKEND", "local"))
    # How gbm packages are scored: auto (their compiled engine where packaged with one, else R), r, compiled.
    engine: str = field(default_factory=lambda: _env("ENGINE", "auto"))
    pool_size: int = field(default_factory=lambda: int(_env("POOL_SIZE", str(os.cpu_count() or 1))))
    task_retries: int = field(default_factory=lambda: int(_env("TASK_RETRIES", "2")))
    task_timeout_s: int = field(default_factory=lambda: int(_env("TASK_TIMEOUT_S", "3600")))
    poll_interval_s: float = field(default_factory=lambda: float(_env("POLL_INTERVAL_S", "5")))
    local_pool_dir: Path = field(
        default_factory=lambda: Path(_env("LOCAL_POOL_DIR", str(PROJECT_DIR / ".local/pools")))
    )
    # An idle local pool whose owner has not created, submitted to or polled it for this long stops.
    local_pool_lease_s: float = field(default_factory=lambda: float(_env("LOCAL_POOL_LEASE_S", "600")))
    log_cap_bytes: int = field(default_factory=lambda: int(_env("LOG_CAP_BYTES", "20000")))
    # A forecast quantile above this many times its series' highest weekly sales is refused.
    max_forecast_ratio: float = field(default_factory=lambda: float(_env("MAX_FORECAST_RATIO", "100")))
    report_store: int = field(default_factory=lambda: int(_env("REPORT_STORE", "1")))
    vm_size: str = field(default_factory=lambda: _env("VM_SIZE", "Standard_D2s_v3"))
    # USD per node-hour by VM size, for the report's cost estimate (pay-as-you-go list prices; adjust).
    vm_hourly_prices: dict = field(
        default_factory=lambda: json.loads(_env("VM_PRICES", '{"Standard_D2s_v3": 0.096, "Standard_F2s_v2": 0.085}'))
    )
    # A partition holds at most this many products (more partitions than task slots when needed, which
    # the pool works through in turn): model loading stays a small share of a task (~1-2 s against
    # ~1.5 s per product for the gbm set), and each forecast's write grant fits a Batch task's environment.
    max_products_per_partition: int = field(default_factory=lambda: int(_env("MAX_PRODUCTS_PER_PARTITION", "200")))
    # Peak memory of one scoring worker (the gbm set measured ~1 GB); the local pool runs no more
    # workers at once than the machine's cores and its available memory at this much each allow.
    worker_memory_mb: int = field(default_factory=lambda: int(_env("WORKER_MEMORY_MB", "1200")))
    # Cores and memory of Batch VM sizes: a pool's task slots per node are checked against them.
    vm_sizes: dict = field(
        default_factory=lambda: json.loads(
            _env(
                "VM_SIZES",
                '{"Standard_D2s_v3": {"cores": 2, "memory_gb": 8}, "Standard_F2s_v2": {"cores": 2, "memory_gb": 4},'
                ' "Standard_D4s_v3": {"cores": 4, "memory_gb": 16}}',
            )
        )
    )
    # Azure: connection ids (credentials live in the connections), the worker image and the pool.
    wasb_conn_id: str = field(default_factory=lambda: _env("WASB_CONN_ID", ""))  # empty: adlfs' env vars
    batch_conn_id: str = field(default_factory=lambda: _env("BATCH_CONN_ID", "azure_batch_default"))
    worker_image: str = field(default_factory=lambda: _env("WORKER_IMAGE", "retail-scoring-worker:1.0.0"))
    # /subscriptions/.../providers/Microsoft.Batch/batchAccounts/NAME: the score task's portal link.
    batch_account_resource_id: str = field(default_factory=lambda: _env("BATCH_ACCOUNT_RESOURCE_ID", ""))
    registry_conn_id: str = field(default_factory=lambda: _env("REGISTRY_CONN_ID", ""))
    # A user-assigned identity (its resource id) with AcrPull, which a keep-warm pool made outside
    # Airflow carries: tasks pull the worker image with it instead of a registry connection.
    registry_identity: str = field(default_factory=lambda: _env("REGISTRY_IDENTITY", ""))
    batch_image: str = field(default_factory=lambda: _env("BATCH_IMAGE", DEFAULT_BATCH_IMAGE))
    batch_node_agent_sku: str = field(default_factory=lambda: _env("BATCH_NODE_AGENT_SKU", DEFAULT_NODE_AGENT_SKU))
    # /subscriptions/.../virtualNetworks/NAME/subnets/NAME: the pools' nodes join this subnet.
    batch_subnet_id: str = field(default_factory=lambda: _env("BATCH_SUBNET_ID", ""))
    batch_node_public_ips: bool = field(default_factory=lambda: _env_flag("BATCH_NODE_PUBLIC_IPS", True))
    # How long one Batch call retries a throttled (429) or busy (503) service before the task fails.
    batch_retry_deadline_s: float = field(default_factory=lambda: float(_env("BATCH_RETRY_DEADLINE_S", "300")))
    # The Airflow pool every scoring task runs in, deferred too: its slots bound the jobs holding write
    # grants at once, which a storage container's 5 stored access policies limit (docs/deployment.md).
    write_grants_pool: str = field(default_factory=lambda: _env("WRITE_GRANTS_POOL", "forecast_write_grants"))
    spot_nodes: int = field(default_factory=lambda: int(_env("SPOT_NODES", "0")))
    task_slots_per_node: int = field(default_factory=lambda: int(_env("TASK_SLOTS_PER_NODE", "1")))
    autoscale_formula: str = field(default_factory=lambda: _env("AUTOSCALE_FORMULA", ""))
    keep_warm_pool: str = field(default_factory=lambda: _env("KEEP_WARM_POOL", ""))
    # A Batch pool older than this is deleted by the next run's create_pool (its run's Airflow gone).
    pool_lifetime_s: int = field(default_factory=lambda: int(_env("POOL_LIFETIME_S", str(6 * 3600))))
    node_wait_timeout_s: int = field(default_factory=lambda: int(_env("NODE_WAIT_TIMEOUT_S", "1800")))
    # How long Airflow's tasks wait out storage that does not answer (beyond the SDK's own retries)
    # before failing, and how often they try again meanwhile.
    storage_outage_s: float = field(default_factory=lambda: float(_env("STORAGE_OUTAGE_S", "1800")))
    storage_outage_poll_s: float = field(default_factory=lambda: float(_env("STORAGE_OUTAGE_POLL_S", "10")))
    # How long a run waits for the sales of the week before its logical date, and how often it looks.
    sales_wait_timeout_s: float = field(default_factory=lambda: float(_env("SALES_WAIT_TIMEOUT_S", str(6 * 3600))))
    sales_poll_interval_s: float = field(default_factory=lambda: float(_env("SALES_POLL_INTERVAL_S", "300")))
    # Monday on which dataset week 0 began; see planning.origin_for_logical_date.
    week0_monday: date = field(default_factory=lambda: date.fromisoformat(_env("WEEK0_MONDAY", "2024-10-28")))


MAX_POOL_SIZE = 64
