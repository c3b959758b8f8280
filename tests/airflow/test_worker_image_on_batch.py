"""The worker image as Azure Batch runs it: the weekly DAG on the azure_batch backend, through the
Batch test endpoint in container mode (each task's command line run inside the image on a Docker
engine, with the task directory, working directory and AZ_BATCH_* variables a node gives it),
against Azurite, scores the reference data with the committed gbm package's compiled engine to
the same bytes as the README's main job.

Run by scripts/containers_test.sh, which builds the image and runs the main job first; skipped
elsewhere (CI has no Docker engine)."""

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from retail_scoring import storage
from retail_scoring.data.catalogue import build_catalogue
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from scoring_airflow.planning import storage_run_id
from tests.airflow.conftest import PROJECT, run_dag
from tests.batch_endpoint import BatchTestEndpoint

WORKER_IMAGE = os.environ.get("CONTAINERS_TEST_WORKER_IMAGE", "")
MAIN_JOB_STORAGE = StorageLayout(os.environ.get("CONTAINERS_TEST_MAIN_JOB_STORAGE", f"file://{PROJECT}/.local/storage"))
PACKAGE = "gbm-1250x6-v1"
PRODUCTS = [1, 2, 3, 4]
LAYOUT = StorageLayout("abfs://forecasts")

pytestmark = pytest.mark.skipif(not WORKER_IMAGE, reason="scripts/containers_test.sh runs this with a built image")


def copy_product_tables(source: StorageLayout, target: StorageLayout, products: list[int]) -> None:
    storage.create_root(target.root)
    for product in products:
        for table in ("history", "futurex", "actuals"):
            url = source.product_file(product, table)
            storage.write_bytes_atomic(target.product_file(product, table), storage.read_bytes(url))
    storage.write_bytes_atomic(target.sales_through(), storage.read_bytes(source.sales_through()))


@pytest.fixture
def container_batch(azurite, airflow_db, tmp_path, monkeypatch):
    """Azurite seeded with the main job's product tables and the committed package; an endpoint
    running tasks in the worker image; the DAG's settings pointed at both."""
    copy_product_tables(MAIN_JOB_STORAGE, LAYOUT, PRODUCTS)
    build_catalogue(LAYOUT)
    upload_package(PROJECT / "include" / "models" / PACKAGE, LAYOUT)
    endpoint = BatchTestEndpoint("testbatch", tmp_path / "batch-nodes", {}, containers=True)
    endpoint.start()
    connections = {
        "AIRFLOW_CONN_AZURE_BATCH_DEFAULT": {
            "conn_type": "azure_batch",
            "login": "testbatch",
            "password": base64.b64encode(b"test-batch-account-key").decode(),
            "extra": {"account_url": endpoint.url},
        },
        "AIRFLOW_CONN_WASB_DEFAULT": {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}},
    }
    for name, connection in connections.items():
        monkeypatch.setenv(name, json.dumps(connection))
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")  # the workers get SAS grants only
    monkeypatch.setitem(fsspec.config.conf, "abfs", {})
    fsspec.get_filesystem_class("abfs").clear_instance_cache()
    for name, value in {
        "FORECAST_STORAGE_ROOT": LAYOUT.root,
        "FORECAST_WASB_CONN_ID": "wasb_default",
        "FORECAST_WORKER_IMAGE": WORKER_IMAGE,
        "FORECAST_MODEL_VERSION": PACKAGE,
    }.items():
        monkeypatch.setenv(name, value)
    yield endpoint
    endpoint.stop()


def test_the_worker_image_scores_as_batch_runs_it_to_the_main_jobs_bytes(container_batch):
    conf = {"products": PRODUCTS, "pool_size": 2, "compute_backend": "azure_batch", "engine": "compiled"}
    dag_run = run_dag(datetime(2026, 11, 23, 6, tzinfo=UTC), {**conf, "origin_week": 107})
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    stdout = storage.read_bytes(LAYOUT.task_log(run_id, "partition_000", "stdout")).decode()
    assert "compiled" in stdout and "rows scored" in stdout, "the image's compiled engine scored"
    task_dirs = list((container_batch.workdir).glob("*/partition_000/start1"))
    assert task_dirs and (task_dirs[0] / "stdout.txt").exists(), "the task ran under the node's task directory"
    main_job = storage.read_json(MAIN_JOB_STORAGE.current_forecast())["products"]
    for product in PRODUCTS:
        scored = storage.read_bytes(LAYOUT.forecast_file(run_id, product))
        reference = main_job[str(product)]
        assert reference["origin"] == 107 and reference["model_version"] == PACKAGE
        assert storage.sha256_hex(scored) == reference["sha256"], f"product {product} differs from the main job's"
    assert Path(main_job["1"]["forecast"].removeprefix("file://")).exists()
