"""Azure Blob credentials the Airflow way: from a `wasb` connection, never from code or logs.

Airflow-side code reads and writes abfs:// URLs through adlfs configured from the connection (the
provider's own fsspec factory); scoring tasks on Batch nodes get short-lived SAS tokens, never the
account key: read access to the container, write access to exactly the blobs they produce.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import fsspec
from airflow.providers.microsoft.azure.fs.adls import get_fs
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from azure.storage.blob import BlobSasPermissions, ContainerSasPermissions, generate_blob_sas, generate_container_sas

from scoring_airflow.settings import ForecastSettings

# A scoring task reads the container (data, models, its run manifest) and lists folders; it writes
# only the blobs it produces, each through a SAS for that one blob. Blob uploads commit whole, so a
# granted write needs no temporary blob and rename (which would need wider rights).
READ_PERMISSIONS = ContainerSasPermissions(read=True, list=True)
WRITE_PERMISSIONS = BlobSasPermissions(create=True, write=True)
CLOCK_SKEW = timedelta(minutes=5)


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
class TaskGrants:
    """What one scoring task may touch, as SAS tokens: never the account key."""

    read_connection_string: str  # AZURE_STORAGE_CONNECTION_STRING for adlfs in the worker: read + list
    write_urls: dict[str, str]  # abfs:// URL of each blob the task writes -> its https URL with a blob SAS


class GrantSigner:
    """Signs SAS tokens for one container with the `wasb` connection's account key, or with a user
    delegation key when the connection authenticates through Entra ID (managed identity, service
    principal). Valid from a few minutes ago (clock skew) until `valid_for` from now."""

    def __init__(self, wasb_conn_id: str, container: str, valid_for: timedelta):
        service = WasbHook(wasb_conn_id=wasb_conn_id).get_conn()
        now = datetime.now(UTC)
        self.container = container
        self.account_name = service.account_name
        self.endpoint = service.url.rstrip("/")
        self.window = {"start": now - CLOCK_SKEW, "expiry": now + valid_for}
        account_key = getattr(service.credential, "account_key", None)
        self.signing = (
            {"account_key": account_key}
            if account_key
            else {"user_delegation_key": service.get_user_delegation_key(self.window["start"], self.window["expiry"])}
        )

    def read_connection_string(self) -> str:
        sas = generate_container_sas(
            self.account_name, self.container, permission=READ_PERMISSIONS, **self.window, **self.signing
        )
        return f"BlobEndpoint={self.endpoint};SharedAccessSignature={sas}"

    def blob_write_sas(self, blob_path: str) -> str:
        return generate_blob_sas(
            self.account_name, self.container, blob_path, permission=WRITE_PERMISSIONS, **self.window, **self.signing
        )

    def container_url_for_blob(self, url: str) -> str:
        """The container URL with a SAS that lets Batch upload to exactly that blob (output files)."""
        return f"{self.endpoint}/{self.container}?{self.blob_write_sas(path_in_container(url))}"

    def blob_write_url(self, url: str) -> str:
        path = path_in_container(url)
        return f"{self.endpoint}/{self.container}/{path}?{self.blob_write_sas(path)}"

    def task_grants(self, writes: list[str]) -> TaskGrants:
        return TaskGrants(self.read_connection_string(), {url: self.blob_write_url(url) for url in writes})


def connect_storage(_context: object = None) -> None:
    """Before every task: abfs:// URLs use the `wasb` connection's account when one is configured
    (otherwise adlfs' own AZURE_STORAGE_* variables)."""
    settings = ForecastSettings()
    if settings.wasb_conn_id:
        use_connection_for_abfs(settings.wasb_conn_id)
