"""The DAG on the azure_batch backend: the real `azure-batch` client (through the provider's hook
and an `azure_batch` connection) talks to tests/batch_endpoint.py, which runs the worker as the
container's entrypoint against Azurite; storage credentials come from a `wasb` connection."""

import base64
import json
import shlex
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import fsspec
import isodate
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient

from retail_scoring import storage
from retail_scoring.data.dataset import write_products
from retail_scoring.data.tables import read_forecast
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from retail_scoring.scenarios.churn_data import load_mlc_churn, seal, snapshot_customers, train_glm, write_by_state
from retail_scoring.scenarios.document import Scenario
from scoring_airflow.blob import (
    ContainerPolicies,
    GrantSigner,
    connect_storage,
    path_in_container,
    revoke_write_grants,
    write_policy_id,
)
from scoring_airflow.compute import ComputeError, backend_for_run
from scoring_airflow.compute.azure_batch import AzureBatchBackend
from scoring_airflow.compute.base import ScoringTask, batch_id
from scoring_airflow.planning import storage_run_id
from scoring_airflow.settings import ForecastSettings
from tests.airflow.conftest import load_dag, run_dag
from tests.airflow.test_model_packages import RANGER
from tests.batch_endpoint import BatchTestEndpoint
from tests.churn import SCENARIO_FILE as CHURN_SCENARIO
from tests.churn import SNAPSHOT as CHURN_SNAPSHOT
from tests.churn import churn_url
from tests.worker.test_r_script_packages import naive_package

LATEST_WEEK = datetime(2026, 11, 23, 6, tzinfo=UTC)
WORKER_IMAGE = "retail-scoring-worker:test"
LAYOUT = StorageLayout("abfs://forecasts")
NAIVE_VERSION = "naive-quantiles-test"
TWO_PRODUCTS = {"products": [1, 2], "pool_size": 2, "compute_backend": "azure_batch"}
SOMEONE_ELSES_POOL = {  # a pool of the account that this pipeline did not create: no created_by metadata
    "id": "team-pool",
    "vmSize": "Standard_D2s_v3",
    "targetDedicatedNodes": 1,
    "virtualMachineConfiguration": {"imageReference": {"offer": "x"}, "nodeAgentSKUId": "batch.node.x"},
}


@pytest.fixture
def batch_endpoint(azurite, tmp_path, monkeypatch):
    endpoint = BatchTestEndpoint(
        "testbatch", tmp_path / "batch-nodes", {WORKER_IMAGE: [sys.executable, "-m", "retail_scoring.cli"]}
    )
    endpoint.start()
    key = base64.b64encode(b"test-batch-account-key").decode()
    connections = {
        "AIRFLOW_CONN_AZURE_BATCH_DEFAULT": {
            "conn_type": "azure_batch",
            "login": "testbatch",
            "password": key,
            "extra": {"account_url": endpoint.url},
        },
        "AIRFLOW_CONN_WASB_DEFAULT": {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}},
    }
    for name, connection in connections.items():
        monkeypatch.setenv(name, json.dumps(connection))
    yield endpoint
    endpoint.stop()


@pytest.fixture
def batch_env(airflow_db, batch_endpoint, small_reference, tiny_model_dir, forecast_env, monkeypatch):
    """Data and models seeded into Azurite; then the only storage credentials left are the
    `wasb` connection's (Airflow side) and each task's SAS (worker side)."""
    write_products(LAYOUT, small_reference, 2)
    upload_package(tiny_model_dir, LAYOUT)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setitem(fsspec.config.conf, "abfs", {})  # the DAG's pre_execute fills it from the connection
    fsspec.get_filesystem_class("abfs").clear_instance_cache()
    for name, value in {
        "FORECAST_STORAGE_ROOT": LAYOUT.root,
        "FORECAST_WASB_CONN_ID": "wasb_default",
        "FORECAST_WORKER_IMAGE": WORKER_IMAGE,
        "FORECAST_NODE_WAIT_TIMEOUT_S": "60",
    }.items():
        monkeypatch.setenv(name, value)
    return batch_endpoint


