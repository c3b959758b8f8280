"""Train a model package: one gbm quantile regression per (step 1..6, quantile) plus "t7" per quantile."""

import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from retail_scoring import rsession
from retail_scoring.data.schema import HORIZON, QUANTILES, STEPS_WITH_OWN_MODEL, features_for_step, model_name
from retail_scoring.packages.base import MANIFEST_FILE, REFERENCE_INPUT, REFERENCE_OUTPUT
from retail_scoring.packages.gbm.features import training_features
from retail_scoring.packages.gbm.kind import model_columns
from retail_scoring.storage import sha256_hex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hyperparameters:
    """Defaults are the reference architecture's."""

    n_trees: int = 1250
    interaction_depth: int = 20
    shrinkage: float = 0.05
    n_minobsinnode: int = 10
    seed: int = 42


_FIT_GBM = """
function(data, formula_text, alpha, n_trees, depth, shrinkage, minobs, seed, path) {
  set.seed(seed)
  # A formula made here would capture this frame, training data included, into the saved model.
  model <- gbm::gbm(as.formula(formula_text, env = globalenv()), data = data,
                    distribution = list(name = "quantile", alpha = alpha),
                    n.trees = n_trees, interaction.depth = depth, shrinkage = shrinkage,
                    n.minobsinnode = minobs, keep.data = FALSE, n.cores = 1)
  model$fit <- NULL  # fitted values of the training rows: large, and predict() never reads them
  saveRDS(model, file = path)
  invisible(NULL)
}
"""


def data_fingerprint(frame: pd.DataFrame) -> str:
    return sha256_hex(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())


def train_model(
    history: pd.DataFrame, step: int, quantile: float, output_dir: Path, params: Hyperparameters
) -> tuple[dict, int, float]:
    """Fit the model of (step, quantile) and save it; returns its manifest entry, training rows and seconds.
    Runs in a worker process with its own embedded R."""
    features = features_for_step(step)
    rows = training_features(history, step)
    data = rsession.numeric_columns_to_r({**model_columns(rows, features), "sales": rows["log_sales"].to_numpy()})
    name = model_name(step, quantile)
    path = output_dir / f"{name}.rds"
    started = time.perf_counter()
    fit_gbm = rsession.r_eval(_FIT_GBM)
    fit_gbm(
        data,
        "sales ~ " + " + ".join(features),
        quantile,
        params.n_trees,
        params.interaction_depth,
        params.shrinkage,
        params.n_minobsinnode,
        params.seed,
        str(path),
    )
    seconds = time.perf_counter() - started
    entry = {
        "name": name,
        "file": path.name,
        "steps": [step] if step <= STEPS_WITH_OWN_MODEL else list(range(step, HORIZON + 1)),
        "quantile": quantile,
        "features": list(features),
        "hyperparameters": asdict(params),
    }
    return entry, len(rows), seconds


def train_model_set(
    history: pd.DataFrame, output_dir: Path, model_version: str, params: Hyperparameters, jobs: int = 1
) -> dict:
    """Fit all models on `history`, `jobs` at a time (each fit is single-threaded R; the
    reference-size set takes hours on one core), and write them with their manifest to `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    provenance = {
        "r_version": rsession.r_version(),
        "gbm_version": rsession.package_version("gbm"),
        "training_data_fingerprint": data_fingerprint(history),
    }
    model_steps = [*range(1, STEPS_WITH_OWN_MODEL + 1), STEPS_WITH_OWN_MODEL + 1]
    units = [(step, quantile) for step in model_steps for quantile in QUANTILES]
    fit = partial(train_model, history, output_dir=output_dir, params=params)
    models = []
    # spawn: a forked child would share the parent's embedded R, which R does not survive
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for entry, rows, seconds in pool.map(fit, *zip(*units, strict=True)):
            log.info("%s trained on %d rows in %.1f s", entry["name"], rows, seconds)
            models.append({**entry, **provenance})
    manifest = {
        "model_version": model_version,
        "kind": "gbm-lag-quantiles",
        "input": REFERENCE_INPUT.to_dict(),
        "output": REFERENCE_OUTPUT.to_dict(),
        "r_dependencies": {"gbm": provenance["gbm_version"]},
        **provenance,
        "training_data": {
            "rows": len(history),
            "weeks": [int(history["week"].min()), int(history["week"].max())],
        },
        "hyperparameters": asdict(params),
        "files": {m["file"]: sha256_hex((output_dir / m["file"]).read_bytes()) for m in models},
        "models": models,
    }
    (output_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
