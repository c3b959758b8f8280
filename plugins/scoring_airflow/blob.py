"""Azure Blob credentials the Airflow way: from a `wasb` connection, never from code or logs.

Airflow-side code reads and writes abfs:// URLs through adlfs configured from the connection (the
provider's own fsspec factory); scoring tasks on Batch nodes get a short-lived SAS for the one
container they need, never the account key.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import fsspec
from airflow.providers.microsoft.azure.fs.adls import get_fs
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

# A worker reads data and models, lists folders, writes forecasts through a temporary blob that it
# renames (copy + delete): nothing more. Output-file uploads by Batch need create + write.
WORKER_PERMISSIONS = ContainerSasPermissions(read=True, list=True, write=True, create=True, delete=True)


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


@dataclass(frozen=True)
class ContainerGrant:
    """A SAS-scoped view of one container, for processes that must not hold the account key."""

    container_url: str  # with the SAS as its query string: what Batch output files upload to
    connection_string: str  # what adlfs in the worker reads from AZURE_STORAGE_CONNECTION_STRING


def grant_container(wasb_conn_id: str, container: str, valid_for: timedelta) -> ContainerGrant:
    """A container SAS signed with the account key, or with a user delegation key when the
    connection authenticates through Entra ID (managed identity, service principal)."""
    service = WasbHook(wasb_conn_id=wasb_conn_id).get_conn()
    now = datetime.now(UTC)
    expiry = now + valid_for
    signing = {}
    account_key = getattr(service.credential, "account_key", None)
    if account_key:
        signing["account_key"] = account_key
    else:
        signing["user_delegation_key"] = service.get_user_delegation_key(now - timedelta(minutes=5), expiry)
    sas = generate_container_sas(
        service.account_name,
        container,
        permission=WORKER_PERMISSIONS,
        start=now - timedelta(minutes=5),
        expiry=expiry,
        **signing,
    )
    endpoint = service.url.rstrip("/")
    return ContainerGrant(
        container_url=f"{endpoint}/{container}?{sas}",
        connection_string=f"BlobEndpoint={endpoint};SharedAccessSignature={sas}",
    )
