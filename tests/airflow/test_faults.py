"""Faults while scoring: a triggerer restart, a worker killed mid-partition, concurrent runs."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from retail_scoring import storage
from retail_scoring.dataset import write_products
from retail_scoring.tables import read_forecast
from retail_scoring.validation import forecast_problems
from scoring_airflow.compute import ScoringTask
from scoring_airflow.compute.local import LocalBackend
from scoring_airflow.operators import worker_arguments
from scoring_airflow.triggers import ScoringJobTrigger
from tests.airflow.test_local_backend import STAND_IN_WORKER, task
from tests.conftest import TINY_MODELS, local_path


async def first_events(trigger: ScoringJobTrigger, timeout_s: float):
    async def collect():
        return [event async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout_s)


def test_a_restarted_triggerer_resumes_waiting_on_the_same_job(tmp_path):
    backend = LocalBackend(str(tmp_path / "pools"), worker_command=STAND_IN_WORKER)
    backend.create_pool("pool-t", 1)
    try:
        backend.submit_job("pool-t", "job-1", [task(tmp_path, "p0", "sleep")], max_retries=0, timeout_s=3)
        trigger = ScoringJobTrigger("local", backend.config(), "job-1", poll_interval_s=0.2)
        # The first triggerer goes away while the task runs ...
        try:
            asyncio.run(first_events(trigger, timeout_s=1))
        except TimeoutError:
            pass
        # ... and another one rebuilds the trigger from what Airflow stored: same job, no resubmission.
        classpath, kwargs = trigger.serialize()
        assert classpath == "scoring_airflow.triggers.ScoringJobTrigger"
        events = asyncio.run(first_events(ScoringJobTrigger(**kwargs), timeout_s=30))
        (status,) = events[0].payload["statuses"]
        assert events[0].payload["job_id"] == "job-1"
        assert status["attempts"] == 1, "the task ran once: nothing was submitted twice"
        assert "timed out" in status["detail"]
    finally:
        backend.delete_pool("pool-t")


def test_a_worker_killed_mid_partition_is_retried_and_never_leaves_a_partial_forecast(
    layout, small_reference, tmp_path
):
    products = list(range(1, 31))
    write_products(layout, small_reference, len(products))
    plan = {
        "storage_root": layout.root,
        "partitions": {"partition_000": products},
        "origin": 107,
        "model_version": TINY_MODELS,
        "run_id": "kill",
    }
    backend = LocalBackend(str(tmp_path / "pools"))
    backend.create_pool("pool-k", 1)
    try:
        backend.submit_job(
            "pool-k",
            "job-1",
            [
                ScoringTask(
                    "partition_000",
                    worker_arguments(plan, "partition_000"),
                    layout.task_log("kill", "partition_000", "stdout"),
                    layout.task_log("kill", "partition_000", "stderr"),
                ),
            ],
            max_retries=2,
            timeout_s=120,
        )
        status_file = tmp_path / "pools" / "pool-k" / "jobs" / "job-1" / "status" / "partition_000.json"
        forecasts = local_path(layout.forecast_file("kill", 1)).parent
        deadline = time.monotonic() + 60
        while not (forecasts.exists() and any(forecasts.glob("product_*.parquet"))):
            assert time.monotonic() < deadline, "the worker never wrote a forecast"
            time.sleep(0.002)
        os.killpg(json.loads(status_file.read_text())["pid"], signal.SIGKILL)
        written_when_killed = len(list(forecasts.glob("product_*.parquet")))
        for path in forecasts.glob("product_*.parquet"):  # whatever is visible is whole
            read_forecast(str(path))
        while json.loads(status_file.read_text())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline + 60, "the retry never finished"
            time.sleep(0.1)
        status = json.loads(status_file.read_text())
    finally:
        backend.delete_pool("pool-k")
    assert written_when_killed < len(products), "the kill landed mid-partition"
    assert (status["state"], status["attempts"]) == ("succeeded", 2)
    for product in products:
        assert not forecast_problems(layout, "kill", product, 66, 107, TINY_MODELS)


def test_a_backfill_and_the_weekly_run_at_the_same_time_share_nothing(airflow_db, layout, forecast_env):
    script = (
        "import sys; from datetime import datetime, UTC; sys.path[:0] = ['plugins', '.'];"
        "from tests.airflow.conftest import run_dag;"
        "d = datetime.fromisoformat(sys.argv[1]).replace(tzinfo=UTC);"
        "r = run_dag(d, {'products': [1, 2], 'pool_size': 1}); print('STATE', r.state, r.run_id)"
    )
    project = Path(__file__).resolve().parents[2]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, date],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for date in ("2026-11-23T06:00:00", "2025-12-01T06:00:00")
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    finals = [line.split() for output in outputs for line in output.splitlines() if line.startswith("STATE")]
    assert [final[1] for final in finals] == ["success", "success"], outputs[0][-3000:] + outputs[1][-3000:]
    run_dirs = storage.list_names(f"{layout.root}/runs")
    assert len(run_dirs) == 2
    origins = sorted(
        json.loads(storage.read_bytes(f"{layout.root}/runs/{d}/manifest.json"))["origin"] for d in run_dirs
    )
    assert origins == [56, 107]
    assert not any(forecast_env.iterdir()), "both pools were deleted"