def pool_id_of(dag_run) -> str:
    return batch_id(f"pool-{storage_run_id(dag_run.dag_id, dag_run.run_id)}")


def read_blob(url: str) -> str:
    connect_storage()
    return storage.read_bytes(url).decode()


def test_weekly_run_on_batch_with_blob_storage(batch_env):
    batch_env.faults.node_delay_s = 2  # nodes take a while to come up: waited for
    dag_run = run_dag(LATEST_WEEK, {**TWO_PRODUCTS, "spot_nodes": 1})
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    for product in (1, 2):
        assert len(read_forecast(LAYOUT.forecast_file(run_id, product))) == 66 * 13
    assert "rows scored" in read_blob(LAYOUT.task_log(run_id, "partition_001", "stdout")), "output files uploaded"
    assert json.loads(read_blob(LAYOUT.current_forecast()))["products"]["2"]["run_id"] == run_id

    pool = batch_env.pools_created[pool_id_of(dag_run)]
    containers = pool["virtualMachineConfiguration"]["containerConfiguration"]
    assert containers == {"type": "dockerCompatible", "containerImageNames": [WORKER_IMAGE]}
    assert (pool["targetDedicatedNodes"], pool["targetLowPriorityNodes"]) == (1, 1)
    task = batch_env.tasks_added["partition_000"]
    # defaults: 2 retries of at most 3600 s each; Batch limits the task's whole life, retries included
    assert task["constraints"]["maxTaskRetryCount"] == 2
    assert isodate.parse_duration(task["constraints"]["maxWallClockTime"]) == timedelta(hours=3)
    worker_credentials = batch_env.task_environments["partition_000"]["AZURE_STORAGE_CONNECTION_STRING"]
    assert "SharedAccessSignature=" in worker_credentials and "AccountKey" not in worker_credentials
    sas = parse_qs(worker_credentials.split("SharedAccessSignature=", 1)[1])
    sas_life = datetime.fromisoformat(sas["se"][0]) - datetime.now(UTC)
    assert timedelta(hours=3) < sas_life <= timedelta(hours=3, minutes=5), "the task's life plus clock skew"
    assert pool_id_of(dag_run) in batch_env.deleted_pools
    assert batch_env.deleted_jobs == [f"{batch_id(run_id, 56)}-try1"]


def test_a_task_can_read_the_container_and_write_only_its_own_outputs_until_its_job_ends(batch_env, azurite):
    """Against Azurite, with the very tokens a task was given: the read SAS reads but writes
    nothing; a write grant wrote the task's outputs, and once the job ended none of its grants
    writes anything, not even its own blob (the job's stored access policy is gone)."""
    dag_run = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    environment = batch_env.task_environments["partition_000"]
    assert environment["FORECAST_WRITE_GRANTS_FILE"] == "write_grants.json"
    grants = json.loads(batch_env.task_files["partition_000"]["write_grants.json"])
    forecast_url = LAYOUT.forecast_file(run_id, 1)
    assert set(grants) == {
        forecast_url,
        LAYOUT.partition_summary(run_id, "partition_000"),
        LAYOUT.task_progress(run_id, "partition_000"),
    }
    assert "si=forecast-job-" in grants[forecast_url], "grants name the job's stored access policy"

    reader = BlobServiceClient.from_connection_string(environment["AZURE_STORAGE_CONNECTION_STRING"])
    container = reader.get_container_client("forecasts")
    assert container.get_blob_client(path_in_container(LAYOUT.product_file(1, "history"))).download_blob().readall()
    for url in (LAYOUT.current_forecast(), LAYOUT.model_file("tiny-test", "manifest.json"), forecast_url):
        with pytest.raises(HttpResponseError) as refused:
            container.get_blob_client(path_in_container(url)).upload_blob(b"tampered", overwrite=True)
        assert refused.value.status_code == 403, url

    # The grants came as a blob that only its own SAS reads: not the task's read SAS, and no other task.
    grants_file = batch_env.tasks_added["partition_000"]["resourceFiles"][0]["httpUrl"]
    assert "/forecasts-grants/" in grants_file and "sp=r&" in grants_file
    grants_path = grants_file.split("?")[0].split("/forecasts-grants/")[1]
    with pytest.raises(HttpResponseError) as refused:
        reader.get_blob_client("forecasts-grants", grants_path).download_blob()
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError) as gone:  # deleted when the job ended, the grants in it revoked
        BlobClient.from_blob_url(grants_file).download_blob()
    assert gone.value.status_code == 404

    written = read_forecast(forecast_url)
    for url, granted in grants.items():
        with pytest.raises(HttpResponseError) as refused:
            BlobClient.from_blob_url(granted).upload_blob(b"tampered after the job", overwrite=True)
        assert refused.value.status_code == 403, url
    assert read_forecast(forecast_url).equals(written)
    assert json.loads(read_blob(LAYOUT.current_forecast()))["products"]["1"]["run_id"] == run_id


