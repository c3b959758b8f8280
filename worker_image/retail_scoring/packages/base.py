"""Model packages: a folder of files described by its manifest.json, which says the package's kind,
what it reads from the product tables (the input contract), what it forecasts (the output
contract), which R packages it needs and the sha256 of every file.

The worker loads a package once per task with `load_package` and then only calls `score` on chunks
of products; each kind (the built-in `gbm-lag-quantiles`, the general `r-script`) implements that
one method, so the worker never asks which kind it has.
"""

import dataclasses
import importlib
import importlib.resources
import json
import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import pandas as pd

from retail_scoring import storage
from retail_scoring.data.schema import HORIZON, N_LAGS, PRICE_COLUMNS, QUANTILES, SERIES_KEY, quantile_column
from retail_scoring.errors import ModelPackageError, UnsafeIdentifierError
from retail_scoring.layout import StorageLayout, checked_identifier
from retail_scoring.storage import sha256_hex

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
# kind -> the class implementing it, imported only when a package of that kind is loaded
# How a package's models are scored: R itself, the compiled engine (gbm kind, when packaged with
# one), or `auto`: compiled where the package has an engine that runs here, else R.
Engine = Literal["auto", "r", "compiled"]
ENGINES: tuple[Engine, ...] = get_args(Engine)
KINDS = {
    "gbm-lag-quantiles": "retail_scoring.packages.gbm.kind:GbmLagQuantilesPackage",
    "r-script": "retail_scoring.packages.rscript:RScriptPackage",
}


@dataclass(frozen=True)
class OutputContract:
    """What a package forecasts: `horizon` weeks after the origin, at these quantile levels."""

    horizon: int = HORIZON
    quantiles: tuple[float, ...] = QUANTILES
    non_negative: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(quantile_column(q) for q in self.quantiles)

    def to_dict(self) -> dict:
        return {"horizon": self.horizon, "quantiles": list(self.quantiles), "non_negative": self.non_negative}

    @classmethod
    def from_dict(cls, output: dict) -> "OutputContract":
        return cls(
            horizon=int(output["horizon"]),
            quantiles=tuple(float(q) for q in output["quantiles"]),
            non_negative=bool(output.get("non_negative", True)),
        )


REFERENCE_OUTPUT = OutputContract()  # the reference architecture's: 13 weeks, quantiles 5/25/50/75/95


# How the product tables identify rows; a package's input contract must say the same, so a package
# written for other tables is refused when it is packaged, not when it runs.
TABLE_LAYOUT = {"series_key": list(SERIES_KEY), "time": "week", "target": "sales"}
COLUMN_TYPES = {"integer": "iu", "number": "iuf"}  # contract type -> numpy dtype kinds it accepts
DTYPE_KIND_NAMES = {"i": "integer", "u": "unsigned integer", "f": "float", "b": "boolean", "O": "text", "M": "datetime"}


@dataclass(frozen=True)
class InputContract:
    """What a package reads from the product tables: exogenous columns with their types (in the
    history and the planned weeks), and how many weeks of sales every series needs up to the origin."""

    exogenous: tuple[tuple[str, str], ...]
    history_weeks: int

    def to_dict(self) -> dict:
        return {**TABLE_LAYOUT, "exogenous": dict(self.exogenous), "history_weeks": self.history_weeks}

    @classmethod
    def from_dict(cls, data: dict, source: str) -> "InputContract":
        for field_name, expected in TABLE_LAYOUT.items():
            if data.get(field_name) != expected:
                raise ModelPackageError(
                    f"{source}: input {field_name} is {data.get(field_name)!r}; the product tables have {expected!r}"
                )
        exogenous = tuple((str(column), str(kind)) for column, kind in data["exogenous"].items())
        unknown = [f"{column}: {kind}" for column, kind in exogenous if kind not in COLUMN_TYPES]
        if unknown:
            raise ModelPackageError(f"{source}: input exogenous types must be integer or number, found {unknown}")
        history_weeks = int(data["history_weeks"])
        if history_weeks < 1:
            raise ModelPackageError(f"{source}: input history_weeks must be at least 1")
        return cls(exogenous, history_weeks)

    def mismatch(self, column_kinds: dict[str, str], source: str, package: str) -> str | None:
        """The first way a table with these columns (column -> numpy dtype kind, read from `source`)
        breaks the contract, or None."""
        for column, kind in self.exogenous:
            if column not in column_kinds:
                return f"{source}: column '{column}' ({kind}) that model package {package} needs is missing"
            if column_kinds[column] not in COLUMN_TYPES[kind]:
                found = DTYPE_KIND_NAMES.get(column_kinds[column], column_kinds[column])
                return f"{source}: column '{column}': model package {package} expects {kind}, found {found}"
        return None


