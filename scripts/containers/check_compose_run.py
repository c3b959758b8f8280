"""The compose stack, driven as a user drives it (scripts/containers_test.sh runs this once the
stack is up): through the API server's REST API with a token, the weekly DAG at origin 107 and
then the ranger package as a challenger; the forecasts compared byte for byte (sha256) with the
README main job's; the report and a forecast opened through the extra-link pages, and refused
without a token. Prints each figure it checks."""

import os
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from scoring_airflow.planning import storage_run_id

API = "http://127.0.0.1:8080"
DAG_ID = "weekly_sales_forecast"
PROJECT = Path(__file__).resolve().parents[2]
MAIN_JOB = StorageLayout(f"file://{PROJECT}/.local/storage")
COMPOSE_STORAGE = StorageLayout("abfs://forecast")
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6"
    "IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)
RUN_TIMEOUT_S = 1800


def compose(*arguments: str) -> str:
    """A command run in the scheduler's container (CONTAINERS_COMPOSE: the compose command line)."""
    command = [*shlex.split(os.environ["CONTAINERS_COMPOSE"]), "exec", "-T", "airflow-scheduler", *arguments]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def admin_password() -> str:
    """From the stack's secrets file (CONTAINERS_COMPOSE_ENV), as scripts/compose_env.sh wrote it."""
    lines = Path(os.environ["CONTAINERS_COMPOSE_ENV"]).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)["AIRFLOW_ADMIN_PASSWORD"]


def api(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def run_dag(session: requests.Session, conf: dict, name: str) -> str:
    """Trigger a run, wait for it to end; returns its run id, fails unless it succeeded."""
    run_id = f"containers__{name}__{datetime.now(UTC):%Y%m%dT%H%M%S}"
    body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
    session.post(f"{API}/api/v2/dags/{DAG_ID}/dagRuns", json=body).raise_for_status()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = session.get(f"{API}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()
        if run["state"] in ("success", "failed"):
            seconds = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).seconds
            print(f"run {run_id}: {run['state']} in {seconds} s")
            if run["state"] != "success":
                sys.exit(f"run {run_id} failed; `docker compose logs airflow-scheduler` tells why")
            return run_id
        time.sleep(5)
    sys.exit(f"run {run_id} did not end within {RUN_TIMEOUT_S} s")


def compare_with_main_job(run_id: str) -> None:
    """Every forecast of the compose run has the bytes of the main job's forecast of its product."""
    main_job = storage.read_json(MAIN_JOB.current_forecast())["products"]
    forecasts = storage.list_names(COMPOSE_STORAGE.forecasts_dir(run_id))
    differing = []
    for name in forecasts:
        product = str(int(name.removeprefix("product_").removesuffix(".parquet")))
        scored = storage.read_bytes(f"{COMPOSE_STORAGE.forecasts_dir(run_id)}/{name}")
        reference = main_job[product]
        if storage.sha256_hex(scored) != reference["sha256"] or reference["origin"] != 107:
            differing.append(name)
    print(f"forecasts byte-identical to the README main job's: {len(forecasts) - len(differing)} of {len(forecasts)}")
    if differing or len(forecasts) != 90:
        sys.exit(f"differing or missing: {differing[:10]} ({len(forecasts)} forecasts)")


def check_output_pages(session: requests.Session, run_id: str) -> None:
    report = session.get(f"{API}/forecast-outputs/runs/{run_id}/report/")
    csv = session.get(f"{API}/forecast-outputs/runs/{run_id}/forecasts/product_001.csv")
    anonymous = requests.get(f"{API}/forecast-outputs/runs/{run_id}/report/")
    print(
        f"report page: {report.status_code}; forecast CSV: {csv.status_code}; without a token: {anonymous.status_code}"
    )
    assert report.status_code == 200 and f"Forecast run {run_id}" in report.text, report.text[:300]
    assert csv.status_code == 200 and csv.text.startswith('"sku","store","week","q5"'), csv.text[:300]
    assert anonymous.status_code in (401, 403)


def main() -> None:
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = AZURITE
    login = requests.post(f"{API}/auth/token", json={"username": "admin", "password": admin_password()})
    login.raise_for_status()
    session = api(login.json()["access_token"])
    session.patch(f"{API}/api/v2/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()

    weekly = storage_run_id(DAG_ID, run_dag(session, {"origin_week": 107}, "weekly"))
    compare_with_main_job(weekly)
    check_output_pages(session, weekly)

    source = "/opt/airflow/include/models/ranger-qrf-v1"
    print(compose("retail-scoring", "upload-package", "--storage", COMPOSE_STORAGE.root, "--source", source).strip())
    challenger = {"origin_week": 107, "model_version": "ranger-qrf-v1", "products": [1, 2], "publish": False}
    ranger = storage_run_id(DAG_ID, run_dag(session, challenger, "ranger"))
    print(f"ranger forecasts: {len(storage.list_names(COMPOSE_STORAGE.forecasts_dir(ranger)))}")


if __name__ == "__main__":
    main()