def test_a_write_grant_writes_its_one_blob_until_the_job_ends(azurite, monkeypatch):
    connection = {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}}
    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", json.dumps(connection))
    storage.create_root("abfs://forecasts")
    own, other = LAYOUT.forecast_file("run-x", 1), LAYOUT.forecast_file("run-x", 2)
    signer = GrantSigner("wasb_default", "forecasts", timedelta(hours=3), job_id="run-x-try1")
    granted = signer.write_urls((own,))[own]
    BlobClient.from_blob_url(granted).upload_blob(b"its own blob", overwrite=True)
    sas = granted.split("?", 1)[1]
    blob_base = granted.split("?", 1)[0].removesuffix(path_in_container(own))
    for url in (other, LAYOUT.current_forecast(), LAYOUT.forecast_file("other-run", 1)):
        with pytest.raises(HttpResponseError) as refused:
            BlobClient.from_blob_url(f"{blob_base}{path_in_container(url)}?{sas}").upload_blob(b"x", overwrite=True)
        assert refused.value.status_code == 403, url
    revoke_write_grants("wasb_default", "forecasts", "run-x-try1")
    with pytest.raises(HttpResponseError) as refused:
        BlobClient.from_blob_url(granted).upload_blob(b"after the job", overwrite=True)
    assert refused.value.status_code == 403
    assert read_blob(own) == "its own blob"


def test_per_product_partitions_vm_size_and_task_slots_reach_the_pool_and_the_report(batch_env, monkeypatch):
    monkeypatch.setenv("FORECAST_SPOT_NODES", "1")  # the param's 0 must win over this default
    conf = {**TWO_PRODUCTS, "pool_size": 1, "partitioning": "per_product", "vm_size": "Standard_F2s_v2",
            "task_slots_per_node": 2, "spot_nodes": 0}  # fmt: skip
    dag_run = run_dag(LATEST_WEEK, conf)
    assert dag_run.state == "success"
    pool = batch_env.pools_created[pool_id_of(dag_run)]
    assert (pool["vmSize"], pool["taskSlotsPerNode"], pool["targetDedicatedNodes"]) == ("Standard_F2s_v2", 2, 1)
    assert pool["targetLowPriorityNodes"] == 0
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    for partition in ("partition_000", "partition_001"):
        arguments = shlex.split(batch_env.tasks_added[partition]["commandLine"])
        assert arguments[arguments.index("--partition") + 1] == partition
    assert json.loads(read_blob(LAYOUT.run_manifest(run_id)))["partitions"] == {
        "partition_000": [1],
        "partition_001": [2],
    }
    assert "node-hours of Standard_F2s_v2 = " in read_blob(LAYOUT.report_file(run_id, "report.md"))