REFERENCE_INPUT = InputContract(
    (("base_sku", "integer"), ("deal", "integer"), ("feat", "integer"), *((p, "number") for p in PRICE_COLUMNS)),
    history_weeks=N_LAGS,
)


@dataclass(frozen=True)
class PackageManifest:
    version: str
    kind: str
    input: InputContract
    output: OutputContract
    r_dependencies: dict[str, str]  # R package -> lowest version it works with ("" for any)
    files: dict[str, str]  # file name -> sha256
    raw: dict = field(repr=False)  # the whole manifest: each kind reads its own fields from it
    source: str = ""  # the manifest's URL, for messages
    sha256: str = ""  # of the manifest's bytes as stored, which pin every file; set when loaded from storage

    @property
    def training_weeks(self) -> tuple[int, int] | None:
        """The first and last week of the data its models were trained on (`training_data.weeks`),
        None when the package does not say: forecasts of those weeks are in-sample, never evidence
        of how it forecasts the future."""
        weeks = (self.raw.get("training_data") or {}).get("weeks")
        return (int(weeks[0]), int(weeks[1])) if weeks else None


def read_manifest(layout: StorageLayout, model_version: str) -> tuple[dict, str]:
    """The package's manifest and the sha256 of its bytes, which pins every file of it too."""
    url = layout.model_file(model_version, MANIFEST_FILE)
    try:  # read and caught, never exists() first: adlfs answers False during an outage
        data = storage.read_bytes(url)
    except FileNotFoundError as error:
        raise ModelPackageError(f"{url}: model package manifest not found") from error
    try:
        return json.loads(data), sha256_hex(data)
    except json.JSONDecodeError as error:
        raise ModelPackageError(f"{url}: manifest is not valid JSON ({error})") from error


def parse_manifest(manifest: dict, source: str) -> PackageManifest:
    """The manifest's common fields, checked; an error names the manifest and the field."""
    try:
        kind = manifest["kind"]
        contract = OutputContract.from_dict(manifest["output"])
        input_contract = InputContract.from_dict(manifest["input"], source)
        files = {checked_identifier("file name", name): str(digest) for name, digest in manifest["files"].items()}
        dependencies = {str(name): str(version) for name, version in manifest.get("r_dependencies", {}).items()}
        parsed = PackageManifest(
            manifest["model_version"], kind, input_contract, contract, dependencies, files, manifest, source
        )
    except UnsafeIdentifierError as error:
        raise ModelPackageError(f"{source}: {error}") from error
    except KeyError as error:
        raise ModelPackageError(f"{source}: manifest lacks field {error}") from error
    except (TypeError, ValueError, AttributeError) as error:
        raise ModelPackageError(f"{source}: manifest field has the wrong type ({error})") from error
    if kind not in KINDS:
        raise ModelPackageError(f"{source}: unknown package kind {kind!r}; known kinds: {', '.join(KINDS)}")
    if MANIFEST_FILE in files:
        raise ModelPackageError(f"{source}: the manifest cannot list itself among the files")
    if not 1 <= contract.horizon <= 104 or not contract.quantiles:
        raise ModelPackageError(f"{source}: output needs a horizon of 1..104 weeks and at least one quantile")
    if any(not 0 < q < 1 for q in contract.quantiles) or list(contract.quantiles) != sorted(set(contract.quantiles)):
        raise ModelPackageError(f"{source}: output quantiles must be distinct, ascending and between 0 and 1")
    weeks = (manifest.get("training_data") or {}).get("weeks")
    if weeks is not None and not (
        isinstance(weeks, list) and len(weeks) == 2 and all(isinstance(w, int) for w in weeks) and weeks[0] <= weeks[1]
    ):
        raise ModelPackageError(f"{source}: training_data.weeks must be [first week, last week], got {weeks!r}")
    package_kind(kind).check(parsed)
    return parsed


