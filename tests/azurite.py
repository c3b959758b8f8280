"""Azurite, the Azure Storage emulator (npm package, installed by scripts/test.sh), on 127.0.0.1."""

import socket
import subprocess
import threading
import time
from pathlib import Path

import fsspec
import pytest

PROJECT = Path(__file__).resolve().parents[1]
AZURITE = PROJECT / ".local" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account; not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


class Azurite:
    """One emulator, its blobs in `location`."""

    def __init__(self, location: Path):
        self.location = location
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def start(self) -> None:
        if not AZURITE.exists():
            pytest.fail(f"{AZURITE} missing: scripts/test.sh installs Azurite from npm")
        self.process = subprocess.Popen(
            [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location",
             str(self.location), "--loose", "--skipApiVersionCheck", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", self.port)) != 0:
            assert time.monotonic() < deadline, "Azurite did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.kill()  # on SIGTERM Azurite waits for idle keep-alive connections, for minutes
        self.process.wait()


class CuttableProxy:
    """A TCP relay in front of Azurite that can be cut and restored: what the storage client sees
    in an outage (connections refused, open ones dropped) while the emulator keeps its blobs."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.connections: list[socket.socket] = []

    def restore(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        """Shut down, then close: close() alone does not wake a thread blocked in accept() or
        recv() on Linux, which would let one more connection through and keep open ones alive."""
        for sock in (self.listener, *self.connections):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its pump
            sock.close()
        self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            self.connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass  # one side closed or was cut
        finally:
            source.close()
            target.close()


@pytest.fixture
def azurite(tmp_path, monkeypatch) -> Azurite:
    server = Azurite(tmp_path / "azurite")
    server.start()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    fsspec.get_filesystem_class("abfs").clear_instance_cache()  # no adlfs client bound to another emulator
    yield server
    server.stop()


@pytest.fixture
def flaky_azurite(azurite, monkeypatch) -> CuttableProxy:
    """Azurite reached through a CuttableProxy: the tests cut and restore the storage's network."""
    proxy = CuttableProxy(azurite.port)
    proxy.restore()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(proxy.port))
    fsspec.get_filesystem_class("abfs").clear_instance_cache()
    yield proxy
    proxy.cut()
