"""The churn scenario's data and models: modeldata's `mlc_churn` (5,000 real telecom customers,
Debian's r-cran-modeldata) with a customer id and a monthly snapshot date, replicated to any number
of customers and stored as hive-style Parquet, a folder per state, as
include/scenarios/customer_churn.json declares it; and its r-table packages, a base-R glm and a
ranger probability forest trained on mlc_churn's first TRAINED_ON rows (the others held out)."""

import json
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from retail_scoring import storage
from retail_scoring.scenarios.document import Scenario

TRAINED_ON = 4000
GLM_SCORE = """
load_models <- function(model_dir) readRDS(file.path(model_dir, "glm.rds"))
score <- function(models, batch, context) {
  stopifnot(!("churn" %in% names(batch)))  # the label is no input of the package
  data.frame(p_churn = unname(predict(models, newdata = batch, type = "response")))
}
"""
RANGER_SCORE = """
load_models <- function(model_dir) {
  requireNamespace("ranger", quietly = TRUE)
  readRDS(file.path(model_dir, "ranger.rds"))
}
score <- function(models, batch, context) {
  p <- predict(models, data = batch, num.threads = 1)$predictions[, "yes"]
  data.frame(p_churn = unname(p))
}
"""


def load_mlc_churn() -> pa.Table:
    """mlc_churn through rpy2, factors as their labels."""
    from retail_scoring import rsession

    frame = rsession.r_to_pandas(
        rsession.r_eval("{ data(mlc_churn, package = 'modeldata'); as.data.frame(mlc_churn) }")
    )
    return pa.Table.from_pandas(frame.astype({c: str for c in frame.select_dtypes("category")}), preserve_index=False)


def churn_customers(base: pa.Table, customers: int, snapshot: date) -> pa.Table:
    """`customers` rows cycling through `base`'s, with ids 1.. and the snapshot date first."""
    rows = base.take(np.arange(customers) % len(base))
    ids = pa.array(np.arange(1, customers + 1, dtype="int64"))
    return rows.add_column(0, "snapshot", pa.array([snapshot] * customers, pa.date32())).add_column(
        0, "customer_id", ids
    )


def write_by_state(table: pa.Table, url: str, rows_per_file: int = 1_000_000) -> None:
    """`table` as hive-style Parquet under `url`, a `state=XX/` folder per state."""
    fs, path = storage.filesystem(url)
    ds.write_dataset(
        table, path, filesystem=fs, format="parquet", partitioning=["state"], partitioning_flavor="hive",
        max_rows_per_file=rows_per_file, max_rows_per_group=min(rows_per_file, 100_000),
        existing_data_behavior="delete_matching",
    )  # fmt: skip


def snapshot_customers(base: pa.Table, customers: int, snapshot: date, shift: int = 0) -> pa.Table:
    """A snapshot of `customers`: customer i gets mlc_churn's row i - 1 + `shift` (so snapshots
    differ), its label kept only where the packages did not train on the row (the held-out
    labels a run's metrics are judged on), null elsewhere."""
    source_rows = (np.arange(customers) + shift) % len(base)
    rows = churn_customers(base.take(pa.array(source_rows)), customers, snapshot)
    churn = rows["churn"].combine_chunks()
    label = pc.if_else(pa.array(source_rows >= TRAINED_ON), churn, pa.nulls(customers, churn.type))
    return rows.set_column(rows.column_names.index("churn"), "churn", label)


def train_glm(folder: Path) -> Path:
    """A base-R logistic regression of churn on every predictor, as an r-table package's files."""
    return _train_package(
        folder, GLM_SCORE, "glm.rds",
        "train <- mlc_churn[1:n, ]; train$churn <- as.integer(train$churn == 'yes');"
        " saveRDS(glm(churn ~ ., family = binomial, data = train), path)",
    )  # fmt: skip


def train_ranger(folder: Path) -> Path:
    """A ranger probability forest (200 trees, seeded), as an r-table package's files."""
    return _train_package(
        folder, RANGER_SCORE, "ranger.rds",
        "saveRDS(ranger::ranger(churn ~ ., data = mlc_churn[1:n, ], probability = TRUE, num.trees = 200,"
        " seed = 7, num.threads = 1), path)",
    )  # fmt: skip


def _train_package(folder: Path, score: str, model_file: str, fit: str) -> Path:
    """`folder` with the package's score script and its model, which the R code `fit` saves to
    `path` from mlc_churn's first `n` (TRAINED_ON) rows."""
    from retail_scoring import rsession

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.R").write_text(score)
    rsession.r_eval(f"function(path, n) {{ data(mlc_churn, package = 'modeldata'); {fit} }}")(
        str(folder / model_file), TRAINED_ON
    )
    return folder


def table_manifest(scenario: Scenario, folder: Path, version: str, **changes) -> dict:
    """The r-table manifest of the churn package in `folder`, its files' sha256 filled in."""
    files = {p.name: storage.sha256_hex(p.read_bytes()) for p in sorted(folder.iterdir()) if p.name != "manifest.json"}
    dependencies = {"stats": ""} if (folder / "glm.rds").exists() else {"ranger": ""}
    predictors = [c for c in scenario.dataset.columns if c not in ("customer_id", "snapshot", "churn")]
    manifest = {
        "model_version": version, "kind": "r-table", "profile": "classification", "script": "score.R",
        "input": {c: scenario.dataset.columns[c].type for c in predictors}, "output": ["p_churn"],
        "r_dependencies": dependencies, "files": files,
    }  # fmt: skip
    return {**manifest, **changes}


def seal(scenario: Scenario, folder: Path, version: str) -> Path:
    """Write the package's manifest (table_manifest)."""
    (folder / "manifest.json").write_text(json.dumps(table_manifest(scenario, folder, version)))
    return folder
