"""Thin fsspec helpers: every read and write of the system goes through a URL.

Retrying is the storage client's job (the Azure SDK under adlfs retries with exponential backoff
for about a minute and a half); what it cannot cure becomes a StorageUnavailableError naming the URL.
"""

import errno
import fcntl
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import fsspec
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import BlobClient, BlobServiceClient
from fsspec.core import url_to_fs

from retail_scoring.errors import ContentChangedError, StorageUnavailableError, WriteNotAllowedError

UNAVAILABLE = (ConnectionError, TimeoutError, ServiceRequestError)
# The path of a JSON file {abfs URL: https URL with a SAS for that blob}: the blobs a Batch task may
# write. Batch downloads it into the task's working directory (a resource file) before the task
# starts, so the grants cost the task definition one URL, however many blobs the task writes.
WRITE_GRANTS_FILE_VARIABLE = "FORECAST_WRITE_GRANTS_FILE"
# Local or mounted storage that cannot take a write: full, over quota, read-only, failing.
UNAVAILABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def names_url_when_unavailable(operation: Callable) -> Callable:
    @functools.wraps(operation)
    def guarded(url: str, *args, **kwargs):
        try:
            return operation(url, *args, **kwargs)
        except OSError as error:  # ConnectionError and TimeoutError are OSErrors too
            if isinstance(error, UNAVAILABLE):
                raise StorageUnavailableError(f"{url}: storage unavailable after retries ({error})") from error
            if error.errno in UNAVAILABLE_ERRNOS:
                raise StorageUnavailableError(f"{url}: storage unavailable ({error.strerror})") from error
            raise
        except ServiceRequestError as error:
            raise StorageUnavailableError(f"{url}: storage unavailable after retries ({error})") from error

    return guarded


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and in-filesystem path for a URL (file://, abfs://, or a plain local path)."""
    return url_to_fs(url)


@names_url_when_unavailable
def create_root(url: str) -> None:
    """Create the storage root: a folder locally, the container on Azure Blob (adlfs creates a
    container only for a container-level path, not as a parent of a deeper one)."""
    fs, path = filesystem(url)
    if not fs.exists(path):
        fs.mkdir(path, create_parents=True)


@names_url_when_unavailable
def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


@names_url_when_unavailable
def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    return fs.cat_file(path)


def read_pinned(url: str, sha256: str, recorded: str) -> bytes:
    """The file's bytes, refused unless they are the content whose sha256 was recorded (`recorded`
    says when, for the message): what is used is then exactly what was checked."""
    data = read_bytes(url)
    if sha256_hex(data) != sha256:
        raise ContentChangedError(
            f"{url}: its content (sha256 {sha256_hex(data)[:12]}) is not what was recorded {recorded} "
            f"({sha256[:12]}): written again since"
        )
    return data


def read_json(url: str) -> dict | None:
    """A JSON document, or None when there is none. Read and caught, never exists() first: adlfs'
    exists() answers False during an outage, which would read as "not there"."""
    try:
        return json.loads(read_bytes(url))
    except FileNotFoundError:
        return None


@functools.lru_cache(maxsize=4)
def _grants_in(path: str) -> dict[str, str]:
    return json.loads(Path(path).read_text())


def write_grants() -> dict[str, str]:
    """abfs:// URL -> https URL with a write SAS for that blob alone: what this Batch task may write
    (empty elsewhere: local workers use the machine's own storage credentials)."""
    path = os.environ.get(WRITE_GRANTS_FILE_VARIABLE)
    return _grants_in(path) if path else {}


_allowed_writes: frozenset[str] | None = None  # None: this process is not a scoring task


def allow_writes_only(urls: Iterable[str]) -> None:
    """This process is a scoring task: from now on it writes only `urls` (the layout's list of what
    the task writes, which its Batch write grants also come from), so a write missing from that
    list fails on every backend, not only where it was not granted."""
    global _allowed_writes
    _allowed_writes = frozenset(urls)


def _check_write_allowed(url: str, grants: dict[str, str]) -> None:
    if _allowed_writes is not None and url not in _allowed_writes:
        raise WriteNotAllowedError(
            f"{url}: a scoring task writes only the files StorageLayout.scoring_task_writes lists for it, and "
            "this is not one of them (list it there: the task's write grants come from that list)"
        )
    if grants and url not in grants:
        raise WriteNotAllowedError(f"{url}: this Batch task was granted writes to {len(grants)} blobs, not to this one")


def _upload_granted(url: str, granted: str, data: bytes) -> None:
    try:
        BlobClient.from_blob_url(granted).upload_blob(data, overwrite=True)
    except HttpResponseError as error:
        if error.status_code != 403:
            raise
        raise WriteNotAllowedError(
            f"{url}: storage refused this task's write grant ({error.reason}): it expired, or the task's job "
            "ended and revoked it"
        ) from error


@names_url_when_unavailable
def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write to a temporary sibling, then rename: a reader sees the old file or the whole new one.
    A blob this task was granted is uploaded in one go instead: a blob upload commits whole, and
    the grant covers that blob alone (adlfs takes one credential per account, so it cannot use a
    per-blob SAS; the Azure SDK's BlobClient does)."""
    grants = write_grants()
    _check_write_allowed(url, grants)
    if grants:
        _upload_granted(url, grants[url], data)
        return
    fs, path = filesystem(url)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    temporary = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
    try:
        fs.pipe_file(temporary, data)
        fs.mv(temporary, path)
    finally:  # on every failure path too: no temporary file is ever left behind
        if fs.exists(temporary):
            fs.rm_file(temporary)


@dataclass(frozen=True)
class RecordedFile:
    """A file as its writer left it: size, sha256, and the identity storage gave it
    (stored_identity), which changes whenever the file is written again."""

    bytes: int
    sha256: str
    identity: str


def write_recorded(url: str, data: bytes) -> RecordedFile:
    """Write `data` atomically and return what identifies exactly this content in storage: its
    size, sha256 and stored identity. A run records these for every forecast it publishes, so a
    file written again since (whatever its size) is recognised from one listing."""
    write_bytes_atomic(url, data)
    return RecordedFile(len(data), sha256_hex(data), identity(url))


@names_url_when_unavailable
def list_names(url: str) -> list[str]:
    """Base names in a folder; empty when the folder does not exist (listed and caught, never
    exists() first: adlfs answers False during an outage)."""
    fs, path = filesystem(url)
    try:
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries)


def stored_identity(entry: dict) -> str:
    """What storage says of a file without reading it, and changes whenever the file is written
    again, whatever its size: the blob's ETag on Azure Blob; on local disk size, modification time,
    inode and the inode's change time, which no user-space write can put back (an in-place rewrite
    with its mtime restored, `cp -p`, `rsync -t --inplace`, `os.utime`, all set it to now). A copy
    of the storage (`cp -a`, a backup restored) gets new identities too: readers then fall back to
    the sha256 recorded beside each identity (`matches_record`)."""
    if entry.get("etag"):
        return f"etag {entry['etag'].strip(chr(34))}"
    return f"size {entry['size']} mtime {entry['mtime']!r} ctime {entry['created']!r} inode {entry['ino']}"


def matches_record(url: str, stored: str | None, recorded: RecordedFile) -> bool:
    """Whether the file at `url`, of stored identity `stored` (None: not there), is the one
    `recorded`: by identity when storage still gives the recorded one, else by reading it and
    comparing sha256 (storage copied or restored keeps content, not identities)."""
    if stored is None:
        return False
    if stored == recorded.identity:
        return True
    try:
        return sha256_hex(read_bytes(url)) == recorded.sha256
    except FileNotFoundError:
        return False


@names_url_when_unavailable
def identity(url: str) -> str:
    """The stored identity of one file (see stored_identity), asked of storage afresh."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    return stored_identity(fs.info(path))


@names_url_when_unavailable
def list_identities(url: str) -> dict[str, str]:
    """Base names in a folder with their stored identities, in one listing; empty when there is no
    folder (FileNotFoundError caught, not exists() asked: adlfs answers False during an outage)."""
    fs, path = filesystem(url)
    fs.invalidate_cache(path)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return {}
    return {entry["name"].rstrip("/").rsplit("/", 1)[-1]: stored_identity(entry) for entry in entries}


JsonChange = Callable[[dict | None], dict]


@names_url_when_unavailable
def update_json(url: str, change: JsonChange, attempts: int = 50) -> dict:
    """Replace a small JSON document with `change(current)` (None when there is none yet) so that
    concurrent writers never lose each other's updates: compare-and-swap on the blob's ETag on
    Azure Blob (If-Match / If-None-Match), an exclusive lock beside the file on local disk. fsspec
    has no conditional write, so this goes to the Azure SDK or the OS directly. Returns what is
    stored afterwards; nothing is written when `change` returns the current document. Written
    without indentation: the current forecast holds an entry per product (~46 MB at 100,000),
    which json's indenting encoder, pure Python, writes at half the speed."""
    fs, path = filesystem(url)
    if "abfs" in fs.protocol:
        return _update_blob_json(fs, path, change, attempts)
    parent, name = path.rsplit("/", 1)
    fs.makedirs(parent, exist_ok=True)
    with open(f"{parent}/.{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = json.loads(fs.cat_file(path)) if fs.exists(path) else None
        updated = change(current)
        if updated != current:
            write_bytes_atomic(url, json.dumps(updated).encode())
        return updated


def _update_blob_json(fs, path: str, change: JsonChange, attempts: int) -> dict:
    container, blob = path.split("/", 1)
    client = _blob_service(fs).get_blob_client(container, blob)
    for _ in range(attempts):
        try:
            download = client.download_blob()
            current, etag = json.loads(download.readall()), download.properties.etag
        except ResourceNotFoundError:
            current, etag = None, None
        updated = change(current)
        if updated == current:
            return current
        condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            client.upload_blob(json.dumps(updated).encode(), overwrite=etag is not None, **condition)
            return updated
        except (ResourceModifiedError, ResourceExistsError):
            continue  # another writer came first: read again and redo the change
    raise StorageUnavailableError(f"abfs://{path}: still contended after {attempts} attempts to update it")


def _blob_service(fs) -> BlobServiceClient:
    """A synchronous client for the account and credentials adlfs was configured with."""
    if fs.connection_string:
        return BlobServiceClient.from_connection_string(fs.connection_string)
    account_url = f"https://{fs.account_name}.{getattr(fs, 'account_host', None) or 'blob.core.windows.net'}"
    if fs.account_key:
        credential = {"account_name": fs.account_name, "account_key": fs.account_key}
    else:
        credential = fs.sas_token or fs.sync_credential or fs.credential
    return BlobServiceClient(account_url, credential=credential)
