"""The churn scenario's fixtures (tests/churn.py): the committed scenario, modeldata's real
mlc_churn customers as hive Parquet by state, and a base-R glm trained on the first 4,000 of them."""

from pathlib import Path

import pyarrow as pa
import pytest

from retail_scoring.scenarios.churn_data import churn_customers, load_mlc_churn, train_glm, write_by_state
from retail_scoring.scenarios.document import Scenario
from retail_scoring.scenarios.shards import plan_shards
from retail_scoring.scenarios.table import read_shard
from tests.churn import SCENARIO_FILE, SNAPSHOT, churn_url


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    """The committed scenario as a run of SNAPSHOT reads it, `{storage}` left for each test's root."""
    return Scenario.from_json(SCENARIO_FILE.read_bytes(), str(SCENARIO_FILE)).for_run("{storage}", SNAPSHOT.isoformat())


@pytest.fixture(scope="module")
def customers() -> pa.Table:
    return churn_customers(load_mlc_churn(), 5000, SNAPSHOT)


@pytest.fixture(scope="module")
def glm_package(tmp_path_factory, customers) -> Path:
    """A base-R glm trained on the first 4,000 customers (the last 1,000 are held out)."""
    return train_glm(tmp_path_factory.mktemp("glm-churn"))


@pytest.fixture(scope="module")
def storage_root(tmp_path_factory, customers) -> str:
    root = f"file://{tmp_path_factory.mktemp('storage')}"
    write_by_state(customers, churn_url(root), rows_per_file=40)
    return root


def shard_rows(scenario, storage_root, label="state=CA"):
    shards = {shard.label: shard for shard in plan_shards(scenario.dataset, scenario.sharding, storage_root)}
    return read_shard(scenario.dataset, shards[label], storage_root)
