"""The DAG on a real Azure Batch account and storage account; skipped unless configured.

export AIRFLOW_CONN_AZURE_BATCH_DEFAULT='{"conn_type": "azure_batch", "login": "<batch account>",
    "password": "<batch key>", "extra": {"account_url": "https://<account>.<region>.batch.azure.com"}}'
export AIRFLOW_CONN_WASB_DEFAULT='{"conn_type": "wasb", "extra": {"connection_string": "<storage conn string>"}}'
export FORECAST_SYSTEM_TEST_CONTAINER=forecast-system-test  # created if missing, left in place
export FORECAST_WORKER_IMAGE=<registry>.azurecr.io/retail-scoring-worker:1.0.0
export FORECAST_REGISTRY_CONN_ID=acr   # if the registry is private: an Airflow connection to it
bash scripts/test.sh tests/system
"""

import json
import os
from datetime import UTC, datetime

import pytest

from retail_scoring import storage
from retail_scoring.data.dataset import write_products
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from scoring_airflow.blob import connect_storage
from scoring_airflow.settings import PROJECT_DIR, ForecastSettings
from tests.airflow.conftest import run_dag

REQUIRED = ["AIRFLOW_CONN_AZURE_BATCH_DEFAULT", "AIRFLOW_CONN_WASB_DEFAULT", "FORECAST_SYSTEM_TEST_CONTAINER",
            "FORECAST_WORKER_IMAGE"]  # fmt: skip
pytestmark = pytest.mark.skipif(
    not all(os.environ.get(name) for name in REQUIRED), reason=f"real Azure not configured: set {REQUIRED}"
)


def test_weekly_run_on_real_azure_batch(airflow_db, small_reference, monkeypatch):
    layout = StorageLayout(f"abfs://{os.environ['FORECAST_SYSTEM_TEST_CONTAINER']}")
    monkeypatch.setenv("FORECAST_STORAGE_ROOT", layout.root)
    monkeypatch.setenv("FORECAST_WASB_CONN_ID", "wasb_default")
    connect_storage()
    storage.create_root(layout.root)
    write_products(layout, small_reference, 2)
    model_version = ForecastSettings().model_version
    upload_package(PROJECT_DIR / "include" / "models" / model_version, layout)

    dag_run = run_dag(
        datetime.now(UTC).replace(microsecond=0),
        {"products": [1, 2], "origin_week": 107, "pool_size": 2, "spot_nodes": 1, "compute_backend": "azure_batch"},
    )
    assert dag_run.state == "success"
    current = json.loads(storage.read_bytes(layout.current_forecast()))
    assert {entry["model_version"] for entry in current["products"].values()} == {model_version}
