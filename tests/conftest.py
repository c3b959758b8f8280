"""Shared fixtures: a small slice of the real reference data and a tiny model set trained on it."""

import logging
from pathlib import Path

import pandas as pd
import pytest

from retail_scoring.dataset import load_orange_juice, prepare_reference_series, write_products
from retail_scoring.layout import StorageLayout
from retail_scoring.package import upload_package
from retail_scoring.train import Hyperparameters, train_model_set

logging.getLogger("rpy2").setLevel(logging.WARNING)  # its exit-time INFO lines hit closed streams

pytest_plugins = ["tests.azurite"]

TEST_STORES = 6  # 66 series per product: big enough for every code path, small enough for seconds
TINY_MODELS = "tiny-test"


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
    upload_package(tiny_model_dir, layout)
    return layout


def local_path(url: str) -> Path:
    return Path(url.removeprefix("file://"))
