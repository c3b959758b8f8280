"""Azure Batch: a pool of container-ready VMs, one job per DAG-run try, one task per partition.

The client is the provider's AzureBatchHook (credentials from the `azure_batch` connection). We
call the `azure-batch` SDK ourselves where the provider's AzureBatchOperator falls short: it runs
one task per operator, silently reuses an existing pool/job/task, judges failure over the whole
job, waits for nodes without a timeout, skips cleanup on timeout or kill, and builds pools without
a container configuration. Here an existing job id is an error, tasks go in collections of at most
100 and any task the service did not accept (even "TaskExists", which the SDK's create_tasks
counts as success) fails the submission, the wait for nodes has a deadline, and pools carry a
container configuration that pre-fetches the worker image.

A task definition stays the same size whatever its partition holds: its write grants (one SAS per
blob it writes) wait in a blob of their own that Batch downloads into the task's working directory
as a resource file, read through a SAS for that one blob, so an add-task collection of 100 tasks
stays far under the service's 1 MB and no environment string nears Linux's 128 KiB.
"""

import logging
import shlex
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from airflow.providers.microsoft.azure.hooks.batch import AzureBatchHook
from azure.batch import BatchClient
from azure.batch import models as batch
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.policies import RetryPolicy

from retail_scoring.storage import WRITE_GRANTS_FILE_VARIABLE
from scoring_airflow.blob import (
    CLOCK_SKEW,
    GrantSigner,
    container_of,
    jobs_holding_grants,
    path_in_container,
    revoke_write_grants,
)
from scoring_airflow.compute.base import ComputeBackend, ComputeError, ScoringTask, TaskStatus
from scoring_airflow.settings import DEFAULT_BATCH_IMAGE, DEFAULT_NODE_AGENT_SKU, ForecastSettings, image_reference

log = logging.getLogger(__name__)

MAX_TASKS_PER_COLLECTION = 100  # the Batch API's limit per addtaskcollection request
CREATED_BY = "weekly_sales_forecast"  # pool metadata: pools without it are never deleted by us
EXPIRES_AT = "expires_at"  # pool metadata: after this, the next run's create_pool deletes the pool
POOL_POLL_S = 5.0
GRANTS_FILE = "write_grants.json"  # each task's resource file: the blobs it may write, with their SAS
GRANT_UPLOADERS = 16  # parallel uploads of a job's grants files, one per task
# What to do when the account's quota refuses (error codes of the Batch REST API and pool resize errors).
QUOTA_ADVICE = {
    "ActiveJobAndScheduleQuotaReached": "the Batch account's quota of active jobs is reached: ask Azure for a "
    "higher quota (Batch account > Quotas), or bound the runs that score at once (max_active_runs)",
    "PoolQuotaReached": "the Batch account's pool quota is reached: ask Azure for a higher quota (Batch account > "
    "Quotas), or run fewer DAG runs at once (each holds a pool; max_active_runs, a backfill's max active runs)",
    "AccountCoreQuotaReached": "the Batch account's dedicated core quota is reached: ask Azure for more cores "
    "(Batch account > Quotas), or use fewer nodes (pool_size, spot_nodes)",
    "AccountLowPriorityCoreQuotaReached": "the Batch account's spot core quota is reached: ask Azure for more spot "
    "cores (Batch account > Quotas), or use fewer spot_nodes",
    "AccountVMSeriesCoreQuotaReached": "the Batch account's core quota for this VM series is reached: ask Azure for "
    "more (Batch account > Quotas), or choose another vm_size",
}


def _metadata(item: batch.BatchPool | batch.BatchJob) -> dict[str, str]:
    return {entry.name: entry.value for entry in item.metadata or []}


def _created_by_us(pool: batch.BatchPool) -> bool:
    return _metadata(pool).get("created_by") == CREATED_BY


def _nodes(pool: batch.BatchPool) -> int:
    return (pool.current_dedicated_nodes or 0) + (pool.current_low_priority_nodes or 0)


def _service_words(error: HttpResponseError) -> str:
    code = error.error.code if error.error else None
    words = f"{error.status_code} {code or error.reason}: {error.message}"
    advice = QUOTA_ADVICE.get(code or "")
    return f"{words}; {advice}" if advice else words


