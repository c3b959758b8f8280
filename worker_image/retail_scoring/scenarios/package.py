"""A model package for a tabular scenario (kind `r-table`): a folder with its manifest.json, an R
script defining load_models(model_dir) and score(models, batch, context) (scenarios.scoring), and
whatever files the models are. The manifest says which profile it serves, the input columns it
reads with their types and the output columns it returns, so that planning refuses a package that
does not fit the scenario before any pool exists:

    {"model_version": "glm-churn-v1", "kind": "r-table", "profile": "classification",
     "script": "score.R", "input": {"state": "categorical", "total_day_minutes": "number", ...},
     "output": ["p_churn"], "r_dependencies": {"stats": ""}, "files": {"score.R": "<sha256>", ...}}
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Self

from retail_scoring.errors import ModelPackageError, UnsafeIdentifierError
from retail_scoring.layout import StorageLayout, checked_identifier
from retail_scoring.packages.base import (
    MANIFEST_FILE,
    check_r_dependencies,
    read_pinned_manifest,
    verified_copy,
)
from retail_scoring.scenarios.document import COLUMN_TYPES, Scenario
from retail_scoring.scenarios.scoring import TableModel

KIND = "r-table"
_FIELDS = {"model_version", "kind", "profile", "script", "input", "output", "r_dependencies", "files"}


@dataclass(frozen=True)
class TablePackageManifest:
    version: str
    profile: str
    script: str
    input: dict[str, str]  # column -> declared type
    output: tuple[str, ...]
    r_dependencies: dict[str, str]
    files: dict[str, str]  # file name -> sha256
    source: str
    sha256: str

    @classmethod
    def from_dict(cls, raw: dict, source: str, sha256: str) -> Self:
        """The manifest, checked field by field; ModelPackageError names `source` and the field."""
        kind = raw.get("kind") if isinstance(raw, dict) else f"none: a JSON {type(raw).__name__}, not an object"
        if kind != KIND:
            raise ModelPackageError(f"{source}: not a package of kind {KIND} (kind {kind})")
        unknown, missing = sorted(set(raw) - _FIELDS), sorted(_FIELDS - set(raw) - {"r_dependencies"})
        if unknown or missing:
            raise ModelPackageError(f"{source}: manifest fields missing {missing}, unknown {unknown}")
        try:
            files = {checked_identifier("file name", name): str(digest) for name, digest in raw["files"].items()}
            manifest = cls(
                str(raw["model_version"]), str(raw["profile"]), str(raw["script"]),
                {str(column): str(kind) for column, kind in raw["input"].items()}, tuple(str(c) for c in raw["output"]),
                {str(name): str(version) for name, version in raw.get("r_dependencies", {}).items()},
                files, source, sha256,
            )  # fmt: skip
        except UnsafeIdentifierError as error:
            raise ModelPackageError(f"{source}: {error}") from error
        except (AttributeError, TypeError) as error:
            raise ModelPackageError(f"{source}: manifest field has the wrong type ({error})") from error
        if manifest.script not in files:
            raise ModelPackageError(f"{source}: script {manifest.script!r} is not among the manifest's files")
        wrong = {column: kind for column, kind in manifest.input.items() if kind not in COLUMN_TYPES}
        if wrong:
            raise ModelPackageError(f"{source}: input types must be among {', '.join(COLUMN_TYPES)}, found {wrong}")
        return manifest

    def misfit(self, scenario: Scenario) -> list[str]:
        """How the package does not fit the scenario: another profile, an input column the scenario
        does not declare or declares of another type, other output columns."""
        problems = []
        if self.profile != scenario.profile:
            problems.append(f"it serves profile {self.profile}, the scenario is {scenario.profile}")
        for column, kind in self.input.items():
            declared = scenario.dataset.columns.get(column)
            if declared is None:
                problems.append(f"it reads column {column!r} ({kind}), which the scenario's dataset does not declare")
            elif declared.type != kind:
                problems.append(f"it reads column {column!r} as {kind}, the scenario declares {declared.type}")
        if set(self.output) != set(scenario.output.columns):
            problems.append(f"it returns {list(self.output)}, the scenario's output is {list(scenario.output.columns)}")
        return [
            f"{self.source}: model package {self.version} does not fit scenario {scenario.name}: {p}" for p in problems
        ]


def read_table_manifest(layout: StorageLayout, model_version: str, pinned_sha256: str | None) -> TablePackageManifest:
    raw, sha256 = read_pinned_manifest(layout, model_version, pinned_sha256)
    return TablePackageManifest.from_dict(raw, layout.model_file(model_version, MANIFEST_FILE), sha256)


@contextmanager
def load_table_package(layout: StorageLayout, model_version: str, pinned_sha256: str | None) -> Iterator[TableModel]:
    """The package's R code loaded once (its R dependencies and every file's sha256 checked first)."""
    manifest = read_table_manifest(layout, model_version, pinned_sha256)
    check_r_dependencies(manifest.r_dependencies, manifest.source, model_version)
    with verified_copy(layout, model_version, manifest.files) as folder:
        yield TableModel.load(folder, manifest.script, f"model package {model_version}", tuple(manifest.input))
