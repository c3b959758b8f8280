"""Faults while scoring: a triggerer restart, a worker killed mid-partition, a killed scoring task,
a storage outage, concurrent runs."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import TaskDeferred

from retail_scoring import storage
from retail_scoring.data.dataset import write_products
from retail_scoring.data.tables import read_forecast
from retail_scoring.errors import StorageUnavailableError
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from retail_scoring.run.contract import RunManifest, RunPlan
from scoring_airflow.compute import ScoringTask, TaskStatus, backend_for
from scoring_airflow.compute.local import LocalBackend, process_alive
from scoring_airflow.operators import ScorePartitionsOperator
from scoring_airflow.outages import through_outages
from scoring_airflow.partitions import pin_summaries
from scoring_airflow.planning import storage_run_id
from scoring_airflow.run_kinds import ForecastRun
from scoring_airflow.settings import ForecastSettings
from scoring_airflow.triggers import ScoringJobTrigger
from tests.airflow.conftest import plan_problems, run_dag
from tests.airflow.test_local_backend import STAND_IN_WORKER, task, wait_until_final
from tests.conftest import local_path, write_plan


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
    plan = write_plan(layout, "kill", {"partition_000": products})
    backend = LocalBackend(str(tmp_path / "pools"))
    backend.create_pool("pool-k", 1)
    try:
        backend.submit_job(
            "pool-k",
            "job-1",
            [
                ScoringTask(
                    "partition_000",
                    ForecastRun(plan.to_dict()).arguments("partition_000"),
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
    pin_summaries(layout, plan.run_id, ["partition_000"])  # what the score task does when the job ends
    assert plan_problems(layout, plan) == {"partition_000": {}}, "the retry's forecasts and summary are whole"


def test_a_backfill_and_the_weekly_run_at_the_same_time_share_nothing(airflow_db, layout, forecast_env):
    script = (
        "import sys; from datetime import datetime, UTC; sys.path[:0] = ['.'];"
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
    origins = sorted(RunManifest.from_json(storage.read_bytes(layout.run_manifest(d)), d).plan.origin for d in run_dirs)
    assert origins == [56, 107]
    assert not any(forecast_env.iterdir()), "both pools were deleted"


def local_plan(layout, run_id: str) -> RunPlan:
    partitions = {"partition_000": [1], "partition_001": [2]}
    return write_plan(layout, run_id, partitions)


@contextmanager
def local_pool_of(plan: RunPlan) -> Iterator[LocalBackend]:
    backend = backend_for("local", plan.backend_config)
    backend.create_pool(plan.pool_id, 2)
    try:
        yield backend
    finally:
        backend.delete_pool(plan.pool_id)


def deferred_submit(plan: RunPlan) -> tuple[ScorePartitionsOperator, TaskDeferred]:
    operator = ScorePartitionsOperator(
        task_id="score", plan=plan.to_dict(), settings=ForecastSettings(poll_interval_s=0.2)
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": SimpleNamespace(try_number=1)})
    return operator, deferred.value


def test_the_operator_resumed_after_a_triggerer_restart_submits_nothing_again(layout, tmp_path):
    plan = local_plan(layout, "resume")
    with local_pool_of(plan):
        _, deferred = deferred_submit(plan)
        # The triggerer that took the job restarts: a new one rebuilds the trigger from its kwargs.
        classpath, kwargs = deferred.trigger.serialize()
        events = asyncio.run(first_events(ScoringJobTrigger(**kwargs), timeout_s=120))
        # The task resumes in a fresh worker process: a new operator instance, only the event.
        resumed = ScorePartitionsOperator(task_id="score", plan=plan.to_dict(), settings=ForecastSettings())
        result = getattr(resumed, deferred.method_name)({"ti": SimpleNamespace(try_number=1)}, events[0].payload)
        jobs = sorted(p.name for p in (tmp_path / "pools" / plan.pool_id / "jobs").iterdir())
    assert result["scored"] == ["partition_000", "partition_001"]
    assert [s["attempts"] for s in result["statuses"]] == [1, 1]
    assert jobs == ["resume-try1"], "one job, submitted once"
    assert plan_problems(layout, plan) == {"partition_000": {}, "partition_001": {}}


def test_killing_the_deferred_scoring_task_deletes_its_job_and_stops_the_workers(layout, tmp_path):
    plan = local_plan(layout, "killed")
    with local_pool_of(plan) as backend:
        operator, _ = deferred_submit(plan)
        job = tmp_path / "pools" / plan.pool_id / "jobs" / "killed-try1"
        deadline = time.monotonic() + 30
        while len(list((job / "status").glob("*.json"))) < 2:
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.05)
        pids = [json.loads(f.read_text())["pid"] for f in (job / "status").glob("*.json")]
        operator.on_kill()
        assert not job.exists()
        with pytest.raises(RuntimeError, match="job killed-try1 not found"):
            backend.task_statuses("killed-try1")
        time.sleep(0.5)
        assert not any(process_alive(pid) for pid in pids)


@dataclass
class RetriedTask:
    first_stderr: str  # the first attempt's, read before the retry ends
    status: TaskStatus
    pool_log: str


def score_through_a_fault(plan: RunPlan, tmp_path: Path, heal: Callable[[], None]) -> RetriedTask:
    """Score product 1 on a local pool with one retry while the fault is there; heal it as soon as
    the first attempt has ended. The task's streams go to local files, so the first attempt's
    stderr is readable whatever the fault did to the storage root."""
    logs = f"file://{tmp_path}/logs"
    backend = LocalBackend(str(tmp_path / "pools"))
    backend.create_pool("pool-f", 1)
    try:
        arguments = ForecastRun(plan.to_dict()).arguments("partition_000")
        task = ScoringTask("partition_000", arguments, f"{logs}/out", f"{logs}/err")
        backend.submit_job("pool-f", "job-1", [task], max_retries=1, timeout_s=300)
        status_file = tmp_path / "pools" / "pool-f" / "jobs" / "job-1" / "status" / "partition_000.json"
        deadline = time.monotonic() + 240
        while not (status_file.exists() and json.loads(status_file.read_text())["attempts"] == 2):
            assert time.monotonic() < deadline, "the first attempt never ended"
            time.sleep(0.05)
        heal()
        first_stderr = storage.read_bytes(task.stderr_url).decode()
        status = wait_until_final(backend, "job-1", timeout_s=120)["partition_000"]
        return RetriedTask(first_stderr, status, (tmp_path / "pools" / "pool-f" / "pool.log").read_text())
    finally:
        backend.delete_pool("pool-f")


def assert_exit_3_then_retried(retried: RetriedTask, message: str) -> None:
    assert re.search(message, retried.first_stderr, re.MULTILINE), retried.first_stderr
    assert "Traceback" not in retried.first_stderr
    assert "job-1/partition_000 attempt 1 failed (exit code 3), retrying" in retried.pool_log
    assert (retried.status.state, retried.status.attempts) == ("succeeded", 2)


def test_a_storage_outage_exits_3_naming_the_url_and_the_pool_retries_the_task(
    flaky_azurite, small_reference, tiny_model_dir, tmp_path
):
    """The worker gives up after the storage client's own retries (about a minute and a half) with
    exit code 3 and one line; the pool's retry succeeds once storage is back."""
    layout = StorageLayout("abfs://outage")
    write_products(layout, small_reference, 1)
    upload_package(tiny_model_dir, layout)
    plan = write_plan(layout, "fault", {"partition_000": [1]})  # its run manifest is written before the fault
    flaky_azurite.cut()
    retried = score_through_a_fault(plan, tmp_path, heal=flaky_azurite.restore)
    assert_exit_3_then_retried(retried, r"^error: abfs://outage/\S+: storage unavailable after retries")
    assert storage.exists(layout.forecast_file("fault", 1))


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs, where the test may mount one (root); skipped elsewhere."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as file:  # unbuffered: nothing left to flush on close
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def test_a_full_disk_exits_3_leaves_no_temporary_file_and_the_pool_retries(
    small_disk, small_reference, tiny_model_dir, tmp_path
):
    layout = StorageLayout(f"file://{small_disk}/storage")
    write_products(layout, small_reference, 1)
    upload_package(tiny_model_dir, layout)
    plan = write_plan(layout, "fault", {"partition_000": [1]})
    filler = fill(small_disk)
    leftovers = []

    def free_space() -> None:
        leftovers.extend(p.name for p in small_disk.rglob(".tmp-*"))  # what the failed attempt left
        filler.unlink()

    retried = score_through_a_fault(plan, tmp_path, heal=free_space)
    assert_exit_3_then_retried(retried, r"^error: \S+: storage unavailable \(No space left on device\)$")
    assert leftovers == []
    pin_summaries(layout, "fault", ["partition_000"])
    assert plan_problems(layout, plan) == {"partition_000": {}}


