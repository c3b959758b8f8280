"""The run contract: the documents that cross between Airflow and the workers, defined once here
and read on both sides through these types, never by string keys.

- `RunPlan`: what planning decided (ids, counts, the pinned package content, where to compute);
  Airflow's tasks pass it to each other through XCom, the same size for 90 products or 100,000.
- `RunManifest`: the plan plus every partition's products and each product's series count,
  written to storage by planning, read by each worker (`score --run-id --partition`).
- `PartitionSummary`: what one scoring task did, written by the worker, read by Airflow's tasks
  instead of every product's file.
- `ScenarioRunPlan`, `ScenarioRunManifest`, `ScenarioPartitionSummary`: the same three for a run of
  a scenario (retail_scoring.scenarios), whose unit of work is a shard of its table.

Each document is a JSON object carrying `contract_version`. A reader refuses a document of another
version (an Airflow deployment and a worker image of different releases, a run planned before an
upgrade), naming it, instead of misreading it: bump CONTRACT_VERSION whenever a field is added,
removed or changes meaning."""

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self

import numpy as np

from retail_scoring.errors import ScoringError
from retail_scoring.packages.base import Engine, OutputContract
from retail_scoring.run.accuracy import add_sums
from retail_scoring.run.calibration import profile_document
from retail_scoring.scenarios.shards import Shard, ShardPiece
from retail_scoring.storage import RecordedFile
from retail_scoring.typed_json import check_types

CONTRACT_VERSION = 5
VERSION_FIELD = "contract_version"


class ContractError(ScoringError):
    """A run document of another contract version, or one missing what its version requires."""


