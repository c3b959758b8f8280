"""Azurite and the Azure Batch stand-in (tests/batch_endpoint.py) for a demonstration under Airflow's
own scheduler: both started, storage seeded with the reference data's first products and the
committed gbm package; prints the environment the Airflow processes need (`export ...` lines,
then `# ready`), then serves until terminated.

  python -m scripts.batch_stand_ins WORKDIR [--products 2]   # from the project folder
"""

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from retail_scoring.data.dataset import load_orange_juice, prepare_reference_series, write_products
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from tests.azurite import Azurite
from tests.batch_endpoint import BatchTestEndpoint

PROJECT = Path(__file__).resolve().parents[1]
WORKER_IMAGE = "retail-scoring-worker:demo"
LAYOUT = StorageLayout("abfs://forecasts")
PACKAGE = PROJECT / "include" / "models" / "gbm-1250x6-v1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--products", type=int, default=2)
    args = parser.parse_args()
    azurite = Azurite(args.workdir / "azurite")
    azurite.start()
    endpoint = BatchTestEndpoint(
        "demobatch", args.workdir / "batch-nodes", {WORKER_IMAGE: [sys.executable, "-m", "retail_scoring.cli"]}
    )
    endpoint.start()
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    write_products(LAYOUT, prepare_reference_series(load_orange_juice()), args.products)
    upload_package(PACKAGE, LAYOUT)
    connections = {
        "AIRFLOW_CONN_AZURE_BATCH_DEFAULT": {
            "conn_type": "azure_batch",
            "login": "demobatch",
            "password": "ZGVtby1iYXRjaC1hY2NvdW50LWtleQ==",
            "extra": {"account_url": endpoint.url},
        },
        "AIRFLOW_CONN_WASB_DEFAULT": {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}},
    }
    settings = {
        "FORECAST_COMPUTE_BACKEND": "azure_batch",
        "FORECAST_STORAGE_ROOT": LAYOUT.root,
        "FORECAST_WASB_CONN_ID": "wasb_default",
        "FORECAST_WORKER_IMAGE": WORKER_IMAGE,
        "FORECAST_MODEL_VERSION": PACKAGE.name,
    }
    for name, value in {**{n: json.dumps(c) for n, c in connections.items()}, **settings}.items():
        print(f"export {name}={shlex.quote(value)}")
    print("# ready", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    endpoint.stop()
    azurite.stop()


if __name__ == "__main__":
    main()