def test_failing_partition_is_named_and_the_pool_still_deleted(batch_env, capsys):
    connect_storage()
    fs, path = storage.filesystem(LAYOUT.product_file(2, "history"))
    fs.rm_file(path)

    dag_run = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert dag_run.state == "failed"
    assert dag_run.get_task_instance("score").state == "failed"
    assert dag_run.get_task_instance("delete_pool").state == "success"
    assert pool_id_of(dag_run) in batch_env.deleted_pools
    failure = "1 of 2 partitions failed:\n- partition_001 (products 2): exit code 2 after 3 attempt(s)"
    task_logs = capsys.readouterr().out
    assert failure in task_logs
    assert "product_002/history.parquet: file not found" in task_logs


def test_preempted_spot_node_task_runs_again_and_is_reported(batch_env):
    batch_env.faults.preempt_after_s["partition_001"] = 1.5
    dag_run = run_dag(LATEST_WEEK, {**TWO_PRODUCTS, "spot_nodes": 2})
    assert dag_run.state == "success"
    statuses = {s["task_id"]: s for s in dag_run.get_task_instance("score").xcom_pull(task_ids="score")["statuses"]}
    assert "restarted 1x by the pool without a failed attempt" in statuses["partition_001"]["detail"]
    assert "restarted" not in statuses["partition_000"]["detail"]
    assert statuses["partition_001"]["attempts"] == 1, "a preemption does not use up a retry"
    assert pool_id_of(dag_run) in batch_env.deleted_pools


def test_pool_resize_error_fails_the_run_with_the_batch_text_and_tears_down(batch_env, capsys):
    batch_env.faults.resize_error = ("AccountCoreQuotaReached", "The core quota of the account was reached")
    dag_run = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert dag_run.state == "failed"
    assert dag_run.get_task_instance("create_pool").state == "failed"
    assert dag_run.get_task_instance("score").state == "upstream_failed"
    # Airflow skips the teardown of a failed setup, so create_pool deletes the pool it made itself.
    assert dag_run.get_task_instance("delete_pool").state == "upstream_failed"
    assert "AccountCoreQuotaReached: The core quota of the account was reached" in capsys.readouterr().out
    assert pool_id_of(dag_run) in batch_env.deleted_pools


def test_slow_nodes_past_the_deadline_fail_the_run_and_tear_down(batch_env, capsys, monkeypatch):
    monkeypatch.setenv("FORECAST_NODE_WAIT_TIMEOUT_S", "1")
    batch_env.faults.node_delay_s = 30
    dag_run = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert dag_run.state == "failed"
    assert "has 0 node(s) after 1 s (allocation resizing); giving up" in capsys.readouterr().out
    assert pool_id_of(dag_run) in batch_env.deleted_pools


# The backend alone, against the endpoint: the provider operator's gaps it must not repeat.


@pytest.fixture
def backend(batch_env) -> AzureBatchBackend:
    connect_storage()
    return AzureBatchBackend(
        storage_root=LAYOUT.root, worker_image=WORKER_IMAGE, node_wait_timeout_s=30, pool_poll_s=0.2
    )


def echo_task(task_id: str) -> ScoringTask:
    return ScoringTask(task_id, ["--help"], f"{LAYOUT.root}/logs/{task_id}.out", f"{LAYOUT.root}/logs/{task_id}.err")


def test_an_existing_job_id_is_an_error_not_a_reuse(backend):
    backend.create_pool("pool-a", 1)
    backend.submit_job("pool-a", "job-a", [echo_task("t1")], max_retries=0, timeout_s=60)
    with pytest.raises(RuntimeError, match="Batch job job-a exists already; ids are never reused"):
        backend.submit_job("pool-a", "job-a", [echo_task("t1")], max_retries=0, timeout_s=60)