def parse_json(data: bytes, source: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as error:
        raise ContractError(f"{source}: not a run contract document: not JSON ({error})") from error


def check_document(document: Any, names: list[str], source: str) -> None:
    """`document` is a JSON object of this contract version with exactly the fields `names`."""
    if not isinstance(document, dict):
        raise ContractError(f"{source}: not a run contract document (a JSON object), got {type(document).__name__}")
    version = document.get(VERSION_FIELD)
    if version != CONTRACT_VERSION:
        raise ContractError(
            f"{source}: run contract version {version!r}, but this release reads version {CONTRACT_VERSION}: "
            "Airflow's plugins and the worker image must be of the same release; plan the run again"
        )
    missing = [name for name in names if name not in document]
    unknown = sorted(set(document) - set(names) - {VERSION_FIELD})
    if missing or unknown:
        differences = [
            f"{what} {', '.join(keys)}" for what, keys in (("missing", missing), ("unknown", unknown)) if keys
        ]
        raise ContractError(f"{source}: not a version {CONTRACT_VERSION} run document: {'; '.join(differences)}")


def checked_fields(cls: type, document: Any, source: str) -> dict[str, Any]:
    """The fields of `cls` (a contract dataclass) as `document` holds them, refused unless it is a
    document of this version with exactly those fields, each of its declared type."""
    check_document(document, [f.name for f in fields(cls)], source)
    check_types(cls, document, source, ContractError)
    return {f.name: document[f.name] for f in fields(cls)}


@dataclass(frozen=True)
class RunPlan:
    """One run as planned. `backend_config` is the compute backend's own (plugins/compute), opaque
    to the workers; `output` is the package's output contract, which the report and accuracy read."""

    run_id: str
    airflow_run_id: str
    run_date: str
    origin: int
    model_version: str
    model_manifest_sha256: str
    package_kind: str
    output: OutputContract
    storage_root: str
    run_manifest: str
    compute_backend: str
    backend_config: dict
    pool_id: str
    pool_size: int
    vm_size: str
    force: bool
    publish: bool
    max_forecast_ratio: float
    engine: Engine
    engine_threads: int | None
    worker_memory_mb: int  # each worker's limit (FORECAST_WORKER_MEMORY_MB), enforced by the worker
    product_count: int
    partition_count: int
    training_weeks: tuple[int, int] | None  # the package's training window (run.accuracy.forecast_sample)
    calibration_url: str | None  # the calibration file the workers apply (run.calibration), None: none
    calibration_sha256: str | None  # its content as planning read it; the workers refuse any other
    profile_residuals: bool  # a backtest's runs: summaries carry the residual profile calibration learns from

    def to_dict(self) -> dict:
        return {VERSION_FIELD: CONTRACT_VERSION, **asdict(self), "output": self.output.to_dict()}

    @classmethod
    def from_dict(cls, document: Any, source: str) -> Self:
        values = checked_fields(cls, document, source)
        weeks = values["training_weeks"]
        output = OutputContract.from_dict(values["output"])
        return cls(**{**values, "output": output, "training_weeks": tuple(weeks) if weeks else None})


@dataclass(frozen=True)
class RunManifest:
    """The plan and what only the workers need: each partition's products (label -> products) and
    each product's planned series count (None: the catalogue could not count them)."""

    plan: RunPlan
    partitions: dict[str, list[int]]
    series_per_product: dict[str, int | None]

    def to_json(self) -> bytes:
        plan, partitions, series = self.plan.to_dict(), self.partitions, self.series_per_product
        document = {
            VERSION_FIELD: CONTRACT_VERSION,
            "plan": plan,
            "partitions": partitions,
            "series_per_product": series,
        }
        return json.dumps(document).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Self:
        document = parse_json(data, source)
        check_document(document, ["plan", "partitions", "series_per_product"], source)
        plan = RunPlan.from_dict(document["plan"], f"{source} (its plan)")
        partitions, series = document["partitions"], document["series_per_product"]
        check_types(cls, {"partitions": partitions, "series_per_product": series}, source, ContractError)
        products = sorted(str(product) for group in partitions.values() for product in group)
        if products != sorted(series) or (len(partitions), len(products)) != (plan.partition_count, plan.product_count):
            raise ContractError(
                f"{source}: its partitions ({len(partitions)}, {len(products)} products) and series_per_product "
                f"({len(series)} products) do not agree with each other or with its plan "
                f"({plan.partition_count} partitions, {plan.product_count} products)"
            )
        return cls(plan, partitions, series)


@dataclass
class PartitionSummary:
    """What a scoring task did, written once as the partition's summary: the products it was given,
    the package content it scored with, the forecasts it wrote, every product's problems, accuracy
    sums, and where the seconds and memory went. Airflow's tasks read this, never the forecasts."""

    products: list[int] = field(default_factory=list)
    model_load_s: float = 0.0
    features_s: float = 0.0
    conversion_s: float = 0.0
    predict_s: float = 0.0
    write_s: float = 0.0
    predict_calls: int = 0
    rows: int = 0
    quantile_count: int = 0
    peak_rss_mb: float = 0.0
    package_sha256: str = ""  # the manifest sha256 of the package content that scored these forecasts
    calibration_sha256: str | None = None  # the calibration file's sha256 that moved them, None: none
    products_scored: list[int] = field(default_factory=list)
    forecasts: dict[str, RecordedFile] = field(default_factory=dict)  # product -> its forecast file as written
    model_outputs: dict[str, RecordedFile] = field(default_factory=dict)  # calibrated runs: what the package made
    failures: list[str] = field(default_factory=list)  # products not scored, and why
    problems: dict[str, list[str]] = field(default_factory=dict)  # product -> what its written forecast breaks
    accuracy: dict = field(default_factory=dict)  # run.accuracy.accuracy_sums over the partition's forecasts
    residuals: dict = field(default_factory=dict)  # profile_document of what the package made, when asked for

    def __post_init__(self) -> None:
        self._residual_sums: np.ndarray | None = None  # added up densely, written as `residuals`
        self._quantiles: tuple[float, ...] = ()

    @property
    def scoring_operations(self) -> int:
        return self.rows * self.quantile_count

    def to_json(self) -> bytes:
        if self._residual_sums is not None:
            self.residuals = profile_document(self._residual_sums, self._quantiles)
        return json.dumps({VERSION_FIELD: CONTRACT_VERSION, **asdict(self)}).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Self:
        document = parse_json(data, source)
        values = checked_fields(cls, document, source)
        recorded = {
            name: {product: RecordedFile(**written) for product, written in values[name].items()}
            for name in ("forecasts", "model_outputs")
        }
        return cls(**{**values, **recorded})

    def add_accuracy(self, sums: dict, residual_sums: np.ndarray | None, quantiles: tuple[float, ...]) -> None:
        """Add a forecast's accuracy sums and residual sums (run.calibration.residual_sums; None:
        the run profiles no residuals)."""
        self.accuracy = add_sums(self.accuracy, sums)
        if residual_sums is None:
            return
        total = self._residual_sums
        self._residual_sums = residual_sums if total is None else total + residual_sums
        self._quantiles = quantiles

    def summary(self) -> str:
        total = self.model_load_s + self.features_s + self.conversion_s + self.predict_s + self.write_s
        return (
            f"model_load_s={self.model_load_s:.3f} features_s={self.features_s:.3f} "
            f"conversion_s={self.conversion_s:.3f} predict_s={self.predict_s:.3f} write_s={self.write_s:.3f} "
            f"predict_calls={self.predict_calls} rows={self.rows} "
            f"scoring_ops_per_s={self.scoring_operations / total if total else 0:.0f} "
            f"peak_rss_mb={self.peak_rss_mb:.0f}"
        )


@dataclass(frozen=True)
class ScenarioRunPlan:
    """One run of a scenario as planned: which scenario document (the run's own copy, pinned by
    sha256), which package content, the as-of date it scores, where to compute; counts only."""

    run_id: str
    airflow_run_id: str
    run_date: str
    as_of: str  # ISO date: what `{as_of}` in the scenario's URLs stands for, and the context R gets
    scenario_name: str
    scenario_url: str  # layout.run_scenario: the document planning checked, copied into the run
    scenario_sha256: str
    model_version: str
    model_manifest_sha256: str
    storage_root: str
    run_manifest: str
    compute_backend: str
    backend_config: dict
    pool_id: str
    pool_size: int
    vm_size: str
    force: bool
    publish: bool
    worker_memory_mb: int
    row_count: int
    shard_count: int
    partition_count: int

    def to_dict(self) -> dict:
        return {VERSION_FIELD: CONTRACT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, document: Any, source: str) -> Self:
        return cls(**checked_fields(cls, document, source))


@dataclass(frozen=True)
class ScenarioRunManifest:
    """The plan, every shard (numbered by its place in `shards`) and each partition's shard numbers."""

    plan: ScenarioRunPlan
    shards: list[Shard]
    partitions: dict[str, list[int]]

    def to_json(self) -> bytes:
        document = {
            VERSION_FIELD: CONTRACT_VERSION,
            "plan": self.plan.to_dict(),
            "shards": [asdict(shard) for shard in self.shards],
            "partitions": self.partitions,
        }
        return json.dumps(document).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Self:
        document = parse_json(data, source)
        check_document(document, ["plan", "shards", "partitions"], source)
        plan = ScenarioRunPlan.from_dict(document["plan"], f"{source} (its plan)")
        check_types(cls, {"shards": document["shards"], "partitions": document["partitions"]}, source, ContractError)
        shards = [
            Shard(s["label"], s["values"], tuple(ShardPiece(**piece) for piece in s["pieces"]))
            for s in document["shards"]
        ]
        numbers = sorted(number for group in document["partitions"].values() for number in group)
        counts = (len(document["partitions"]), len(shards), sum(shard.rows for shard in shards))
        if numbers != list(range(len(shards))) or counts != (plan.partition_count, plan.shard_count, plan.row_count):
            raise ContractError(
                f"{source}: its partitions ({len(document['partitions'])}, {len(numbers)} shard numbers) and shards "
                f"({len(shards)}, {counts[2]} rows) do not give every shard to one partition or do not agree with "
                f"its plan ({plan.partition_count} partitions, {plan.shard_count} shards, {plan.row_count} rows)"
            )
        return cls(plan, shards, document["partitions"])


@dataclass
class ScenarioPartitionSummary:
    """What a scenario's scoring task did, written once: the shards it was given, the scenario and
    package content it scored with, each scored shard's output file as written and its rows, why
    each other shard has no output (nothing of it is written), the profile's metric sums over the
    scored shards, and where the seconds and memory went."""

    shards: list[int] = field(default_factory=list)
    scenario_sha256: str = ""
    package_sha256: str = ""  # empty: the package did not load (`error` says why)
    outputs: dict[str, RecordedFile] = field(default_factory=dict)  # shard number -> its output file
    rows: dict[str, int] = field(default_factory=dict)  # shard number -> its output's rows
    failures: dict[str, str] = field(default_factory=dict)  # shard number -> why it has no output
    error: str | None = None  # what stopped the partition as a whole (the package, storage)
    metric_sums: dict = field(default_factory=dict)  # scenarios.profiles: summed over the scored shards
    model_load_s: float = 0.0
    read_s: float = 0.0
    score_s: float = 0.0
    write_s: float = 0.0
    peak_rss_mb: float = 0.0

    def to_json(self) -> bytes:
        return json.dumps({VERSION_FIELD: CONTRACT_VERSION, **asdict(self)}).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Self:
        document = parse_json(data, source)
        values = checked_fields(cls, document, source)
        outputs = {shard: RecordedFile(**written) for shard, written in values["outputs"].items()}
        return cls(**{**values, "outputs": outputs})
