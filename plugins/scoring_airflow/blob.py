"""Azure Blob credentials the Airflow way: from a `wasb` connection, never from code or logs.

Airflow-side code reads and writes abfs:// URLs through adlfs configured from the connection (the
provider's own fsspec factory); scoring tasks on Batch nodes get short-lived SAS tokens, never the
account key: read access to the container, write access to exactly the blobs they produce, revoked
when their job ends.
"""

import hashlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import fsspec
import isodate
from airflow.providers.microsoft.azure.fs.adls import get_fs
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    AccessPolicy,
    BlobSasPermissions,
    ContainerClient,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

from scoring_airflow.settings import ForecastSettings

# A scoring task reads the container (data, models, its run manifest) and lists folders; it writes
# only the blobs it produces, each through a SAS for that one blob. Blob uploads commit whole, so a
# granted write needs no temporary blob and rename (which would need wider rights).
READ_PERMISSIONS = ContainerSasPermissions(read=True, list=True)
WRITE_PERMISSIONS = BlobSasPermissions(create=True, write=True)
CLOCK_SKEW = timedelta(minutes=5)
WRITE_POLICY_PREFIX = "forecast-job-"  # our stored access policies; others' are left alone
MAX_STORED_POLICIES = 5  # Azure Blob's limit per container
LEASE_ATTEMPTS = 60
GRANTS_CONTAINER_SUFFIX = "-grants"
GRANT_FILE_DELETERS = 16  # parallel deletes of a job's grants files (one per task) when it ends

log = logging.getLogger(__name__)


def container_of(url: str) -> str:
    """The container of an abfs://container/path URL."""
    if not url.startswith(("abfs://", "abfss://", "az://")):
        raise ValueError(f"{url}: not an Azure Blob URL (abfs://container/...)")
    return url.split("://", 1)[1].split("/", 1)[0]


def path_in_container(url: str) -> str:
    return url.split("://", 1)[1].partition("/")[2]


def use_connection_for_abfs(wasb_conn_id: str) -> None:
    """Make every abfs:// URL of this process use the account and credentials of the connection."""
    fsspec.config.conf["abfs"] = dict(get_fs(wasb_conn_id).storage_options)
    fsspec.get_filesystem_class("abfs").clear_instance_cache()


def grants_container_of(container: str) -> str:
    """The container where a job's write grants wait for Batch to fetch them: one of their own,
    beside the data's, which the tasks' read SAS (of the data's container) does not reach, so no
    task can read another's grants."""
    return f"{container[: 63 - len(GRANTS_CONTAINER_SUFFIX)].rstrip('-')}{GRANTS_CONTAINER_SUFFIX}"


def grants_file_path(job_id: str, task_id: str) -> str:
    return f"{job_id}/{task_id}.json"


def write_policy_id(job_id: str) -> str:
    """The container's stored access policy behind a job's write grants (ids: at most 64 chars)."""
    return f"{WRITE_POLICY_PREFIX}{hashlib.sha256(job_id.encode()).hexdigest()[:40]}"


class ContainerPolicies:
    """The container's stored access policies of our jobs' write grants: a grant names its job's
    policy, so deleting the policy when the job ends revokes every grant of the job at once (a
    SAS's own expiry cannot be shortened once issued). Changes hold a short container lease, so
    runs submitting or ending at once do not lose each other's policies."""

    def __init__(self, container: ContainerClient):
        self.container = container

    def _change(self, change: Callable[[dict[str, AccessPolicy]], dict[str, AccessPolicy]]) -> None:
        for _ in range(LEASE_ATTEMPTS):
            try:
                lease = self.container.acquire_lease(lease_duration=15)
            except ResourceExistsError:  # another run is changing them: a moment
                time.sleep(0.5)
                continue
            try:
                current = self.container.get_container_access_policy(lease=lease)
                policies = {identifier.id: identifier.access_policy for identifier in current["signed_identifiers"]}
                self.container.set_container_access_policy(
                    change(policies), public_access=current["public_access"], lease=lease
                )
                return
            finally:
                lease.release()
        raise RuntimeError(f"container {self.container.container_name}: its lease stays taken; try again")

    def add(self, policy_id: str, start: datetime, expiry: datetime) -> None:
        """A policy for a job's write grants, after dropping our jobs' policies past their expiry."""

        def added(policies: dict[str, AccessPolicy]) -> dict[str, AccessPolicy]:
            now = datetime.now(UTC)
            live = {
                i: p
                for i, p in policies.items()
                if not i.startswith(WRITE_POLICY_PREFIX) or isodate.parse_datetime(str(p.expiry)) > now
            }
            if len(live) >= MAX_STORED_POLICIES:
                raise RuntimeError(
                    f"container {self.container.container_name} has {len(live)} stored access policies, Azure's "
                    f"limit: at most {MAX_STORED_POLICIES} scoring jobs can hold write grants at once; wait for one "
                    "to end"
                )
            return {**live, policy_id: AccessPolicy(permission=str(WRITE_PERMISSIONS), start=start, expiry=expiry)}

        self._change(added)

    def revoke(self, policy_id: str) -> None:
        self._change(lambda policies: {i: p for i, p in policies.items() if i != policy_id})


