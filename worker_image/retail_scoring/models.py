"""The built-in package kind `gbm-lag-quantiles`: one gbm .rds per (step group, quantile), listed in
the manifest's `models`, scored on the reference's lag features."""

import logging
import time
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np
import pandas as pd

from retail_scoring.errors import InputDataError, ModelSetError, UnsafeIdentifierError
from retail_scoring.features import scoring_features
from retail_scoring.layout import checked_identifier, product_label
from retail_scoring.package import (
    REFERENCE_INPUT,
    REFERENCE_OUTPUT,
    ChunkScores,
    PackageKind,
    PackageManifest,
    ProductInput,
)
from retail_scoring.schema import HORIZON, N_LAGS, QUANTILE_COLUMNS, QUANTILES, ROW_KEY, model_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    steps: tuple[int, ...]
    quantile: float
    features: tuple[str, ...]


def manifest_entries(manifest: dict, source: str) -> list[ModelEntry]:
    """The manifest's models, after checking every (step, quantile) is served by exactly one."""
    try:
        entries = [
            ModelEntry(
                name=m["name"],
                file=checked_identifier(f"model file name of {m['name']}", m["file"]),
                steps=tuple(m["steps"]),
                quantile=float(m["quantile"]),
                features=tuple(m["features"]),
            )
            for m in manifest["models"]
        ]
    except (KeyError, TypeError) as error:
        raise ModelSetError(f"{source}: manifest entry lacks field {error}") from error
    except UnsafeIdentifierError as error:
        raise ModelSetError(f"{source}: {error}") from error
    served: dict[tuple[int, float], str] = {}
    for entry in entries:
        for step in entry.steps:
            key = (step, entry.quantile)
            if key in served:
                raise ModelSetError(
                    f"{source}: step {step} quantile {entry.quantile} served by both {served[key]} and {entry.name}"
                )
            served[key] = entry.name
    missing = [
        model_name(step, q) + f" (step {step}, quantile {q})"
        for step in range(1, HORIZON + 1)
        for q in QUANTILES
        if (step, q) not in served
    ]
    if missing:
        raise ModelSetError(f"{source}: manifest has no model for {', '.join(missing)}")
    return entries


