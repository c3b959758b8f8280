"""Blob storage going away: retried with backoff by the storage client, then a clear failure."""

import subprocess
import sys
import threading

from retail_scoring import storage
from retail_scoring.data.dataset import write_products
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from tests.conftest import TINY_MODELS

LAYOUT = StorageLayout("abfs://outage")


def score_in_background() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "retail_scoring.cli", "score", "--storage", LAYOUT.root, "--products", "1",
         "--origin", "107", "--model-version", TINY_MODELS, "--run-id", "outage"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def seed(small_reference, tiny_model_dir) -> None:
    write_products(LAYOUT, small_reference, 1)
    upload_package(tiny_model_dir, LAYOUT)


def test_storage_down_for_a_while_is_retried_and_the_task_completes(flaky_azurite, small_reference, tiny_model_dir):
    seed(small_reference, tiny_model_dir)
    flaky_azurite.cut()
    restart = threading.Timer(8, flaky_azurite.restore)
    restart.start()
    worker = score_in_background()
    _, stderr = worker.communicate(timeout=300)
    restart.join()
    assert worker.returncode == 0, stderr
    assert storage.exists(LAYOUT.forecast_file("outage", 1))
