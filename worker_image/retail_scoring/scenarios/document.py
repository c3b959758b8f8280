"""A scenario: one use case declared in one versioned document (include/scenarios/<name>.json):
its input table (where, format, key, every column's type and nulls), how it is sharded, the
task profile (quantile_forecast, classification, regression, generic) with that profile's
parameters, the output (columns with their rules, pass-through columns, shape), publishing,
schedule and readiness marker. Read once, refused whole with the file and the
field named, so a scenario that cannot run never reaches a pool."""

import json
from dataclasses import dataclass, replace
from typing import Any, Literal, Self, get_args

from retail_scoring.errors import ScoringError
from retail_scoring.scenarios.profiles import profile_for

SCENARIO_VERSION = 1
ColumnType = Literal["integer", "number", "string", "categorical", "boolean", "date"]
COLUMN_TYPES: tuple[ColumnType, ...] = get_args(ColumnType)
DatasetFormat = Literal["parquet", "csv"]
DatasetLayout = Literal["files", "hive"]
OutputShape = Literal["per_input_row"]  # per key and horizon step: with the quantile_forecast profile
PublishMode = Literal["current_per_key"]


class ScenarioError(ScoringError):
    """A scenario document that cannot be run: another version, a field missing or of the wrong
    kind, or declarations that contradict each other."""


@dataclass(frozen=True)
class Column:
    """One column's declared type; `levels` for a categorical (R gets a factor of exactly these)."""

    name: str
    type: ColumnType
    nullable: bool = False
    levels: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Dataset:
    url: str  # `{storage}`: the run's storage root; `{as_of}`: the date it scores (Scenario.for_run)
    format: DatasetFormat
    layout: DatasetLayout
    key: tuple[str, ...]
    columns: dict[str, Column]


@dataclass(frozen=True)
class Sharding:
    """The unit a scoring task works through: a shard per value of `by`, split past `max_rows`."""

    by: tuple[str, ...]
    max_rows: int | None


@dataclass(frozen=True)
class Output:
    columns: dict[str, Column]
    pass_through: tuple[str, ...]
    shape: OutputShape


@dataclass(frozen=True)
class Publishing:
    """A current result per key, the newest by `version_column` (the forecast origin, a snapshot)."""

    mode: PublishMode
    version_column: str


@dataclass(frozen=True)
class Scenario:
    name: str
    profile: str  # scenarios.profiles.PROFILES
    parameters: dict[str, Any]  # the profile's own, checked by it
    dataset: Dataset
    sharding: Sharding
    output: Output
    publishing: Publishing | None = None
    schedule: str | None = None
    ready_marker: str | None = None

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Self:
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ScenarioError(f"{source}: not a JSON scenario document: {error}") from error
        return read_scenario(document, source)

    def for_run(self, storage_root: str, as_of: str) -> Self:
        """The scenario as a run reads it: `{storage}` in its URLs is the run's storage root,
        `{as_of}` the date the run scores (a monthly snapshot's folder, say)."""

        def resolved(url: str) -> str:
            return url.replace("{storage}", storage_root).replace("{as_of}", as_of)

        marker = resolved(self.ready_marker) if self.ready_marker else None
        return replace(self, dataset=replace(self.dataset, url=resolved(self.dataset.url)), ready_marker=marker)


def read_scenario(document: Any, source: str) -> Scenario:
    """The scenario `document` declares, checked whole; ScenarioError names `source` and the field."""
    fields = _Fields(document, source, "")
    version = fields.take("scenario_version", int)
    if version != SCENARIO_VERSION:
        raise ScenarioError(f"{source}: scenario_version {version}, but this release reads version {SCENARIO_VERSION}")
    name = fields.take("name", str)
    dataset = _dataset(fields.section("dataset"))
    sharding_fields = fields.section("sharding")
    sharding = Sharding(
        tuple(sharding_fields.take("by", list, default=[])), sharding_fields.take("max_rows", int, default=None)
    )
    sharding_fields.done()
    output_fields = fields.section("output")
    output = Output(
        _columns(output_fields.section("columns")),
        tuple(output_fields.take("pass_through", list, default=[])),
        output_fields.take("shape", str, choices=get_args(OutputShape)),
    )
    output_fields.done()
    publishing = None
    if "publishing" in document:
        publishing_fields = fields.section("publishing")
        publishing = Publishing(
            publishing_fields.take("mode", str, choices=get_args(PublishMode)),
            publishing_fields.take("version_column", str),
        )
        publishing_fields.done()
    scenario = Scenario(
        name=name,
        profile=fields.take("profile", str),
        parameters=fields.take("parameters", dict, default={}),
        dataset=dataset,
        sharding=sharding,
        output=output,
        publishing=publishing,
        schedule=fields.take("schedule", str, default=None),
        ready_marker=fields.take("ready_marker", str, default=None),
    )
    fields.done()
    _check_agreement(scenario, source)
    return scenario