class ModelPackage(ABC):
    """A loaded model package. Loaded once per task; `score` is called once per chunk of products."""

    # Products one `score` call gets. A package that calls R once per chunk and model gains from
    # stacking (~10% over one call per product); a chunk bounds the rows held in memory (each
    # product's tables, ~25 MB) and lets progress be seen as chunks are written.
    products_per_chunk: int = 15

    def __init__(self, manifest: PackageManifest):
        self.manifest = manifest

    @property
    def version(self) -> str:
        return self.manifest.version

    @classmethod
    @abstractmethod
    def check(cls, manifest: PackageManifest) -> None:
        """Refuse a manifest whose kind-specific fields are wrong, naming the field; needs no R
        (planning calls it before any pool exists)."""

    @classmethod
    def runs_r(cls, manifest: PackageManifest, engine: str) -> bool:
        """Whether scoring with `engine` starts R: then the worker checks the package's R
        dependencies first. A kind that can score without R says when."""
        return True

    @classmethod
    @abstractmethod
    def load(
        cls, manifest: PackageManifest, folder: Path, engine: str = "auto", threads: int | None = None
    ) -> "ModelPackage":
        """Load the package from `folder`, which holds its verified files, to score with `engine`
        (one of ENGINES: `auto` picks the package's fastest that runs here) on `threads` cores
        (None: all this process may use); a kind without the engine asked for refuses, naming it."""

    @abstractmethod
    def score(self, chunk: list["ProductInput"], origin: int, timings) -> "ChunkScores":
        """Forecasts of the chunk's products: each product's rows with the series key, the week and
        one column per quantile of the output contract; a product that cannot be scored gets a
        message in `failures` naming its files or the package, and the cause."""


@dataclass(frozen=True)
class ProductInput:
    """One product's tables as of the origin: `history` up to it (with sales), `plans` the later
    weeks' planned features (no sales). `source` names the files in messages."""

    product: int
    history: pd.DataFrame
    plans: pd.DataFrame
    source: str


@dataclass
class ChunkScores:
    """A chunk's forecasts by product, and why the others have none, by product."""

    forecasts: dict[int, pd.DataFrame] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)


# R itself, as both images pin it (r-base-core=4.2.2...), and the packages every R ships with it
R_VERSION = "4.2.2"
R_BASE_PACKAGES = (
    "base", "compiler", "datasets", "graphics", "grDevices", "grid", "methods", "parallel", "splines", "stats",
    "stats4", "tcltk", "tools", "utils",
)  # fmt: skip


def worker_r_packages() -> dict[str, str]:
    """The R packages of the worker environment, as R package -> version: R's own (R_BASE_PACKAGES)
    and the Debian packages the worker image installs exactly (setup.sh too):
    r-cran-gbm=2.1.8.1-1 -> gbm 2.1.8.1."""
    text = importlib.resources.files("retail_scoring").joinpath("worker_r_packages.txt").read_text()
    packages = dict.fromkeys(R_BASE_PACKAGES, R_VERSION)
    for line in text.split():
        name, _, debian_version = line.partition("=")
        packages[name.removeprefix("r-cran-")] = debian_version.rpartition("-")[0]
    return packages


def package_kind(kind: str) -> type[ModelPackage]:
    module, _, name = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def missing_r_dependencies(dependencies: dict[str, str], installed: dict[str, str]) -> list[str]:
    """The dependencies `installed` (R package -> version) does not satisfy, each described."""
    missing = []
    for package, lowest in sorted(dependencies.items()):
        version = installed.get(package, installed.get(package.lower()))  # Debian names are lowercase
        if version is None:
            missing.append(f"R package '{package}' is not installed")
        elif lowest and _r_version(version) < _r_version(lowest):
            missing.append(f"R package '{package}' {lowest} or newer is needed, {version} is installed")
    return missing


def _r_version(text: str) -> tuple[int, ...]:
    """R's package_version ordering: numbers separated by '.' or '-'."""
    return tuple(int(part) for part in text.replace("-", ".").split("."))


SCRATCH_PREFIX = "package-"  # + the worker's pid: a package's files copied for one worker


def remove_scratch_of_dead_workers() -> None:
    """Remove package copies left by workers that were killed (SIGKILL runs no cleanup): those
    whose pid no longer runs. A live worker's copy, or one of a reused pid, is left alone."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except (ProcessLookupError, OverflowError):  # not running; or no pid at all
            shutil.rmtree(folder, ignore_errors=True)
            log.info("%s: removed the package copy of a worker that was killed", folder)
        except PermissionError:  # another user's live process
            continue


def read_pinned_manifest(layout: StorageLayout, model_version: str, pinned_sha256: str | None) -> tuple[dict, str]:
    """The package's manifest and its sha256, refused if it is not the one the run pinned (when the
    run recorded one)."""
    raw, manifest_sha256 = read_manifest(layout, model_version)
    if pinned_sha256 and manifest_sha256 != pinned_sha256:
        raise ModelPackageError(
            f"{layout.model_file(model_version, MANIFEST_FILE)}: model package {model_version} changed since the run "
            f"was planned (manifest sha256 {manifest_sha256}, the run recorded {pinned_sha256}); start a new run to "
            "use it"
        )
    return raw, manifest_sha256


def check_r_dependencies(dependencies: dict[str, str], source: str, model_version: str) -> None:
    """Refuse a package whose R dependencies this worker's R does not satisfy, naming each."""
    from retail_scoring import rsession

    missing = missing_r_dependencies(dependencies, rsession.installed_packages(dependencies))
    if missing:
        raise ModelPackageError(f"{source}: this worker cannot run model package {model_version}: {'; '.join(missing)}")


