"""The DAG end to end with Azure Blob storage: Azurite (the real emulator) on 127.0.0.1 holds the
data, the models, the forecasts, the task logs and the report; compute is the local backend."""

import json
from datetime import UTC, datetime

import fsspec

from retail_scoring import storage
from retail_scoring.data.dataset import write_products
from retail_scoring.data.tables import read_forecast
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from scoring_airflow.planning import storage_run_id
from tests.airflow.conftest import run_dag
from tests.conftest import TINY_MODELS


def test_weekly_run_with_everything_in_blob_storage(
    airflow_db, azurite, small_reference, tiny_model_dir, forecast_env, monkeypatch
):
    layout = StorageLayout("abfs://forecasts")
    monkeypatch.setenv("FORECAST_STORAGE_ROOT", layout.root)
    write_products(layout, small_reference, 2)
    upload_package(tiny_model_dir, layout)

    dag_run = run_dag(datetime(2026, 11, 23, 6, tzinfo=UTC), {"products": [1, 2], "pool_size": 2})
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    for product in (1, 2):
        assert len(read_forecast(layout.forecast_file(run_id, product))) == 66 * 13
    assert "rows scored" in storage.read_bytes(layout.task_log(run_id, "partition_001", "stdout")).decode()
    assert json.loads(storage.read_bytes(layout.validation_report(run_id)))["valid"]
    assert json.loads(storage.read_bytes(layout.current_forecast()))["products"]["1"]["run_id"] == run_id
    assert storage.exists(layout.report_file(run_id, "report.md"))
    blobs = fsspec.filesystem("abfs").find("forecasts")
    assert any(name.endswith(f"{TINY_MODELS}/manifest.json") for name in blobs)
    assert not any("/.tmp-" in name for name in blobs), "no temporary blob left behind"
