"""Azure Batch: a pool of container-ready VMs, one job per DAG-run try, one task per partition.

The client is the provider's AzureBatchHook (credentials from the `azure_batch` connection). We
call the `azure-batch` SDK ourselves where the provider's AzureBatchOperator falls short: it runs
one task per operator, silently reuses an existing pool/job/task, judges failure over the whole
job, waits for nodes without a timeout, skips cleanup on timeout or kill, and builds pools without
a container configuration. Here an existing job id is an error, tasks go in collections of at most
100 and any task the service did not accept (even "TaskExists", which the SDK's create_tasks
counts as success) fails the submission, the wait for nodes has a deadline, and pools carry a
container configuration that pre-fetches the worker image.
"""

import json
import logging
import shlex
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from airflow.providers.microsoft.azure.hooks.batch import AzureBatchHook
from azure.batch import BatchClient
from azure.batch import models as batch
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from retail_scoring.storage import WRITE_GRANTS_VARIABLE
from scoring_airflow.blob import CLOCK_SKEW, GrantSigner, container_of, path_in_container, revoke_write_grants
from scoring_airflow.compute.base import ComputeBackend, ScoringTask, TaskStatus
from scoring_airflow.settings import ForecastSettings

log = logging.getLogger(__name__)

MAX_TASKS_PER_COLLECTION = 100  # the Batch API's limit per addtaskcollection request
CREATED_BY = "weekly_sales_forecast"  # pool metadata: pools without it are never deleted by us
EXPIRES_AT = "expires_at"  # pool metadata: after this, the next run's create_pool deletes the pool
POOL_POLL_S = 5.0


def _metadata(item: batch.BatchPool | batch.BatchJob) -> dict[str, str]:
    return {entry.name: entry.value for entry in item.metadata or []}


def _created_by_us(pool: batch.BatchPool) -> bool:
    return _metadata(pool).get("created_by") == CREATED_BY


def default_image_reference() -> dict:
    """Ubuntu 22.04 HPC: Docker (moby) preinstalled, as Batch container pools need."""
    return {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "version": "latest"}


