"""Shared fixtures: a small slice of the real reference data and a tiny model set trained on it."""

import logging
import os

# Importing rpy2 sets LD_LIBRARY_PATH in this process, which would make child Pythons (worker CLI,
# Airflow) load the system libpython; children get the value this process started with.
_STARTING_LD_LIBRARY_PATH = os.environ.get("LD_LIBRARY_PATH")

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from retail_scoring.dataset import load_orange_juice, prepare_reference_series, write_products  # noqa: E402
from retail_scoring.layout import StorageLayout  # noqa: E402
from retail_scoring.models import upload_model_set  # noqa: E402
from retail_scoring.train import Hyperparameters, train_model_set  # noqa: E402

logging.getLogger("rpy2").setLevel(logging.WARNING)  # its exit-time INFO lines hit closed streams

pytest_plugins = ["tests.azurite"]

TEST_STORES = 6  # 66 series per product: big enough for every code path, small enough for seconds
TINY_MODELS = "tiny-test"


@pytest.fixture(autouse=True, scope="session")
def _children_do_not_inherit_r_library_path():
    if _STARTING_LD_LIBRARY_PATH is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = _STARTING_LD_LIBRARY_PATH


@pytest.fixture(scope="session")
def reference_series() -> pd.DataFrame:
    return prepare_reference_series(load_orange_juice())


@pytest.fixture(scope="session")
def small_reference(reference_series: pd.DataFrame) -> pd.DataFrame:
    return reference_series[reference_series["store"] <= TEST_STORES].reset_index(drop=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, small_reference: pd.DataFrame) -> Path:
    """35 real gbm models, 20 trees of depth 3, trained on the held-back-free history."""
    output = tmp_path_factory.mktemp("models") / TINY_MODELS
    history = small_reference[small_reference["week"] <= small_reference["week"].max() - 13]
    train_model_set(history, output, TINY_MODELS, Hyperparameters(n_trees=20, interaction_depth=3))
    return output


@pytest.fixture
def layout(tmp_path: Path, small_reference: pd.DataFrame, tiny_model_dir: Path) -> StorageLayout:
    """Storage with 3 products and the tiny model set, like a seeded local deployment."""
    layout = StorageLayout(f"file://{tmp_path}/storage")
    write_products(layout, small_reference, 3)
    upload_model_set(tiny_model_dir, layout)
    return layout


def local_path(url: str) -> Path:
    return Path(url.removeprefix("file://"))