def test_an_existing_pool_is_an_error_and_a_pool_we_did_not_create_is_never_deleted(backend, batch_env):
    batch_env.route("POST", "/pools", SOMEONE_ELSES_POOL)
    with pytest.raises(RuntimeError, match="Batch pool team-pool exists already"):
        backend.create_pool("team-pool", 1)
    backend.delete_pool("team-pool")
    assert "team-pool" not in batch_env.deleted_pools


def test_a_task_the_service_refuses_as_existing_fails_the_submission(backend, batch_env):
    backend.create_pool("pool-c", 1)
    with pytest.raises(RuntimeError, match="Batch job job-c refused tasks: t1: TaskExists"):
        backend.submit_job("pool-c", "job-c", [echo_task("t1"), echo_task("t1")], max_retries=0, timeout_s=60)


def test_tasks_go_in_collections_of_at_most_100(backend, batch_env):
    backend.create_pool("pool-b", 1)
    backend.submit_job("pool-b", "job-b", [echo_task(f"t{i:03d}") for i in range(250)], max_retries=0, timeout_s=60)
    assert batch_env.collection_sizes == [100, 100, 50]
    assert len(backend.task_statuses("job-b")) == 250


def test_keep_warm_pool_is_reused_and_never_deleted(batch_env):
    warm = AzureBatchBackend(
        storage_root=LAYOUT.root, worker_image=WORKER_IMAGE, keep_warm_pool="warm", pool_poll_s=0.2
    )
    warm.create_pool("warm", 1)
    warm.create_pool("warm", 1)  # the next run: reused, no PoolExists
    warm.delete_pool("warm")
    assert list(batch_env.pools_created) == ["warm"] and not batch_env.deleted_pools


def test_autoscale_formula_replaces_the_fixed_size(batch_env):
    formula = "$TargetDedicatedNodes = min(4, $PendingTasks.GetSample(1));"
    scaled = AzureBatchBackend(
        storage_root=LAYOUT.root, worker_image=WORKER_IMAGE, autoscale_formula=formula, pool_poll_s=0.2
    )
    scaled.create_pool("scaled", 4)
    body = batch_env.pools_created["scaled"]
    assert body["enableAutoScale"] is True and body["autoScaleFormula"] == formula
    assert "targetDedicatedNodes" not in body


def test_a_pool_left_by_an_earlier_try_of_the_run_is_adopted(backend, batch_env):
    backend.create_pool("pool-r", 1)
    backend.create_pool("pool-r", 1)  # the run cleared after its orchestrator died: no PoolExists
    assert list(batch_env.pools_created) == ["pool-r"] and not batch_env.deleted_pools


def test_our_pools_past_their_lifetime_are_deleted_by_the_next_run_and_no_one_elses(backend, batch_env):
    orphaned = AzureBatchBackend(
        storage_root=LAYOUT.root, worker_image=WORKER_IMAGE, pool_lifetime_s=-60, pool_poll_s=0.2
    )
    orphaned.create_pool("pool-orphaned", 1)  # its Airflow died before teardown
    batch_env.route("POST", "/pools", SOMEONE_ELSES_POOL)
    backend.create_pool("pool-next", 1)
    assert batch_env.deleted_pools == ["pool-orphaned"]
    expires_at = {m["name"]: m["value"] for m in batch_env.pools_created["pool-next"]["metadata"]}["expires_at"]
    assert timedelta(hours=5, minutes=59) < datetime.fromisoformat(expires_at) - datetime.now(UTC) <= timedelta(hours=6)


def test_an_r_script_package_runs_on_batch_with_blob_storage(batch_env):
    """The committed ranger package (its own R code, files verified from blob storage by the task)."""
    connect_storage()
    upload_package(RANGER, LAYOUT)
    dag_run = run_dag(LATEST_WEEK, {**TWO_PRODUCTS, "model_version": "ranger-qrf-v1"})
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    for product in (1, 2):
        forecast = read_forecast(LAYOUT.forecast_file(run_id, product))
        assert len(forecast) == 66 * 13 and (forecast["model_version"] == "ranger-qrf-v1").all()
    assert json.loads(read_blob(LAYOUT.validation_report(run_id)))["valid"]
    assert "model package ranger-qrf-v1 (r-script) loaded" in read_blob(
        LAYOUT.task_log(run_id, "partition_000", "stdout")
    )


