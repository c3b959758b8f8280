"""The churn scenario's fixtures: the committed scenario file, modeldata's real mlc_churn customers
as hive Parquet by state, and a base-R glm trained on the first 4,000 of them."""

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from retail_scoring import rsession
from retail_scoring.scenarios.churn_data import churn_customers, load_mlc_churn, write_by_state
from retail_scoring.scenarios.document import Scenario
from retail_scoring.scenarios.shards import plan_shards
from retail_scoring.scenarios.table import read_shard

SCENARIO_FILE = Path(__file__).resolve().parents[2] / "include" / "scenarios" / "customer_churn.json"
SNAPSHOT = date(2026, 11, 30)
GLM_SCORE = """
load_models <- function(model_dir) readRDS(file.path(model_dir, "glm.rds"))
score <- function(models, batch, context) {
  stopifnot(!("churn" %in% names(batch)))  # the label is no input of the package
  data.frame(p_churn = unname(predict(models, newdata = batch, type = "response")))
}
"""


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario.from_json(SCENARIO_FILE.read_bytes(), str(SCENARIO_FILE))


def predictors(scenario: Scenario) -> tuple[str, ...]:
    """mlc_churn's 19 predictors: what the glm package reads."""
    return tuple(c for c in scenario.dataset.columns if c not in ("customer_id", "snapshot", "churn"))


@pytest.fixture(scope="module")
def customers() -> pa.Table:
    return churn_customers(load_mlc_churn(), 5000, SNAPSHOT)


@pytest.fixture(scope="module")
def glm_package(tmp_path_factory, customers) -> Path:
    """A base-R glm trained on the first 4,000 customers (the last 1,000 are held out)."""
    folder = tmp_path_factory.mktemp("glm-churn")
    (folder / "score.R").write_text(GLM_SCORE)
    rsession.r_eval(
        "function(path) { data(mlc_churn, package = 'modeldata');"
        " train <- mlc_churn[1:4000, ]; train$churn <- as.integer(train$churn == 'yes');"
        " saveRDS(glm(churn ~ ., family = binomial, data = train), path) }"
    )(str(folder / "glm.rds"))
    return folder


@pytest.fixture(scope="module")
def storage_root(tmp_path_factory, customers) -> str:
    root = f"file://{tmp_path_factory.mktemp('storage')}"
    write_by_state(customers, f"{root}/data/churn", rows_per_file=40)
    return root


def shard_rows(scenario, storage_root, label="state=CA"):
    shards = {shard.label: shard for shard in plan_shards(scenario.dataset, scenario.sharding, storage_root)}
    return read_shard(scenario.dataset, shards[label], storage_root)
