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
from retail_scoring.errors import ModelSetError, UnsafeIdentifierError
from retail_scoring.layout import StorageLayout, checked_identifier
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


def read_manifest(layout: StorageLayout, model_version: str) -> tuple[dict, str]:
    """The model set's manifest and the sha256 of its bytes, which pins every model file too."""
    url = layout.model_file(model_version, MANIFEST_FILE)
    if not storage.exists(url):
        raise ModelSetError(f"{url}: model set manifest not found")
    data = storage.read_bytes(url)
    try:
        return json.loads(data), sha256_hex(data)
    except json.JSONDecodeError as error:
        raise ModelSetError(f"{url}: manifest is not valid JSON ({error})") from error


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
                sha256=m["sha256"],
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


class ModelSet:
    """R gbm objects of one model version, held in the embedded R session."""

    def __init__(self, version: str, entries: list[ModelEntry], r_models: dict):
        from retail_scoring import rsession

        self.version = version
        self.entries = entries
        self._r_models = r_models
        self._r_predict = rsession.r_eval("function(m, d) predict(m, d, n.trees = m$n.trees)")

    @classmethod
    def load(cls, layout: StorageLayout, model_version: str, pinned_manifest_sha256: str | None = None) -> "ModelSet":
        """Verify the manifest against the run's pin (when the run recorded one) and every file
        against the manifest's sha256, then readRDS each once."""
        from retail_scoring import rsession

        manifest, manifest_sha256 = read_manifest(layout, model_version)
        manifest_url = layout.model_file(model_version, MANIFEST_FILE)
        if pinned_manifest_sha256 and manifest_sha256 != pinned_manifest_sha256:
            raise ModelSetError(
                f"{manifest_url}: model set {model_version} changed since the run was planned (manifest sha256 "
                f"{manifest_sha256}, the run recorded {pinned_manifest_sha256}); start a new run to use it"
            )
        entries = manifest_entries(manifest, manifest_url)
        rsession.r_eval("invisible(requireNamespace('gbm', quietly = TRUE))")  # registers predict.gbm
        load_model = rsession.r_eval(
            "function(path) { m <- readRDS(path); list(model = m, class = class(m)[1],"
            " var_names = if (inherits(m, 'gbm')) m$var.names else character(0)) }"
        )
        r_models = {}
        with tempfile.TemporaryDirectory() as scratch:
            for entry in entries:
                url = layout.model_file(model_version, entry.file)
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
        log.info("model set %s: %d models loaded", model_version, len(entries))
        return cls(manifest["model_version"], entries, r_models)

    def predict(self, entry: ModelEntry, newdata) -> np.ndarray:
        """R's predict(model, newdata, n.trees = model$n.trees) on an R data.frame."""
        from retail_scoring import rsession

        return rsession.r_vector_to_numpy(self._r_predict(self._r_models[entry.name], newdata))


def model_columns(rows: pd.DataFrame, features: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The columns a model expects, named as in training (the model's `sku` is our base_sku)."""
    return {name: rows["base_sku" if name == "sku" else name].to_numpy(dtype="float64") for name in features}


def upload_model_set(source: Path, layout: StorageLayout, replace: bool = False) -> str:
    """Copy a local model set folder (manifest + model files) to storage; returns its version.
    A version in storage with other content is refused unless `replace`: runs record the manifest's
    checksum, so a replaced set is never mixed into a run planned with the old one."""
    manifest_bytes = (source / MANIFEST_FILE).read_bytes()
    version = json.loads(manifest_bytes)["model_version"]
    manifest_url = layout.model_file(version, MANIFEST_FILE)
    storage.create_root(layout.root)
    if storage.exists(manifest_url) and storage.read_bytes(manifest_url) != manifest_bytes and not replace:
        raise ModelSetError(
            f"{manifest_url}: model set {version} exists with other content; upload under a new version, "
            "or replace it explicitly (upload-models --replace)"
        )
    for path in sorted(source.iterdir()):
        if path.name != MANIFEST_FILE:
            storage.write_bytes_atomic(layout.model_file(version, path.name), path.read_bytes())
    storage.write_bytes_atomic(manifest_url, manifest_bytes)  # last: the set is complete when it appears
    return version