def test_a_scenario_runs_on_batch_with_blob_storage_each_task_writing_only_its_shards(batch_env, tmp_path):
    """The churn scenario's DAG on the azure_batch backend: hive Parquet read from blob storage,
    each task granted exactly its shards' outputs, summary and progress, the result published."""
    connect_storage()
    scenario = Scenario.from_json(CHURN_SCENARIO.read_bytes(), str(CHURN_SCENARIO))
    write_by_state(snapshot_customers(load_mlc_churn(), 600, CHURN_SNAPSHOT), churn_url(LAYOUT.root), 100)
    storage.write_bytes_atomic(f"{churn_url(LAYOUT.root)}/_READY", b"")
    upload_package(seal(scenario, train_glm(tmp_path / "glm-churn-v1"), "glm-churn-v1"), LAYOUT)
    logical = datetime(2026, 12, 1, tzinfo=UTC)
    dag_run = load_dag("scenario_customer_churn").test(
        logical_date=logical, run_after=logical, run_conf={"pool_size": 2, "compute_backend": "azure_batch"}
    )
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    assert json.loads(read_blob(LAYOUT.scenario_current("customer_churn")))["rows"] == 600
    manifest = json.loads(read_blob(LAYOUT.run_manifest(run_id)))
    shards = manifest["partitions"]["partition_000"]
    grants = json.loads(batch_env.task_files["partition_000"]["write_grants.json"])
    assert set(grants) == set(LAYOUT.scenario_task_writes(run_id, "partition_000", shards))


def test_a_backtest_on_batch_calibrates_a_weekly_run_on_batch(batch_env, tmp_path):
    """A calibrated run's tasks also write the package's own output: granted, so the run passes."""
    connect_storage()
    naive_package(LAYOUT, tmp_path, manifest_change=lambda m: m.update(training_data={"weeks": [0, 60]}))
    now = datetime.now(UTC)
    backtest = load_dag("backtest_model_package").test(
        logical_date=now,
        run_after=now,
        run_conf={"model_versions": NAIVE_VERSION, "origins": [62, 66], **TWO_PRODUCTS, "products": "1"},
    )
    assert backtest.state == "success"
    (backtest_id,) = storage.list_names(LAYOUT.backtests_dir())
    weekly = {**TWO_PRODUCTS, "model_version": NAIVE_VERSION, "calibration": f"{backtest_id}:{NAIVE_VERSION}"}
    dag_run = run_dag(LATEST_WEEK, weekly)
    assert dag_run.state == "success"
    run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
    for product in (1, 2):
        model_output = read_forecast(LAYOUT.model_output_file(run_id, product))
        assert not model_output.equals(read_forecast(LAYOUT.forecast_file(run_id, product))), "calibrated"
    assert json.loads(read_blob(LAYOUT.validation_report(run_id)))["valid"]