@contextmanager
def service_errors(doing: str) -> Iterator[None]:
    """What the service refused, or kept refusing past the retries' deadline, as a ComputeError in
    its own words (and for a quota, what to raise)."""
    try:
        yield
    except HttpResponseError as error:
        raise ComputeError(f"Azure Batch, {doing}: {_service_words(error)}") from error
    except AzureError as error:  # the retry deadline passed, or the service could not be reached
        raise ComputeError(f"Azure Batch, {doing}: no answer within the retries' deadline ({error})") from error


class BatchRetryPolicy(RetryPolicy):
    """azure-core's retry policy (exponential backoff, Retry-After honoured) with a 429 retried for
    every method: azure-core retries a throttled POST (pool, job and task creation) only when the
    answer carries Retry-After, but the service processed nothing it throttled either way. The
    policy's `timeout` is the deadline of a call, its retries included."""

    def _is_method_retryable(self, settings, request, response=None) -> bool:
        if response is not None and response.status_code == 429:
            return True
        return super()._is_method_retryable(settings, request, response)


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
    image_reference: dict = field(default_factory=lambda: image_reference(DEFAULT_BATCH_IMAGE))
    node_agent_sku_id: str = DEFAULT_NODE_AGENT_SKU
    subnet_id: str = ""
    node_public_ips: bool = True
    registry_conn_id: str = ""
    registry_identity: str = ""
    pool_poll_s: float = POOL_POLL_S
    pool_lifetime_s: int = 6 * 3600
    retry_deadline_s: float = 300

    @classmethod
    def for_run(cls, settings: ForecastSettings, node_settings: dict) -> "AzureBatchBackend":
        if not settings.storage_root.startswith("abfs://"):
            raise ComputeError(f"azure_batch needs blob storage (abfs://...), got {settings.storage_root}")
        if not settings.batch_node_public_ips and not settings.batch_subnet_id:
            raise ComputeError(
                "FORECAST_BATCH_NODE_PUBLIC_IPS=false needs a virtual network: nodes without public IP addresses "
                "reach Batch and storage through a subnet (FORECAST_BATCH_SUBNET_ID)"
            )
        if settings.registry_identity and not settings.keep_warm_pool:
            raise ComputeError(
                "FORECAST_REGISTRY_IDENTITY needs a keep-warm pool (FORECAST_KEEP_WARM_POOL): a pool with a managed "
                "identity can only be created through Azure Resource Manager, not the Batch API this backend "
                "creates pools with; create the pool with the identity outside Airflow and name it there"
            )
        if settings.registry_identity and settings.registry_conn_id:
            raise ComputeError("set FORECAST_REGISTRY_CONN_ID or FORECAST_REGISTRY_IDENTITY, not both")
        return cls(
            storage_root=settings.storage_root,
            worker_image=settings.worker_image,
            batch_conn_id=settings.batch_conn_id,
            wasb_conn_id=settings.wasb_conn_id or "wasb_default",
            autoscale_formula=settings.autoscale_formula,
            keep_warm_pool=settings.keep_warm_pool,
            node_wait_timeout_s=settings.node_wait_timeout_s,
            image_reference=image_reference(settings.batch_image),
            node_agent_sku_id=settings.batch_node_agent_sku,
            subnet_id=settings.batch_subnet_id,
            node_public_ips=settings.batch_node_public_ips,
            registry_conn_id=settings.registry_conn_id,
            registry_identity=settings.registry_identity,
            pool_lifetime_s=settings.pool_lifetime_s,
            pool_poll_s=settings.poll_interval_s,
            retry_deadline_s=settings.batch_retry_deadline_s,
            **node_settings,
        )

    def config(self) -> dict:
        return asdict(self)

    def task_slots(self, pool_size: int, settings: ForecastSettings) -> int:
        """Refused when a node gets more task slots than its VM size has cores or memory."""
        shape = settings.vm_sizes.get(self.vm_size)
        slots = self.task_slots_per_node
        if shape is None:
            log.warning("VM size %s is not in FORECAST_VM_SIZES: its task slots per node are not checked", self.vm_size)
        elif slots > shape["cores"] or slots * settings.worker_memory_mb > shape["memory_gb"] * 1024:
            raise ComputeError(
                f"task_slots_per_node {slots} is more scoring tasks than a {self.vm_size} node can run at once "
                f"({shape['cores']} cores, {shape['memory_gb']} GB memory at {settings.worker_memory_mb} MB per "
                "task); use fewer slots or a larger VM size"
            )
        return pool_size * slots

    def engine_threads(self, pool_size: int, settings: ForecastSettings) -> int:
        """1 where the VM size is unknown."""
        shape = settings.vm_sizes.get(self.vm_size)
        return max(1, shape["cores"] // self.task_slots_per_node) if shape else 1

    @cached_property
    def client(self) -> BatchClient:
        """The provider hook's client, rebuilt with our retry policy (the hook takes no client
        options): its endpoint and credential, so credentials stay the connection's."""
        hooked = AzureBatchHook(azure_batch_conn_id=self.batch_conn_id).get_conn()
        retries = BatchRetryPolicy(retry_total=20, retry_status=20, retry_backoff_max=60, timeout=self.retry_deadline_s)
        return BatchClient(endpoint=hooked._config.endpoint, credential=hooked._config.credential, retry_policy=retries)

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
            with service_errors(f"creating pool {pool_id}"):
                try:
                    self.client.create_pool(self._pool_options(pool_id, size))
                except ResourceExistsError as error:
                    raise ComputeError(f"Batch pool {pool_id} exists already; not reused ({error.message})") from error
            log.info("Batch pool %s requested: %s", pool_id, self._describe_nodes(size))
        if self.autoscale_formula:
            log.info(
                "Batch pool %s scales by its formula: tasks go in before its nodes (a formula of pending tasks "
                "starts at zero), and the node deadline (%d s) counts from the job's submission",
                pool_id,
                self.node_wait_timeout_s,
            )
            return
        try:
            self._wait_for_nodes(pool_id)
        except BaseException:  # Airflow runs no teardown for a failed setup: clean up here
            self.delete_pool(pool_id)
            raise

    def _delete_expired_pools(self) -> None:
        now = datetime.now(UTC)
        with service_errors("listing pools"):
            pools = list(self.client.list_pools())
        for pool in pools:
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
        registry = self.registry
        return batch.BatchPoolCreateOptions(
            id=pool_id,
            vm_size=self.vm_size,
            virtual_machine_configuration=batch.VirtualMachineConfiguration(
                image_reference=batch.BatchVmImageReference(**self.image_reference),
                node_agent_sku_id=self.node_agent_sku_id,
                container_configuration=batch.BatchContainerConfiguration(
                    type="dockerCompatible",
                    container_image_names=[self.worker_image],
                    container_registries=[registry] if registry else None,
                ),
            ),
            network_configuration=self._network(),
            task_slots_per_node=self.task_slots_per_node,
            resize_timeout=timedelta(seconds=self.node_wait_timeout_s),
            metadata=[
                batch.BatchMetadataItem(name="created_by", value=CREATED_BY),
                batch.BatchMetadataItem(name=EXPIRES_AT, value=expires_at.isoformat()),
            ],
            **scaling,
        )

    def _network(self) -> batch.NetworkConfiguration | None:
        """The pool's subnet, and no public IP addresses when so set (its nodes then reach Batch and
        storage through the virtual network: simplified node communication, the only mode of the
        Batch API this SDK speaks)."""
        if not self.subnet_id:
            return None
        public_ips = None
        if not self.node_public_ips:
            public_ips = batch.BatchPublicIpAddressConfiguration(ip_address_provisioning_type="nopublicipaddresses")
        return batch.NetworkConfiguration(subnet_id=self.subnet_id, public_ip_address_configuration=public_ips)

    @cached_property
    def registry(self) -> batch.ContainerRegistryReference | None:
        """The worker image's private registry: through a connection's token or service principal,
        or through a managed identity of a pool made outside Airflow. None for a public image."""
        if self.registry_identity:
            return batch.ContainerRegistryReference(
                registry_server=self.worker_image.split("/", 1)[0],
                identity_reference=batch.BatchNodeIdentityReference(resource_id=self.registry_identity),
            )
        if not self.registry_conn_id:
            return None
        registry = AzureBatchHook.get_connection(self.registry_conn_id)
        return batch.ContainerRegistryReference(
            registry_server=registry.host, username=registry.login, password=registry.password
        )

    def _describe_nodes(self, size: int) -> str:
        if self.autoscale_formula:
            return "autoscale formula"
        spot = min(self.spot_nodes, size)
        return f"{size - spot} dedicated + {spot} spot {self.vm_size} node(s)"

    def _pool_or_none(self, pool_id: str) -> batch.BatchPool | None:
        with service_errors(f"reading pool {pool_id}"):
            try:
                return self.client.get_pool(pool_id)
            except ResourceNotFoundError:
                return None

    @staticmethod
    def _resize_problem(pool: batch.BatchPool) -> str | None:
        if not pool.resize_errors:
            return None
        return "could not get its nodes: " + "; ".join(
            f"{e.code}: {e.message}" + (f"; {QUOTA_ADVICE[e.code]}" if e.code in QUOTA_ADVICE else "")
            for e in pool.resize_errors
        )

    def _wait_for_nodes(self, pool_id: str) -> None:
        """Until the pool's allocation is steady with nodes; resize errors and the deadline fail
        with the service's own words."""
        deadline = time.monotonic() + self.node_wait_timeout_s
        while True:
            pool = self._existing_pool(pool_id)
            nodes = _nodes(pool)
            allocation = getattr(pool.allocation_state, "value", pool.allocation_state)
            problem = self._resize_problem(pool)
            if problem is None and allocation == "steady" and nodes > 0:
                log.info("Batch pool %s ready: %d node(s)", pool_id, nodes)
                return
            if problem is None and time.monotonic() > deadline:
                timeout = self.node_wait_timeout_s
                problem = f"has {nodes} node(s) after {timeout} s (allocation {allocation}); giving up"
            if problem:
                raise ComputeError(f"Batch pool {pool_id} {problem}")
            time.sleep(self.pool_poll_s)

    def _existing_pool(self, pool_id: str) -> batch.BatchPool:
        pool = self._pool_or_none(pool_id)
        if pool is None:
            raise ComputeError(f"Batch pool {pool_id} not found (was it deleted?)")
        return pool

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
        with service_errors(f"deleting pool {pool_id}"):
            self.client.begin_delete_pool(pool_id)  # deletion goes on in the service; no need to wait
        log.info("Batch pool %s deleted", pool_id)

    # jobs and tasks

    def submit_job(self, pool_id: str, job_id: str, tasks: list[ScoringTask], max_retries: int, timeout_s: int) -> None:
        # Batch limits a task's whole life, retries included, so the limit is per attempt x attempts;
        # the task's SAS tokens last that long (plus clock skew), not beyond.
        task_life = timedelta(seconds=timeout_s * (max_retries + 1))
        signer = GrantSigner(self.wasb_conn_id, container_of(self.storage_root), task_life + CLOCK_SKEW, job_id)
        with service_errors(f"creating job {job_id}"):
            try:
                self.client.create_job(
                    batch.BatchJobCreateOptions(
                        id=job_id,
                        pool_info=batch.BatchPoolInfo(pool_id=pool_id),
                        metadata=[batch.BatchMetadataItem(name="created_by", value=CREATED_BY)],
                    )
                )
            except ResourceExistsError as error:  # a 409, which a quota answers too
                if not error.error or error.error.code != "JobExists":
                    raise
                raise ComputeError(
                    f"Batch job {job_id} exists already; ids are never reused ({error.message})"
                ) from error
        with ThreadPoolExecutor(GRANT_UPLOADERS) as uploaders:
            grants = list(uploaders.map(lambda task: signer.grants_file_url(job_id, task.task_id, task.writes), tasks))
        read_access = signer.read_connection_string()
        options = [
            self._task_options(task, signer, read_access, grants_url, task_life, max_retries)
            for task, grants_url in zip(tasks, grants, strict=True)
        ]
        for start in range(0, len(options), MAX_TASKS_PER_COLLECTION):
            chunk = options[start : start + MAX_TASKS_PER_COLLECTION]
            with service_errors(f"adding tasks to job {job_id}"):
                result = self.client.create_task_collection(job_id, batch.BatchTaskGroup(task_values=chunk))
            rejected = [r for r in result.result_values or [] if r.status != "success"]
            if rejected:
                raise ComputeError(
                    f"Batch job {job_id} refused tasks: "
                    + "; ".join(f"{r.task_id}: {r.error.code if r.error else r.status}" for r in rejected)
                )
        log.info("Batch job %s: %d task(s) added", job_id, len(options))

    def _task_options(
        self, task: ScoringTask, signer: GrantSigner, read_access: str, grants_url: str, life: timedelta, retries: int
    ) -> batch.BatchTaskCreateOptions:
        """The same size for any partition: the grants are one resource file's URL."""
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
        # a keep-warm pool was made outside Airflow: its tasks name the registry themselves
        registry = self.registry if self.keep_warm_pool else None
        return batch.BatchTaskCreateOptions(
            id=task.task_id,
            command_line=shlex.join(task.arguments),  # arguments to the image's entrypoint, the worker CLI
            container_settings=batch.BatchTaskContainerSettings(image_name=self.worker_image, registry=registry),
            resource_files=[batch.ResourceFile(http_url=grants_url, file_path=GRANTS_FILE)],
            environment_settings=[
                batch.EnvironmentSetting(name="AZURE_STORAGE_CONNECTION_STRING", value=read_access),
                batch.EnvironmentSetting(name=WRITE_GRANTS_FILE_VARIABLE, value=GRANTS_FILE),
            ],
            output_files=uploads,
            constraints=batch.BatchTaskConstraints(max_wall_clock_time=life, max_task_retry_count=retries),
        )

    def task_statuses(self, job_id: str) -> list[TaskStatus]:
        with service_errors(f"reading the tasks of job {job_id}"):
            try:
                statuses = [self._status(task) for task in self.client.list_tasks(job_id)]
            except ResourceNotFoundError as error:
                raise ComputeError(f"Batch job {job_id} not found (was it deleted?): {error.message}") from error
        if self.autoscale_formula and not any(status.started_at for status in statuses):
            self._check_nodes_come(job_id, statuses)
        return statuses

    def _check_nodes_come(self, job_id: str, statuses: list[TaskStatus]) -> None:
        """An autoscaled pool gets its nodes after the tasks arrive: until a task starts, fail on a
        resize error, or when it still has no node `node_wait_timeout_s` after the job's tasks were
        submitted."""
        with service_errors(f"reading job {job_id}"):
            pool_id = self.client.get_job(job_id).pool_info.pool_id
        pool = self._existing_pool(pool_id)
        problem = self._resize_problem(pool)
        nodes = _nodes(pool)
        submitted = min((s.queued_at for s in statuses if s.queued_at), default=time.time())
        waited = time.time() - submitted
        if problem is None and nodes == 0 and waited > self.node_wait_timeout_s:
            problem = (
                f"has no node {waited:.0f} s after job {job_id} was submitted (autoscale formula; node deadline "
                f"{self.node_wait_timeout_s} s, FORECAST_NODE_WAIT_TIMEOUT_S): does the formula scale on pending tasks?"
            )
        if problem:
            raise ComputeError(f"Batch pool {pool_id} {problem}")

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
        """Revoke the grants and delete their files: the job no longer counts as open."""
        revoke_write_grants(self.wasb_conn_id, container_of(self.storage_root), job_id)
        log.info("Batch job %s ended: its tasks' write grants are revoked", job_id)

    def delete_job(self, job_id: str) -> None:
        self.end_job(job_id)
        with service_errors(f"deleting job {job_id}"):
            try:
                self.client.begin_delete_job(job_id)
                log.info("Batch job %s deleted", job_id)
            except ResourceNotFoundError:
                pass

    def job_ids(self) -> list[str]:
        with service_errors("listing jobs"):
            return [job.id for job in self.client.list_jobs()]

    def open_job_ids(self) -> list[str]:
        """Active jobs whose grants files are still there (end_job deletes them). Not the job's
        state: azure-batch 15.1's terminate_job fails to serialize a request without options."""
        with service_errors("listing jobs"):
            active = [job.id for job in self.client.list_jobs() if job.state == "active"]
        holding = jobs_holding_grants(self.wasb_conn_id, container_of(self.storage_root))
        return [job for job in active if job in holding]
