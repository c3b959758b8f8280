"""The built-in package kind `gbm-lag-quantiles`: one gbm .rds per (step group, quantile), listed in
the manifest's `models`, scored on the reference's lag features."""

import json
import logging
import time
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np
import pandas as pd

from retail_scoring.data.schema import HORIZON, N_LAGS, QUANTILE_COLUMNS, QUANTILES, ROW_KEY, model_name
from retail_scoring.errors import InputDataError, ModelPackageError, UnsafeIdentifierError
from retail_scoring.layout import checked_identifier, product_label
from retail_scoring.packages.base import (
    MANIFEST_FILE,
    REFERENCE_INPUT,
    REFERENCE_OUTPUT,
    ChunkScores,
    ModelPackage,
    PackageManifest,
    ProductInput,
)
from retail_scoring.packages.gbm.compiled import (
    R_PREDICT_GBM,
    CompiledModel,
    available_cores,
    check_self,
    compile_models,
    engine_platform,
)
from retail_scoring.packages.gbm.features import scoring_features

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
        raise ModelPackageError(f"{source}: manifest entry lacks field {error}") from error
    except UnsafeIdentifierError as error:
        raise ModelPackageError(f"{source}: {error}") from error
    served: dict[tuple[int, float], str] = {}
    for entry in entries:
        for step in entry.steps:
            key = (step, entry.quantile)
            if key in served:
                raise ModelPackageError(
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
        raise ModelPackageError(f"{source}: manifest has no model for {', '.join(missing)}")
    return entries


def load_r_models(manifest: PackageManifest, folder: Path, entries: list[ModelEntry]) -> dict:
    """readRDS each model once, checking it is a gbm trained on the features the manifest says."""
    from retail_scoring import rsession

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
            raise ModelPackageError(f"{where}: cannot be read as an R object ({error})") from error
        r_class = str(loaded.rx2("class")[0])
        if r_class != "gbm":
            raise ModelPackageError(f"{where}: {entry.name} is an R object of class '{r_class}', expected 'gbm'")
        var_names = tuple(str(v) for v in loaded.rx2("var_names"))
        if var_names != entry.features:
            raise ModelPackageError(
                f"{where}: {entry.name} was trained on {list(var_names)}, manifest says {list(entry.features)}"
            )
        r_models[entry.name] = loaded.rx2("model")
    return r_models


class GbmLagQuantilesPackage(ModelPackage):
    """The built-in kind: the reference's lag features computed in pandas, one gbm per (step group,
    quantile), predicted on stacked rows by R's own predict.gbm or, when the package carries one,
    by its compiled engine (bit-identical; see compiled.py)."""

    def __init__(self, manifest: PackageManifest, entries: list[ModelEntry], predictors: dict):
        super().__init__(manifest)
        self.entries = entries
        self._predictors = predictors  # model name -> R gbm or CompiledModel
        self.engine = "compiled" if isinstance(next(iter(predictors.values())), CompiledModel) else "r"
        if self.engine == "compiled":
            self.products_per_chunk = 8  # no R call to save: fewer tables in memory at once
        if self.engine == "r":
            from retail_scoring import rsession

            self._r_predict = rsession.r_eval(R_PREDICT_GBM)

    @classmethod
    def check(cls, manifest: PackageManifest) -> None:
        """The reference's output, a model for every (step, quantile), each among the files."""
        if dict(manifest.input.exogenous) != dict(REFERENCE_INPUT.exogenous) or manifest.input.history_weeks != N_LAGS:
            raise ModelPackageError(
                f"{manifest.source}: kind gbm-lag-quantiles reads the reference's columns and {N_LAGS} weeks of "
                f"history; the manifest's input is {manifest.input.to_dict()}"
            )
        if manifest.output != REFERENCE_OUTPUT:
            raise ModelPackageError(
                f"{manifest.source}: kind gbm-lag-quantiles forecasts {HORIZON} weeks at quantiles {list(QUANTILES)}; "
                f"the manifest's output is {manifest.output.to_dict()}"
            )
        entries = manifest_entries(manifest.raw, manifest.source)
        compiled = manifest.raw.get("compiled_engine", {}).get("models", {})
        files = [entry.file for entry in entries] + [compiled[e.name] for e in entries if e.name in compiled]
        if compiled:
            lacking = [key for key in ("self_check", "kernel") if key not in manifest.raw["compiled_engine"]]
            if lacking:
                raise ModelPackageError(
                    f"{manifest.source}: the compiled engine has no {' or '.join(lacking)} (packaged by an older "
                    "release); package again with --compile"
                )
            files += [manifest.raw["compiled_engine"]["self_check"], manifest.raw["compiled_engine"]["kernel"]]
        unlisted = sorted(set(files) - set(manifest.files))
        if unlisted:
            raise ModelPackageError(f"{manifest.source}: model files {unlisted} are not among the manifest's files")
        if compiled:
            compiled_from = manifest.raw["compiled_engine"].get("compiled_from", {})
            stale = [e.name for e in entries if compiled_from.get(e.name) != manifest.files.get(e.file)]
            if set(compiled) != {entry.name for entry in entries} or stale:
                raise ModelPackageError(
                    f"{manifest.source}: the compiled engine was not compiled from these model files "
                    f"({', '.join(stale[:3]) or 'models missing'}); package again with --compile"
                )

    @classmethod
    def load(
        cls, manifest: PackageManifest, folder: Path, engine: str = "auto", threads: int | None = None
    ) -> "GbmLagQuantilesPackage":
        entries = manifest_entries(manifest.raw, manifest.source)
        if cls._uses_compiled_engine(manifest, engine):
            section = manifest.raw["compiled_engine"]
            threads = threads or available_cores()
            predictors = {e.name: CompiledModel(folder / section["models"][e.name], e.name, threads) for e in entries}
            started = time.perf_counter()
            check_self(folder, predictors, {entry.name: list(entry.features) for entry in entries})
            log.info(
                "model package %s: compiled engine, %d threads; every compiled model reproduced R's self-check "
                "predictions in %.1f ms",
                manifest.version,
                threads,
                1000 * (time.perf_counter() - started),
            )
            return cls(manifest, entries, predictors)
        return cls(manifest, entries, load_r_models(manifest, folder, entries))

    @classmethod
    def runs_r(cls, manifest: PackageManifest, engine: str) -> bool:
        return engine == "r" or cls._why_not_compiled(manifest) is not None

    @staticmethod
    def _why_not_compiled(manifest: PackageManifest) -> str | None:
        """Why the package's compiled engine cannot score here, None when it can."""
        section = manifest.raw.get("compiled_engine")
        if section is None:
            return "has no compiled engine (package it with `retail-scoring package --compile`)"
        if section["platform"] != engine_platform():
            return f"was compiled for {section['platform']}, this worker is {engine_platform()}"
        return None

    @classmethod
    def _uses_compiled_engine(cls, manifest: PackageManifest, engine: str) -> bool:
        if engine == "r":
            return False
        why = cls._why_not_compiled(manifest)
        if why is None:
            return True
        if engine == "compiled":
            raise ModelPackageError(f"{manifest.source}: model package {manifest.version} {why}")
        log.info("model package %s %s: scoring with R", manifest.version, why)
        return False

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
        """Sales quantiles for stacked rows: per step group one table of its rows (an R data.frame
        or a matrix for the compiled engine) and one predict call per model, whatever the number
        of products."""
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
            newdata = self._model_input({name: values[selected] for name, values in columns[features].items()})
            timings.conversion_s += time.perf_counter() - started
            for entry in self.entries:
                if (entry.steps, entry.features) != (steps, features):
                    continue
                started = time.perf_counter()
                log_sales[selected, QUANTILES.index(entry.quantile)] = self._predict(entry, newdata)
                timings.predict_s += time.perf_counter() - started
                timings.predict_calls += 1
        return np.exp(log_sales)

    def _model_input(self, columns: dict[str, np.ndarray]):
        if self.engine == "compiled":
            return np.column_stack(list(columns.values()))
        from retail_scoring import rsession

        return rsession.numeric_columns_to_r(columns)

    def _predict(self, entry: ModelEntry, newdata) -> np.ndarray:
        """One model's predictions (link scale) for the step group's rows."""
        if self.engine == "compiled":
            return self._predictors[entry.name].predict(newdata)
        from retail_scoring import rsession

        return rsession.r_vector_to_numpy(self._r_predict(self._predictors[entry.name], newdata))


def model_columns(rows: pd.DataFrame, features: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The columns a model expects, named as in training (the model's `sku` is our base_sku)."""
    return {name: rows["base_sku" if name == "sku" else name].to_numpy(dtype="float64") for name in features}


def remove_compiled_engine(folder: Path) -> None:
    """Take a package's compiled engine out of its folder and manifest, so it can be compiled again."""
    manifest_path = folder / MANIFEST_FILE
    try:
        raw = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelPackageError(f"{manifest_path}: cannot read the manifest ({error})") from error
    section = raw.pop("compiled_engine", None)
    if section is None:
        return
    for name in [*section.get("models", {}).values(), section.get("self_check"), section.get("kernel")]:
        if name:
            (folder / checked_identifier("model file name", name)).unlink(missing_ok=True)
    manifest_path.write_text(json.dumps(raw, indent=2) + "\n")


def compile_package(folder: Path, manifest: PackageManifest) -> None:
    """Give a sealed gbm package folder its compiled engine: compile every model, pass the parity
    gate, and record the engine (its kernel and the arrays each model was compiled to) in
    the manifest. Seal the folder again afterwards, so those files get their checksums."""
    if manifest.kind != "gbm-lag-quantiles":
        raise ModelPackageError(f"{manifest.source}: kind {manifest.kind} has no compiled engine")
    entries = manifest_entries(manifest.raw, manifest.source)
    r_models = load_r_models(manifest, folder, entries)
    section = compile_models(folder, r_models, {entry.name: list(entry.features) for entry in entries})
    section["compiled_from"] = {entry.name: manifest.files[entry.file] for entry in entries}
    manifest_path = folder / MANIFEST_FILE
    manifest_path.write_text(json.dumps({**manifest.raw, "compiled_engine": section}, indent=2) + "\n")