@dataclass
class AzureBatchBackend(ComputeBackend):
    """Ids and settings only (JSON-safe, so the triggerer can rebuild it); credentials are read
    from the Airflow connections when the client is first needed."""

    storage_root: str
    worker_image: str
    batch_conn_id: str = "azure_batch_default"
    wasb_conn_id: str = "wasb_default"
    vm_size: str = "Standard_D2s_v3"
    spot_nodes: int = 0
    task_slots_per_node: int = 1
    autoscale_formula: str = ""
    keep_warm_pool: str = ""
    node_wait_timeout_s: int = 1800
    image_reference: dict = field(default_factory=default_image_reference)
    node_agent_sku_id: str = "batch.node.ubuntu 22.04"
    registry_conn_id: str = ""
    pool_poll_s: float = POOL_POLL_S
    pool_lifetime_s: int = 6 * 3600

    @classmethod
    def from_settings(cls, settings: ForecastSettings, node_settings: dict) -> "AzureBatchBackend":
        """The backend a run plans with: the settings' ids and limits, the run's node params."""
        return cls(
            storage_root=settings.storage_root,
            worker_image=settings.worker_image,
            batch_conn_id=settings.batch_conn_id,
            wasb_conn_id=settings.wasb_conn_id or "wasb_default",
            registry_conn_id=settings.registry_conn_id,
            autoscale_formula=settings.autoscale_formula,
            keep_warm_pool=settings.keep_warm_pool,
            node_wait_timeout_s=settings.node_wait_timeout_s,
            pool_lifetime_s=settings.pool_lifetime_s,
            pool_poll_s=settings.poll_interval_s,
            **node_settings,
        )

    def config(self) -> dict:
        return asdict(self)

    @cached_property
    def client(self) -> BatchClient:
        return AzureBatchHook(azure_batch_conn_id=self.batch_conn_id).get_conn()

    # pools

    def create_pool(self, pool_id: str, size: int) -> None:
        """Create the run's pool, or adopt the one an earlier try of the same run left (pool ids are
        per run); a pool of that id that this pipeline did not create is an error. Pools of ours
        past their lifetime (their run's Airflow gone) are deleted first."""
        self._delete_expired_pools()
        existing = self._pool_or_none(pool_id)
        if existing is not None and pool_id == self.keep_warm_pool:
            log.info("keep-warm pool %s exists; reusing it", pool_id)
        elif existing is not None and _created_by_us(existing):
            log.info("Batch pool %s exists from an earlier try of this run; adopting it", pool_id)
        else:
            try:
                self.client.create_pool(self._pool_options(pool_id, size))
            except ResourceExistsError as error:
                raise RuntimeError(f"Batch pool {pool_id} exists already; not reused ({error.message})") from error
            log.info("Batch pool %s requested: %s", pool_id, self._describe_nodes(size))
        try:
            self._wait_for_nodes(pool_id)
        except BaseException:  # Airflow runs no teardown for a failed setup: clean up here
            self.delete_pool(pool_id)
            raise

    def _delete_expired_pools(self) -> None:
        now = datetime.now(UTC)
        for pool in self.client.list_pools():
            expires_at = _metadata(pool).get(EXPIRES_AT)
            if _created_by_us(pool) and expires_at and datetime.fromisoformat(expires_at) < now:
                log.warning("Batch pool %s outlived its run (expired %s); deleting it", pool.id, expires_at)
                self.delete_pool(pool.id)

    def _pool_options(self, pool_id: str, size: int) -> batch.BatchPoolCreateOptions:
        expires_at = datetime.now(UTC) + timedelta(seconds=self.pool_lifetime_s)
        spot = min(self.spot_nodes, size)
        scaling = (
            {
                "enable_auto_scale": True,
                "auto_scale_formula": self.autoscale_formula,
                "auto_scale_evaluation_interval": timedelta(minutes=5),
            }
            if self.autoscale_formula
            else {"target_dedicated_nodes": size - spot, "target_low_priority_nodes": spot}
        )
        return batch.BatchPoolCreateOptions(
            id=pool_id,
            vm_size=self.vm_size,
            virtual_machine_configuration=batch.VirtualMachineConfiguration(
                image_reference=batch.BatchVmImageReference(**self.image_reference),
                node_agent_sku_id=self.node_agent_sku_id,
                container_configuration=batch.BatchContainerConfiguration(
                    type="dockerCompatible",
                    container_image_names=[self.worker_image],
                    container_registries=self._registries(),
                ),
            ),
            task_slots_per_node=self.task_slots_per_node,
            resize_timeout=timedelta(seconds=self.node_wait_timeout_s),
            metadata=[
                batch.BatchMetadataItem(name="created_by", value=CREATED_BY),
                batch.BatchMetadataItem(name=EXPIRES_AT, value=expires_at.isoformat()),
            ],
            **scaling,
        )

    def _registries(self) -> list[batch.ContainerRegistryReference] | None:
        if not self.registry_conn_id:
            return None  # a public image, or a registry the pool reaches through its identity
        registry = AzureBatchHook.get_connection(self.registry_conn_id)
        return [
            batch.ContainerRegistryReference(
                registry_server=registry.host, username=registry.login, password=registry.password
            )
        ]

    def _describe_nodes(self, size: int) -> str:
        if self.autoscale_formula:
            return "autoscale formula"
        spot = min(self.spot_nodes, size)
        return f"{size - spot} dedicated + {spot} spot {self.vm_size} node(s)"

    def _pool_or_none(self, pool_id: str) -> batch.BatchPool | None:
        try:
            return self.client.get_pool(pool_id)
        except ResourceNotFoundError:
            return None

    def _wait_for_nodes(self, pool_id: str) -> None:
        """Until the pool's allocation is steady with nodes; resize errors and the deadline fail
        with the service's own words."""
        deadline = time.monotonic() + self.node_wait_timeout_s
        while True:
            pool = self.client.get_pool(pool_id)
            allocation = getattr(pool.allocation_state, "value", pool.allocation_state)
            nodes = (pool.current_dedicated_nodes or 0) + (pool.current_low_priority_nodes or 0)
            problem = None
            if pool.resize_errors:
                problem = "could not get its nodes: " + "; ".join(f"{e.code}: {e.message}" for e in pool.resize_errors)
            elif allocation == "steady" and nodes > 0:
                log.info("Batch pool %s ready: %d node(s)", pool_id, nodes)
                return
            elif time.monotonic() > deadline:
                timeout = self.node_wait_timeout_s
                problem = f"has {nodes} node(s) after {timeout} s (allocation {allocation}); giving up"
            if problem:
                raise RuntimeError(f"Batch pool {pool_id} {problem}")
            time.sleep(self.pool_poll_s)

    def delete_pool(self, pool_id: str) -> None:
        if pool_id == self.keep_warm_pool:
            log.info("Batch pool %s is kept warm; not deleted", pool_id)
            return
        pool = self._pool_or_none(pool_id)
        if pool is None:
            log.info("Batch pool %s is gone already", pool_id)
            return
        if not _created_by_us(pool):
            log.warning("Batch pool %s was not created by this pipeline; left alone", pool_id)
            return
        self.client.begin_delete_pool(pool_id)  # deletion goes on in the service; no need to wait
        log.info("Batch pool %s deleted", pool_id)

    # jobs and tasks

    def submit_job(self, pool_id: str, job_id: str, tasks: list[ScoringTask], max_retries: int, timeout_s: int) -> None:
        # Batch limits a task's whole life, retries included, so the limit is per attempt x attempts;
        # the task's SAS tokens last that long (plus clock skew), not beyond.
        task_life = timedelta(seconds=timeout_s * (max_retries + 1))
        signer = GrantSigner(self.wasb_conn_id, container_of(self.storage_root), task_life + CLOCK_SKEW, job_id)
        try:
            self.client.create_job(
                batch.BatchJobCreateOptions(
                    id=job_id,
                    pool_info=batch.BatchPoolInfo(pool_id=pool_id),
                    metadata=[batch.BatchMetadataItem(name="created_by", value=CREATED_BY)],
                )
            )
        except ResourceExistsError as error:
            raise RuntimeError(f"Batch job {job_id} exists already; ids are never reused ({error.message})") from error
        options = [self._task_options(task, signer, task_life, max_retries) for task in tasks]
        for start in range(0, len(options), MAX_TASKS_PER_COLLECTION):
            chunk = options[start : start + MAX_TASKS_PER_COLLECTION]
            result = self.client.create_task_collection(job_id, batch.BatchTaskGroup(task_values=chunk))
            rejected = [r for r in result.result_values or [] if r.status != "success"]
            if rejected:
                raise RuntimeError(
                    f"Batch job {job_id} refused tasks: "
                    + "; ".join(f"{r.task_id}: {r.error.code if r.error else r.status}" for r in rejected)
                )
        log.info("Batch job %s: %d task(s) added", job_id, len(options))

    def _task_options(
        self, task: ScoringTask, signer: GrantSigner, life: timedelta, max_retries: int
    ) -> batch.BatchTaskCreateOptions:
        grants = signer.task_grants(list(task.writes))
        uploads = [
            batch.OutputFile(
                file_pattern=f"../{stream}.txt",  # Batch writes the streams beside the working dir
                destination=batch.OutputFileDestination(
                    container=batch.OutputFileBlobContainerDestination(
                        container_url=signer.container_url_for_blob(url), path=path_in_container(url)
                    )
                ),
                upload_options=batch.OutputFileUploadConfiguration(upload_condition="taskcompletion"),
            )
            for stream, url in (("stdout", task.stdout_url), ("stderr", task.stderr_url))
        ]
        environment = {
            "AZURE_STORAGE_CONNECTION_STRING": grants.read_connection_string,
            WRITE_GRANTS_VARIABLE: json.dumps(grants.write_urls),
        }
        return batch.BatchTaskCreateOptions(
            id=task.task_id,
            command_line=shlex.join(task.arguments),  # arguments to the image's entrypoint, the worker CLI
            container_settings=batch.BatchTaskContainerSettings(image_name=self.worker_image),
            environment_settings=[batch.EnvironmentSetting(name=k, value=v) for k, v in environment.items()],
            output_files=uploads,
            constraints=batch.BatchTaskConstraints(max_wall_clock_time=life, max_task_retry_count=max_retries),
        )

    def task_statuses(self, job_id: str) -> list[TaskStatus]:
        try:
            return [self._status(task) for task in self.client.list_tasks(job_id)]
        except ResourceNotFoundError as error:
            raise RuntimeError(f"Batch job {job_id} not found (was it deleted?): {error.message}") from error

    @staticmethod
    def _status(task: batch.BatchTask) -> TaskStatus:
        info = task.execution_info
        state = {"active": "pending", "preparing": "pending", "running": "running"}.get(task.state)
        if state is None:  # completed
            state = "succeeded" if info and info.result == "success" else "failed"
        failure = info.failure_info if info else None
        return TaskStatus(
            task_id=task.id,
            state=state,
            exit_code=info.exit_code if info else None,
            attempts=(info.retry_count + 1) if info and info.start_time else 0,
            detail=f"{failure.code}: {failure.message}" if failure else "",
            queued_at=task.creation_time.timestamp() if task.creation_time else None,
            started_at=info.start_time.timestamp() if info and info.start_time else None,
            finished_at=info.end_time.timestamp() if info and info.end_time else None,
        )

    def end_job(self, job_id: str) -> None:
        revoke_write_grants(self.wasb_conn_id, container_of(self.storage_root), job_id)
        log.info("Batch job %s ended: its tasks' write grants are revoked", job_id)

    def delete_job(self, job_id: str) -> None:
        self.end_job(job_id)
        try:
            self.client.begin_delete_job(job_id)
            log.info("Batch job %s deleted", job_id)
        except ResourceNotFoundError:
            pass

    def job_ids(self) -> list[str]:
        return [job.id for job in self.client.list_jobs()]