class GbmLagQuantiles(PackageKind):
    """The built-in kind: the reference's lag features computed in pandas, one R gbm per (step
    group, quantile), predicted by R's own predict.gbm on stacked rows."""

    def __init__(self, manifest: PackageManifest, entries: list[ModelEntry], r_models: dict):
        from retail_scoring import rsession

        super().__init__(manifest)
        self.entries = entries
        self._r_models = r_models
        self._r_predict = rsession.r_eval("function(m, d) predict(m, d, n.trees = m$n.trees)")

    @classmethod
    def check(cls, manifest: PackageManifest) -> None:
        """The reference's output, a model for every (step, quantile), each among the files."""
        if dict(manifest.input.exogenous) != dict(REFERENCE_INPUT.exogenous) or manifest.input.history_weeks != N_LAGS:
            raise ModelSetError(
                f"{manifest.source}: kind gbm-lag-quantiles reads the reference's columns and {N_LAGS} weeks of "
                f"history; the manifest's input is {manifest.input.to_dict()}"
            )
        if manifest.output != REFERENCE_OUTPUT:
            raise ModelSetError(
                f"{manifest.source}: kind gbm-lag-quantiles forecasts {HORIZON} weeks at quantiles {list(QUANTILES)}; "
                f"the manifest's output is {manifest.output.to_dict()}"
            )
        entries = manifest_entries(manifest.raw, manifest.source)
        unlisted = sorted({entry.file for entry in entries} - set(manifest.files))
        if unlisted:
            raise ModelSetError(f"{manifest.source}: model files {unlisted} are not among the manifest's files")

    @classmethod
    def load(cls, manifest: PackageManifest, folder: Path) -> "GbmLagQuantiles":
        """readRDS each model once, checking it is a gbm trained on the features the manifest says."""
        from retail_scoring import rsession

        entries = manifest_entries(manifest.raw, manifest.source)
        rsession.r_eval("invisible(requireNamespace('gbm', quietly = TRUE))")  # registers predict.gbm
        load_model = rsession.r_eval(
            "function(path) { m <- readRDS(path); list(model = m, class = class(m)[1],"
            " var_names = if (inherits(m, 'gbm')) m$var.names else character(0)) }"
        )
        r_models = {}
        for entry in entries:
            where = f"{manifest.source.rpartition('/')[0]}/{entry.file}"
            try:
                loaded = load_model(str(folder / entry.file))
            except Exception as error:  # rpy2 raises RRuntimeError for corrupt RDS
                raise ModelSetError(f"{where}: cannot be read as an R object ({error})") from error
            r_class = str(loaded.rx2("class")[0])
            if r_class != "gbm":
                raise ModelSetError(f"{where}: {entry.name} is an R object of class '{r_class}', expected 'gbm'")
            var_names = tuple(str(v) for v in loaded.rx2("var_names"))
            if var_names != entry.features:
                raise ModelSetError(
                    f"{where}: {entry.name} was trained on {list(var_names)}, manifest says {list(entry.features)}"
                )
            r_models[entry.name] = loaded.rx2("model")
        return cls(manifest, entries, r_models)

    def predict(self, entry: ModelEntry, newdata) -> np.ndarray:
        """R's predict(model, newdata, n.trees = model$n.trees) on an R data.frame."""
        from retail_scoring import rsession

        return rsession.r_vector_to_numpy(self._r_predict(self._r_models[entry.name], newdata))

    def score(self, chunk: list[ProductInput], origin: int, timings) -> ChunkScores:
        """Features per product, then one R predict call per model for the whole chunk."""
        scores = ChunkScores()
        scored, frames = [], []
        for product in chunk:
            started = time.perf_counter()
            try:
                frames.append(scoring_features(product.history, product.plans, origin, product.source))
                scored.append(product.product)
            except InputDataError as error:
                scores.failures[product.product] = str(error)
                log.error("%s: skipped: %s", product_label(product.product), error)
            timings.features_s += time.perf_counter() - started
        if not frames:
            return scores
        rows = pd.concat(frames, ignore_index=True)
        forecasts = rows[list(ROW_KEY)].assign(
            **dict(zip(QUANTILE_COLUMNS, self.predict_quantiles(rows, timings).T, strict=True))
        )
        ends = list(accumulate(len(frame) for frame in frames))
        for product, start, end in zip(scored, [0, *ends[:-1]], ends, strict=True):
            scores.forecasts[product] = forecasts.iloc[start:end]
        return scores

    def predict_quantiles(self, rows: pd.DataFrame, timings) -> np.ndarray:
        """Sales quantiles for stacked rows: one R data.frame per step group and one predict call
        per model, whatever the number of products."""
        from retail_scoring import rsession

        log_sales = np.full((len(rows), len(QUANTILES)), np.nan)
        started = time.perf_counter()
        step_groups = sorted({(entry.steps, entry.features) for entry in self.entries})
        row_steps = rows["step"].to_numpy()
        columns = {features: model_columns(rows, features) for features in {features for _, features in step_groups}}
        timings.conversion_s += time.perf_counter() - started
        for steps, features in step_groups:
            started = time.perf_counter()
            selected = np.flatnonzero(np.isin(row_steps, steps))
            if not len(selected):
                continue
            newdata = rsession.numeric_columns_to_r(
                {name: values[selected] for name, values in columns[features].items()}
            )
            timings.conversion_s += time.perf_counter() - started
            for entry in self.entries:
                if (entry.steps, entry.features) != (steps, features):
                    continue
                started = time.perf_counter()
                log_sales[selected, QUANTILES.index(entry.quantile)] = self.predict(entry, newdata)
                timings.predict_s += time.perf_counter() - started
                timings.predict_calls += 1
        return np.exp(log_sales)


def model_columns(rows: pd.DataFrame, features: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The columns a model expects, named as in training (the model's `sku` is our base_sku)."""
    return {name: rows["base_sku" if name == "sku" else name].to_numpy(dtype="float64") for name in features}
