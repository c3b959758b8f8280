"""Airflow for tests: its home and SQLite database live under .local/, never in the user's home."""

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = PROJECT / ".local" / "airflow-test"
os.environ.update(
    AIRFLOW_HOME=str(AIRFLOW_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT / "dags"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    FORECAST_POLL_INTERVAL_S="0.5",
)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "scoring_airflow.cli", "create-pools"], check=True, capture_output=True)


@pytest.fixture(autouse=True)
def local_pool_dir(tmp_path, monkeypatch):
    """Local pools of a test live in its own folder; backends rebuilt anywhere (a trigger, the
    teardown) find them through the setting, as in a deployment."""
    monkeypatch.setenv("FORECAST_LOCAL_POOL_DIR", str(tmp_path / "pools"))
    return tmp_path / "pools"


@pytest.fixture
def forecast_env(layout, tmp_path, monkeypatch):
    """Point the pipeline's settings at the test storage and a test pool folder."""
    monkeypatch.setenv("FORECAST_STORAGE_ROOT", layout.root)
    monkeypatch.setenv("FORECAST_MODEL_VERSION", "tiny-test")
    monkeypatch.setenv("FORECAST_LOCAL_POOL_DIR", str(tmp_path / "pools"))
    monkeypatch.setenv("FORECAST_POOL_SIZE", "2")
    return tmp_path / "pools"


def load_dag(dag_id: str = "weekly_sales_forecast"):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(PROJECT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag(logical_date: datetime, conf: dict | None = None):
    """One DAG run through dag.test(); the same logical date reruns the same DAG run."""
    return load_dag().test(logical_date=logical_date, run_after=logical_date, run_conf=conf or {})


def plan_problems(layout, plan) -> dict[str, dict[str, list[str]]]:
    """What validation finds in each partition of the plan (a RunPlan; empty lists: valid)."""
    from scoring_airflow.partitions import read_run_manifest, run_problems

    return run_problems(layout, read_run_manifest(plan))


@pytest.fixture
def api_client(monkeypatch, tmp_path):
    """The API server app with one viewer, `planner`, of Airflow's simple auth manager."""
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"planner": "planner-password"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "planner:viewer")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-only-secret-" + "0123456789abcdef" * 4)
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app()) as client:
        yield client