def test_at_most_five_jobs_hold_write_grants_on_a_container_and_expired_ones_make_room(azurite):
    """Azure allows 5 stored access policies per container: a sixth job is refused saying so;
    policies of ours past their expiry (a run whose Airflow died) are dropped first."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container("grants")
    policies = ContainerPolicies(container)
    now = datetime.now(UTC)
    for job in range(4):
        policies.add(write_policy_id(f"live-{job}"), now, now + timedelta(hours=1))
    policies.add(write_policy_id("gone"), now - timedelta(hours=2), now - timedelta(hours=1))
    policies.add(write_policy_id("fifth"), now, now + timedelta(hours=1))  # the expired one made room
    held = {identifier.id for identifier in container.get_container_access_policy()["signed_identifiers"]}
    assert write_policy_id("gone") not in held and len(held) == 5
    with pytest.raises(RuntimeError, match="at most 5 scoring jobs can hold write grants at once"):
        policies.add(write_policy_id("sixth"), now, now + timedelta(hours=1))
    policies.revoke(write_policy_id("live-0"))
    policies.add(write_policy_id("sixth"), now, now + timedelta(hours=1))


def scoring_task(partition: str, products: range) -> ScoringTask:
    writes = LAYOUT.scoring_task_writes("run-big", partition, list(products), calibrated=True)
    logs = [f"{LAYOUT.root}/logs/{partition}.{stream}" for stream in ("out", "err")]
    return ScoringTask(partition, ["--help"], *logs, writes=writes)


def test_a_job_of_500_partitions_of_200_products_is_submitted_within_the_service_limits(backend, batch_env):
    """The 100,000-product run: every add-task collection under 1 MB and 100 tasks, whatever a
    partition holds, since each task's grants are one resource file's URL."""
    tasks = [scoring_task(f"partition_{i:03d}", range(i * 200 + 1, i * 200 + 201)) for i in range(500)]
    backend.submit_job("no-nodes-yet", "job-big", tasks, max_retries=0, timeout_s=60)
    assert batch_env.collection_sizes == [100] * 5
    assert max(batch_env.collection_bytes) < 300_000, batch_env.collection_bytes
    added = batch_env.tasks_added["partition_499"]
    grants = json.loads(BlobClient.from_blob_url(added["resourceFiles"][0]["httpUrl"]).download_blob().readall())
    assert set(grants) == set(tasks[499].writes) and len(grants) == 2 * 200 + 2
    assert backend.open_job_ids() == ["job-big"]
    backend.end_job("job-big")
    assert backend.open_job_ids() == [], "an ended job is followed by no later try"


def test_the_endpoint_refuses_what_the_service_refuses(backend, batch_env):
    """Over 1 MB in one collection: RequestBodyTooLarge; a node cannot start a process with one
    argument or environment string over 128 KiB (E2BIG)."""
    backend.create_pool("pool-l", 1)
    heavy = [ScoringTask(f"t{i}", ["x" * 140_000], "abfs://forecasts/o", "abfs://forecasts/e") for i in range(8)]
    with pytest.raises(ComputeError, match="413 RequestBodyTooLarge"):
        backend.submit_job("pool-l", "job-heavy", heavy, max_retries=0, timeout_s=60)
    backend.submit_job("pool-l", "job-long", heavy[:1], max_retries=0, timeout_s=60)
    deadline = time.monotonic() + 30
    while (status := backend.task_statuses("job-long")[0]).state != "failed" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status.detail.startswith("ProcessStartFailed: E2BIG")


def test_a_throttled_or_busy_service_is_retried_after_its_retry_after(backend, batch_env):
    batch_env.faults.refusals = [(429, "TooManyRequests"), (503, "ServerBusy")]
    started = time.monotonic()
    backend.create_pool("pool-t", 1)  # its first request, the pool listing (a GET), is refused twice
    assert "pool-t" in batch_env.pools_created and time.monotonic() - started >= 2 * batch_env.faults.retry_after_s
    # the job's creation, a POST, throttled without Retry-After: azure-core alone would not retry it
    batch_env.faults.refusals, batch_env.faults.retry_after_s = [(429, "TooManyRequests")], None
    backend.submit_job("pool-t", "job-t", [echo_task("t1")], max_retries=0, timeout_s=60)
    assert "job-t" in batch_env.jobs and not batch_env.faults.refusals
    busy = AzureBatchBackend(storage_root=LAYOUT.root, worker_image=WORKER_IMAGE, retry_deadline_s=2)
    batch_env.faults.refusals = [(503, "ServerBusy")] * 100
    with pytest.raises(ComputeError, match="Azure Batch, listing jobs: no answer within the retries' deadline"):
        busy.job_ids()
    batch_env.faults.refusals = []
    batch_env.faults.job_quota_reached = True
    with pytest.raises(ComputeError, match=r"(?s)409 ActiveJobAndScheduleQuotaReached: .*ask Azure for a higher quota"):
        backend.submit_job("pool-t", "job-q", [echo_task("t1")], max_retries=0, timeout_s=60)


def test_an_autoscaled_pool_starts_from_zero_nodes_and_grows_on_pending_tasks(batch_env):
    formula = "pending = $PendingTasks.GetSample(1); $TargetDedicatedNodes = pending > 0 ? min(2, pending) : 0;"
    scaled = AzureBatchBackend(
        storage_root=LAYOUT.root, worker_image=WORKER_IMAGE, autoscale_formula=formula, node_wait_timeout_s=30
    )
    started = time.monotonic()
    scaled.create_pool("scaled-zero", 2)  # returns before any node: none comes until tasks are pending
    assert time.monotonic() - started < 5 and batch_env.pools["scaled-zero"]["currentDedicatedNodes"] == 0
    scaled.submit_job("scaled-zero", "job-z", [echo_task("t1")], max_retries=0, timeout_s=60)
    deadline = time.monotonic() + 30
    while not (statuses := scaled.task_statuses("job-z"))[0].is_final and time.monotonic() < deadline:
        time.sleep(0.2)
    assert statuses[0].state == "succeeded"
    never = AzureBatchBackend(
        storage_root=LAYOUT.root, worker_image=WORKER_IMAGE, autoscale_formula="$TargetDedicatedNodes = 0;",
        node_wait_timeout_s=1,
    )  # fmt: skip
    never.create_pool("scaled-never", 2)
    never.submit_job("scaled-never", "job-n", [echo_task("t1")], max_retries=0, timeout_s=60)
    time.sleep(1.5)
    with pytest.raises(ComputeError, match=r"Batch pool scaled-never has no node \d+ s after job job-n was submitted"):
        never.task_statuses("job-n")


def test_pools_join_a_subnet_without_public_ips_and_pull_through_an_identity(batch_env):
    settings = ForecastSettings(
        storage_root=LAYOUT.root,
        worker_image="myacr.azurecr.io/worker:1",
        batch_image="canonical:ubuntu-24_04-lts:server:latest",
        batch_node_agent_sku="batch.node.ubuntu 24.04",
        batch_subnet_id="/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/n",
        batch_node_public_ips=False,
    )
    node = {"vm_size": "Standard_D2s_v3", "spot_nodes": 0, "task_slots_per_node": 1}
    AzureBatchBackend(**backend_for_run("azure_batch", settings, node).config()).create_pool("pool-net", 1)
    body = batch_env.pools_created["pool-net"]
    assert body["virtualMachineConfiguration"]["imageReference"]["offer"] == "ubuntu-24_04-lts"
    assert body["virtualMachineConfiguration"]["nodeAgentSKUId"] == "batch.node.ubuntu 24.04"
    assert body["networkConfiguration"] == {
        "subnetId": settings.batch_subnet_id,
        "publicIPAddressConfiguration": {"provision": "nopublicipaddresses"},
    }
    with pytest.raises(ComputeError, match="needs a virtual network"):
        backend_for_run("azure_batch", replace(settings, batch_subnet_id=""), node)
    with pytest.raises(ComputeError, match="needs a keep-warm pool"):
        backend_for_run("azure_batch", replace(settings, registry_identity="/identities/acr-pull"), node)
    warm = replace(settings, registry_identity="/identities/acr-pull", keep_warm_pool="warm")
    AzureBatchBackend(**backend_for_run("azure_batch", warm, node).config()).submit_job(
        "warm", "job-w", [echo_task("t1")], max_retries=0, timeout_s=60
    )
    registry = batch_env.tasks_added["t1"]["containerSettings"]["registry"]
    assert registry == {
        "registryServer": "myacr.azurecr.io",
        "identityReference": {"resourceId": "/identities/acr-pull"},
    }