@contextmanager
def verified_copy(layout: StorageLayout, model_version: str, files: dict[str, str]) -> Iterator[Path]:
    """The package's files, each checked against its manifest's sha256, in a scratch folder that
    lives as long as the block."""
    remove_scratch_of_dead_workers()
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as scratch:
        for name, digest in files.items():
            url = layout.model_file(model_version, name)
            try:
                data = storage.read_bytes(url)
            except FileNotFoundError as error:
                raise ModelPackageError(f"{url}: file of model package {model_version} not found") from error
            found = sha256_hex(data)
            if found != digest:
                raise ModelPackageError(f"{url}: sha256 {found} does not match the manifest's {digest}")
            (Path(scratch) / name).write_bytes(data)
        yield Path(scratch)


@contextmanager
def load_package(
    layout: StorageLayout,
    model_version: str,
    pinned_manifest_sha256: str | None = None,
    engine: str = "auto",
    threads: int | None = None,
) -> Iterator[ModelPackage]:
    """The package, loaded for `engine` on `threads` cores: its manifest checked against the run's pin (when the run
    recorded one), every file checked against the manifest's sha256 and copied to a scratch folder
    that lives as long as the package, and, when it will run R, its R dependencies checked in this
    worker's R (a package scored by the compiled engine starts no R at all)."""
    raw, manifest_sha256 = read_pinned_manifest(layout, model_version, pinned_manifest_sha256)
    source = layout.model_file(model_version, MANIFEST_FILE)
    manifest = dataclasses.replace(parse_manifest(raw, source), sha256=manifest_sha256)
    kind = package_kind(manifest.kind)
    if kind.runs_r(manifest, engine):
        check_r_dependencies(manifest.r_dependencies, source, model_version)
    with verified_copy(layout, model_version, manifest.files) as folder:
        package = kind.load(manifest, folder, engine, threads)
        log.info("model package %s (%s) loaded: %d files", model_version, manifest.kind, len(manifest.files))
        yield package


def seal_package(folder: Path, training_weeks: tuple[int, int] | None = None) -> PackageManifest:
    """Fill in the manifest's `files` with the sha256 of every other file of the folder (and, when
    given, the weeks its models were just trained on), then check the manifest as planning will
    (kind, contract, kind-specific fields)."""
    manifest_path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelPackageError(f"{manifest_path}: cannot read the manifest ({error})") from error
    if training_weeks is not None:
        manifest["training_data"] = {**manifest.get("training_data", {}), "weeks": list(training_weeks)}
    manifest["files"] = {
        path.name: sha256_hex(path.read_bytes())
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST_FILE
    }
    parsed = parse_manifest(manifest, str(manifest_path))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return parsed


def upload_package(source: Path, layout: StorageLayout, replace: bool = False) -> str:
    """Copy a local package folder (manifest + files) to storage; returns its version. A version in
    storage with other content is refused unless `replace`: runs record the manifest's checksum,
    so a replaced package is never mixed into a run planned with the old one."""
    manifest_bytes = (source / MANIFEST_FILE).read_bytes()
    version = json.loads(manifest_bytes)["model_version"]
    manifest_url = layout.model_file(version, MANIFEST_FILE)
    storage.create_root(layout.root)
    try:  # read and caught, never exists() first: adlfs answers False during an outage
        stored = storage.read_bytes(manifest_url)
    except FileNotFoundError:
        stored = manifest_bytes
    if stored != manifest_bytes and not replace:
        raise ModelPackageError(
            f"{manifest_url}: model package {version} exists with other content; upload under a new version, "
            "or replace it explicitly (upload-package --replace)"
        )
    for path in sorted(source.iterdir()):
        if path.name != MANIFEST_FILE and path.is_file():
            storage.write_bytes_atomic(layout.model_file(version, path.name), path.read_bytes())
    storage.write_bytes_atomic(manifest_url, manifest_bytes)  # last: the package is complete when it appears
    return version