def _dataset(fields: "_Fields") -> Dataset:
    dataset = Dataset(
        fields.take("url", str),
        fields.take("format", str, choices=get_args(DatasetFormat)),
        fields.take("layout", str, choices=get_args(DatasetLayout)),
        tuple(fields.take("key", list)),
        _columns(fields.section("columns")),
    )
    fields.done()
    return dataset


def _columns(fields: "_Fields") -> dict[str, Column]:
    columns = {}
    for name in list(fields.document):
        spec = fields.section(name)
        column = Column(
            name,
            spec.take("type", str, choices=COLUMN_TYPES),
            spec.take("nullable", bool, default=False),
            tuple(levels) if (levels := spec.take("levels", list, default=None)) is not None else None,
            spec.take("minimum", float, default=None),
            spec.take("maximum", float, default=None),
        )
        spec.done()
        if (column.type == "categorical") != (column.levels is not None):
            raise ScenarioError(f"{spec.where}: levels are declared for a categorical column, and only for one")
        columns[name] = column
    return columns


def _check_agreement(scenario: Scenario, source: str) -> None:
    """What the sections say of each other: keys, shards and pass-through columns are input columns,
    keys are never null, output columns do not shadow input ones, the version column exists."""
    columns = scenario.dataset.columns
    key = scenario.dataset.key
    problems = [f"dataset.key names {k!r}, which dataset.columns does not declare" for k in key if k not in columns]
    problems += [f"dataset.key column {k!r} is nullable" for k in key if k in columns and columns[k].nullable]
    problems += [f"sharding.by names {c!r}, not an input column" for c in scenario.sharding.by if c not in columns]
    problems += [
        f"output.pass_through names {c!r}, not an input column"
        for c in scenario.output.pass_through
        if c not in columns
    ]
    problems += [
        f"output column {c!r} shadows the input column of that name" for c in scenario.output.columns if c in columns
    ]
    if not scenario.dataset.key:
        problems.append("dataset.key is empty: every row needs a key its result is checked against")
    if scenario.sharding.max_rows is not None and scenario.sharding.max_rows < 1:
        problems.append(f"sharding.max_rows is {scenario.sharding.max_rows}, not a positive number of rows")
    published = {*key, *scenario.output.pass_through, *scenario.output.columns}
    if scenario.publishing and scenario.publishing.version_column not in published:
        problems.append(
            f"publishing.version_column {scenario.publishing.version_column!r} is no column of the output (a key, "
            "pass-through or output column)"
        )
    profile = profile_for(scenario.profile, scenario.parameters, source)
    problems += [f"profile {scenario.profile}: {p}" for p in profile.problems(columns, scenario.output.columns)]
    if problems:
        raise ScenarioError(f"{source}: " + "; ".join(problems))


class _Fields:
    """Takes a JSON object's fields one by one, each checked, and refuses what is left unknown."""

    def __init__(self, document: Any, source: str, where: str):
        self.where = f"{source}: {where}" if where else source
        self.source, self.path = source, where
        if not isinstance(document, dict):
            raise ScenarioError(f"{self.where}: not a JSON object, got {type(document).__name__}")
        self.document, self.taken = document, set()

    def take(self, name: str, kind: type, default: Any = ..., choices: tuple | None = None) -> Any:
        self.taken.add(name)
        if name not in self.document:
            if default is ...:
                raise ScenarioError(f"{self.where}: missing field {self._name(name)}")
            return default
        value = self.document[name]
        fits = isinstance(value, (int, float) if kind is float else kind) and not (
            isinstance(value, bool) and kind is not bool
        )
        if not fits:
            raise ScenarioError(f"{self.where}: field {self._name(name)} is {value!r}, not of type {kind.__name__}")
        if choices is not None and value not in choices:
            raise ScenarioError(f"{self.where}: field {self._name(name)} is {value!r}, not one of {', '.join(choices)}")
        return value

    def section(self, name: str) -> "_Fields":
        self.take(name, dict)
        return _Fields(self.document[name], self.source, self._name(name))

    def done(self) -> None:
        unknown = sorted(set(self.document) - self.taken)
        if unknown:
            raise ScenarioError(f"{self.where}: unknown fields {', '.join(unknown)}")

    def _name(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name