class GrantSigner:
    """Signs SAS tokens for one container with the `wasb` connection's account key, or with a user
    delegation key when the connection authenticates through Entra ID (managed identity, service
    principal). Valid from a few minutes ago (clock skew) until `valid_for` from now. With an
    account key, write grants name the job's stored access policy (revoked when the job ends);
    user delegation SAS cannot name one, so those last until their expiry (a warning says so)."""

    def __init__(self, wasb_conn_id: str, container: str, valid_for: timedelta, job_id: str | None = None):
        self.service = WasbHook(wasb_conn_id=wasb_conn_id).get_conn()
        now = datetime.now(UTC)
        self.container = container
        self.account_name = self.service.account_name
        self.endpoint = self.service.url.rstrip("/")
        self.window = {"start": now - CLOCK_SKEW, "expiry": now + valid_for}
        account_key = getattr(self.service.credential, "account_key", None)
        self.signing = (
            {"account_key": account_key}
            if account_key
            else {
                "user_delegation_key": self.service.get_user_delegation_key(self.window["start"], self.window["expiry"])
            }
        )
        self.write_terms = {"permission": WRITE_PERMISSIONS, **self.window}
        if job_id and account_key:
            policy_id = write_policy_id(job_id)
            ContainerPolicies(self.service.get_container_client(container)).add(policy_id, **self.window)
            self.write_terms = {"policy_id": policy_id}
        elif job_id:
            log.warning(
                "write grants of job %s are user delegation SAS: they cannot be revoked when the job ends and "
                "last until %s",
                job_id,
                self.window["expiry"].isoformat(),
            )
        if job_id:  # the job's grants files go there (grants_file_url)
            try:
                self.service.create_container(grants_container_of(container))
            except ResourceExistsError:
                pass

    def read_connection_string(self) -> str:
        sas = generate_container_sas(
            self.account_name, self.container, permission=READ_PERMISSIONS, **self.window, **self.signing
        )
        return f"BlobEndpoint={self.endpoint};SharedAccessSignature={sas}"

    def blob_write_sas(self, blob_path: str) -> str:
        return generate_blob_sas(self.account_name, self.container, blob_path, **self.write_terms, **self.signing)

    def container_url_for_blob(self, url: str) -> str:
        """The container URL with a SAS that lets Batch upload to exactly that blob (output files)."""
        return f"{self.endpoint}/{self.container}?{self.blob_write_sas(path_in_container(url))}"

    def blob_write_url(self, url: str) -> str:
        path = path_in_container(url)
        return f"{self.endpoint}/{self.container}/{path}?{self.blob_write_sas(path)}"

    def write_urls(self, writes: tuple[str, ...]) -> dict[str, str]:
        """abfs:// URL of each blob a task writes -> its https URL with a SAS for that blob alone."""
        return {url: self.blob_write_url(url) for url in writes}

    def grants_file_url(self, job_id: str, task_id: str, writes: tuple[str, ...]) -> str:
        """Store a task's write grants as a blob of the grants container and return its URL with a
        SAS that reads that one blob, for Batch to download before the task starts."""
        grants = grants_container_of(self.container)
        path = grants_file_path(job_id, task_id)
        document = json.dumps(self.write_urls(writes)).encode()
        self.service.get_blob_client(grants, path).upload_blob(document, overwrite=True)
        sas = generate_blob_sas(
            self.account_name, grants, path, permission=BlobSasPermissions(read=True), **self.window, **self.signing
        )
        return f"{self.endpoint}/{grants}/{path}?{sas}"


def revoke_write_grants(wasb_conn_id: str, container: str, job_id: str) -> None:
    """The job has ended: its tasks' write grants stop working now, not at their expiry, and the
    files that carried them to the tasks are deleted."""
    service = WasbHook(wasb_conn_id=wasb_conn_id).get_conn()
    if getattr(service.credential, "account_key", None):
        ContainerPolicies(service.get_container_client(container)).revoke(write_policy_id(job_id))
    grants = service.get_container_client(grants_container_of(container))
    try:
        names = [blob.name for blob in grants.list_blobs(name_starts_with=f"{job_id}/")]
    except ResourceNotFoundError:  # no job of this account ever had grants files
        return

    def delete(name: str) -> None:
        try:
            grants.delete_blob(name)
        except ResourceNotFoundError:  # an earlier end of the same job deleted it
            pass

    with ThreadPoolExecutor(GRANT_FILE_DELETERS) as deleters:
        list(deleters.map(delete, names))


def jobs_holding_grants(wasb_conn_id: str, container: str) -> set[str]:
    """The jobs whose grants files are there (written at submission, deleted when a job ends), from
    one listing of the grants container's folders."""
    grants = WasbHook(wasb_conn_id=wasb_conn_id).get_conn().get_container_client(grants_container_of(container))
    try:
        return {prefix.name.rstrip("/") for prefix in grants.walk_blobs(delimiter="/")}
    except ResourceNotFoundError:  # no job of this account ever had grants files
        return set()


def connect_storage(_context: object = None) -> None:
    """Before every task: abfs:// URLs use the `wasb` connection's account when one is configured
    (otherwise adlfs' own AZURE_STORAGE_* variables)."""
    settings = ForecastSettings()
    if settings.wasb_conn_id:
        use_connection_for_abfs(settings.wasb_conn_id)
