"""Train a model set: one gbm quantile regression per (step 1..6, quantile) plus "t7" per quantile."""

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from retail_scoring import rsession
from retail_scoring.features import training_features
from retail_scoring.models import MANIFEST_FILE, model_input, sha256_hex
from retail_scoring.schema import HORIZON, QUANTILES, STEPS_WITH_OWN_MODEL, features_for_step, model_name

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


def train_model_set(history: pd.DataFrame, output_dir: Path, model_version: str, params: Hyperparameters) -> dict:
    """Fit all models on `history` and write them with their manifest to `output_dir`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    fit_gbm = rsession.r_eval(_FIT_GBM)
    provenance = {
        "r_version": rsession.r_version(),
        "gbm_version": rsession.package_version("gbm"),
        "training_data_fingerprint": data_fingerprint(history),
    }
    models = []
    model_steps = [*range(1, STEPS_WITH_OWN_MODEL + 1), STEPS_WITH_OWN_MODEL + 1]
    for step in model_steps:
        features = features_for_step(step)
        rows = training_features(history, step)
        data = rsession.numeric_frame_to_r(model_input(rows, features).assign(sales=rows["log_sales"]))
        formula = "sales ~ " + " + ".join(features)
        served_steps = [step] if step <= STEPS_WITH_OWN_MODEL else list(range(step, HORIZON + 1))
        for quantile in QUANTILES:
            name = model_name(step, quantile)
            path = output_dir / f"{name}.rds"
            started = time.perf_counter()
            fit_gbm(
                data,
                formula,
                quantile,
                params.n_trees,
                params.interaction_depth,
                params.shrinkage,
                params.n_minobsinnode,
                params.seed,
                str(path),
            )
            log.info("%s trained on %d rows in %.1f s", name, len(rows), time.perf_counter() - started)
            models.append(
                {
                    "name": name,
                    "file": path.name,
                    "steps": served_steps,
                    "quantile": quantile,
                    "features": list(features),
                    "hyperparameters": asdict(params),
                    "sha256": sha256_hex(path.read_bytes()),
                    **provenance,
                }
            )
    manifest = {
        "model_version": model_version,
        **provenance,
        "training_data": {
            "rows": len(history),
            "weeks": [int(history["week"].min()), int(history["week"].max())],
        },
        "hyperparameters": asdict(params),
        "models": models,
    }
    (output_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
