"""Model sets: a manifest plus one gbm .rds per (step group, quantile), loaded once per task."""

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retail_scoring import storage
from retail_scoring.errors import ModelSetError
from retail_scoring.layout import StorageLayout
from retail_scoring.schema import HORIZON, QUANTILES, model_name

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    steps: tuple[int, ...]
    quantile: float
    features: tuple[str, ...]
    sha256: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(model_dir: str) -> dict:
    url = f"{model_dir.rstrip('/')}/{MANIFEST_FILE}"
    if not storage.exists(url):
        raise ModelSetError(f"{url}: model set manifest not found")
    try:
        return json.loads(storage.read_bytes(url))
    except json.JSONDecodeError as error:
        raise ModelSetError(f"{url}: manifest is not valid JSON ({error})") from error


def manifest_entries(manifest: dict, source: str) -> list[ModelEntry]:
    """The manifest's models, after checking every (step, quantile) is served by exactly one."""
    try:
        entries = [
            ModelEntry(
                name=m["name"],
                file=m["file"],
                steps=tuple(m["steps"]),
                quantile=float(m["quantile"]),
                features=tuple(m["features"]),
                sha256=m["sha256"],
            )
            for m in manifest["models"]
        ]
    except (KeyError, TypeError) as error:
        raise ModelSetError(f"{source}: manifest entry lacks field {error}") from error
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


class ModelSet:
    """R gbm objects of one model version, held in the embedded R session."""

    def __init__(self, version: str, entries: list[ModelEntry], r_models: dict):
        from retail_scoring import rsession

        self.version = version
        self.entries = entries
        self._r_models = r_models
        self._r_predict = rsession.r_eval("function(m, d) predict(m, d, n.trees = m$n.trees)")

    @classmethod
    def load(cls, model_dir: str) -> "ModelSet":
        """Verify every file against the manifest's sha256, then readRDS it once."""
        from retail_scoring import rsession

        manifest = read_manifest(model_dir)
        entries = manifest_entries(manifest, f"{model_dir}/{MANIFEST_FILE}")
        rsession.r_eval("invisible(requireNamespace('gbm', quietly = TRUE))")  # registers predict.gbm
        load_model = rsession.r_eval(
            "function(path) { m <- readRDS(path); list(model = m, class = class(m)[1],"
            " var_names = if (inherits(m, 'gbm')) m$var.names else character(0)) }"
        )
        r_models = {}
        with tempfile.TemporaryDirectory() as scratch:
            for entry in entries:
                url = f"{model_dir.rstrip('/')}/{entry.file}"
                if not storage.exists(url):
                    raise ModelSetError(f"{url}: model file of {entry.name} not found")
                data = storage.read_bytes(url)
                digest = sha256_hex(data)
                if digest != entry.sha256:
                    raise ModelSetError(
                        f"{url}: sha256 {digest} does not match the manifest's {entry.sha256} for {entry.name}"
                    )
                local = Path(scratch) / entry.file
                local.write_bytes(data)
                try:
                    loaded = load_model(str(local))
                except Exception as error:  # rpy2 raises RRuntimeError for corrupt RDS
                    raise ModelSetError(f"{url}: cannot be read as an R object ({error})") from error
                r_class = str(loaded.rx2("class")[0])
                if r_class != "gbm":
                    raise ModelSetError(f"{url}: {entry.name} is an R object of class '{r_class}', expected 'gbm'")
                var_names = tuple(str(v) for v in loaded.rx2("var_names"))
                if var_names != entry.features:
                    raise ModelSetError(
                        f"{url}: {entry.name} was trained on {list(var_names)}, manifest says {list(entry.features)}"
                    )
                r_models[entry.name] = loaded.rx2("model")
        log.info("model set %s: %d models loaded from %s", manifest.get("model_version"), len(entries), model_dir)
        return cls(manifest["model_version"], entries, r_models)

    def predict(self, entry: ModelEntry, newdata) -> np.ndarray:
        """R's predict(model, newdata, n.trees = model$n.trees) on an R data.frame."""
        from retail_scoring import rsession

        return rsession.r_vector_to_numpy(self._r_predict(self._r_models[entry.name], newdata))


def model_columns(rows: pd.DataFrame, features: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The columns a model expects, named as in training (the model's `sku` is our base_sku)."""
    return {name: rows["base_sku" if name == "sku" else name].to_numpy(dtype="float64") for name in features}


def upload_model_set(source: Path, layout: StorageLayout) -> str:
    """Copy a local model set folder (manifest + .rds files) to storage; returns its version."""
    manifest = json.loads((source / MANIFEST_FILE).read_text())
    storage.create_root(layout.root)
    target = layout.model_set_dir(manifest["model_version"])
    for path in sorted(source.iterdir()):
        storage.write_bytes_atomic(f"{target}/{path.name}", path.read_bytes())
    return manifest["model_version"]