def test_a_storage_outage_longer_than_the_clients_retries_is_waited_out_by_the_run(
    airflow_db, flaky_azurite, small_reference, tiny_model_dir, forecast_env, monkeypatch
):
    """Blob storage cut for 140 s while the run scores: longer than the Azure SDK's own retries
    (about 86 s), so the workers exit 3 and the pool retries them, and Airflow's score task,
    following the job, waits storage out instead of failing; the run succeeds once it is back."""
    layout = StorageLayout("abfs://outage")
    monkeypatch.setenv("FORECAST_STORAGE_ROOT", layout.root)
    monkeypatch.setenv("FORECAST_STORAGE_OUTAGE_POLL_S", "2")
    write_products(layout, small_reference, 2)
    upload_package(tiny_model_dir, layout)
    cut = {}

    def cut_while_scoring() -> None:  # dag.test() runs in the main thread: the cut comes from this one
        deadline = time.monotonic() + 240
        while not list(forecast_env.glob("*/jobs/*")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the scoring job is submitted: cut now
        cut["at"] = time.monotonic()
        flaky_azurite.cut()
        time.sleep(140)
        flaky_azurite.restore()
        cut["restored"] = time.monotonic()

    outage = threading.Thread(target=cut_while_scoring)
    outage.start()
    dag_run = run_dag(datetime(2026, 11, 23, 6, tzinfo=UTC), {"pool_size": 2})
    outage.join()
    assert cut["restored"] - cut["at"] >= 140
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    statuses = dag_run.get_task_instance("score").xcom_pull(task_ids="score")["statuses"]
    assert max(status["attempts"] for status in statuses) >= 2, "the workers met the outage"
    assert storage.read_json(layout.validation_report(run_id))["valid"]


def test_an_outage_past_the_deadline_fails_saying_since_when(monkeypatch, caplog):
    monkeypatch.setenv("FORECAST_STORAGE_OUTAGE_S", "0.3")
    monkeypatch.setenv("FORECAST_STORAGE_OUTAGE_POLL_S", "0.05")
    attempts = []

    def unreachable() -> None:
        attempts.append(time.time())
        assert len(attempts) < 200, "never gave up: the deadline was not kept"
        raise StorageUnavailableError("abfs://outage/x: storage unavailable after retries (connection refused)")

    with pytest.raises(StorageUnavailableError) as failed:
        through_outages(unreachable, "validating")
    assert re.match(
        r"storage unreachable since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 \(\d+ s, longer than "
        r"FORECAST_STORAGE_OUTAGE_S = 0 s\): abfs://outage/x: storage unavailable after retries",
        str(failed.value),
    ), str(failed.value)
    assert len(attempts) > 2, "tried again meanwhile"
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1, "logged once"
    assert "storage unreachable since" in caplog.records[0].message


def test_a_step_goes_on_when_storage_is_back_within_the_deadline(monkeypatch, caplog):
    monkeypatch.setenv("FORECAST_STORAGE_OUTAGE_POLL_S", "0.01")
    answers = iter([StorageUnavailableError("down"), StorageUnavailableError("down"), "published"])

    def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    caplog.set_level("INFO")
    assert through_outages(flaky, "publishing") == "published"
    messages = [record.message for record in caplog.records]
    assert sum("storage unreachable since" in m for m in messages) == 1 and any(
        "storage is back" in m for m in messages
    )
