"""Shared fixtures: a small slice of the real reference data and a tiny model package trained on it."""

import logging
from pathlib import Path

import pandas as pd
import pytest

from retail_scoring import storage
from retail_scoring.data.catalogue import read_catalogue
from retail_scoring.data.dataset import load_orange_juice, prepare_reference_series, write_products
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import REFERENCE_OUTPUT, read_manifest, upload_package
from retail_scoring.packages.gbm.train import Hyperparameters, train_model_set
from retail_scoring.run.contract import RunManifest, RunPlan

logging.getLogger("rpy2").setLevel(logging.WARNING)  # its exit-time INFO lines hit closed streams

pytest_plugins = ["tests.azurite"]

TEST_STORES = 6  # 66 series per product: big enough for every code path, small enough for seconds
TINY_MODELS = "tiny-test"


@pytest.fixture(scope="session")
def reference_series() -> pd.DataFrame:
    return prepare_reference_series(load_orange_juice())


@pytest.fixture(scope="session")
def small_reference(reference_series: pd.DataFrame) -> pd.DataFrame:
    return reference_series[reference_series["store"] <= TEST_STORES].reset_index(drop=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, small_reference: pd.DataFrame) -> Path:
    """35 real gbm models, 20 trees of depth 3, trained on the held-back-free history."""
    output = tmp_path_factory.mktemp("models") / TINY_MODELS
    history = small_reference[small_reference["week"] <= small_reference["week"].max() - 13]
    train_model_set(history, output, TINY_MODELS, Hyperparameters(n_trees=20, interaction_depth=3))
    return output


@pytest.fixture
def layout(tmp_path: Path, small_reference: pd.DataFrame, tiny_model_dir: Path) -> StorageLayout:
    """Storage with 3 products and the tiny model package, like a seeded local deployment."""
    layout = StorageLayout(f"file://{tmp_path}/storage")
    write_products(layout, small_reference, 3)
    upload_package(tiny_model_dir, layout)
    return layout


def local_path(url: str) -> Path:
    return Path(url.removeprefix("file://"))


def run_plan(layout, run_id: str, partitions: dict[str, list[int]], **fields) -> RunPlan:
    """A plan as `plan` makes it for these partitions (origin 107, the tiny model package, the
    local backend), without reading storage."""
    defaults = {
        "run_id": run_id,
        "airflow_run_id": f"manual__{run_id}",
        "run_date": "2026-11-23",
        "origin": 107,
        "model_version": TINY_MODELS,
        "model_manifest_sha256": "",
        "package_kind": "gbm-lag-quantiles",
        "output": REFERENCE_OUTPUT,
        "storage_root": layout.root,
        "run_manifest": layout.run_manifest(run_id),
        "compute_backend": "local",
        "backend_config": {},
        "pool_id": f"pool-{run_id}",
        "pool_size": 1,
        "vm_size": "local",
        "force": False,
        "publish": True,
        "max_forecast_ratio": 100.0,
        "engine": "auto",
        "engine_threads": None,
        "worker_memory_mb": 1200,
        "product_count": sum(len(products) for products in partitions.values()),
        "partition_count": len(partitions),
        "training_weeks": (0, 93),
        "calibration_url": None,
        "calibration_sha256": None,
        "profile_residuals": False,
    }
    return RunPlan(**{**defaults, **fields})


def write_plan(layout, run_id: str, partitions: dict[str, list[int]], **fields) -> RunPlan:
    """`run_plan` pinning the tiny model package as uploaded, with its run manifest in storage, for
    tests that drive the operator or the workers without planning."""
    fields.setdefault("model_manifest_sha256", read_manifest(layout, TINY_MODELS)[1])
    plan = run_plan(layout, run_id, partitions, **fields)
    series = read_catalogue(layout).set_index("product")["series"]
    products = [product for group in partitions.values() for product in group]
    series_per_product = {str(p): int(series[p]) if p in series.index else None for p in products}
    storage.write_bytes_atomic(plan.run_manifest, RunManifest(plan, partitions, series_per_product).to_json())
    return plan
