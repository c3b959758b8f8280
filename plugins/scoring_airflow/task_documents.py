"""What the Airflow side passes between its own tasks and triggers: trigger events, the score
task's result, the validation report and the publish result (XCom, asset events, storage), typed
and versioned like the run contract the workers read (retail_scoring.run.contract). A document of
another release, or one missing or mistyping a field, is refused naming it, instead of being
misread by key (a report task cleared after an upgrade reads the score task's older XCom)."""

from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Self, get_args, get_origin, get_type_hints

from retail_scoring.run.contract import CONTRACT_VERSION, VERSION_FIELD, checked_fields
from scoring_airflow.compute.base import TaskStatus


class TaskDocument:
    """A frozen dataclass that travels as a versioned JSON object; lists of dataclasses (the
    tasks' statuses) are read back as such."""

    def to_dict(self) -> dict:
        return {VERSION_FIELD: CONTRACT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, document: Any, source: str) -> Self:
        values = checked_fields(cls, document, source)
        for name, hint in get_type_hints(cls).items():
            item = get_args(hint)[0] if get_origin(hint) is list else None
            if is_dataclass(item):
                values[name] = [item(**value) for value in values[name]]
        return cls(**values)


@dataclass(frozen=True)
class JobEnded(TaskDocument):
    """The scoring job trigger's event: every task of the job ended (`statuses`), or the job could
    not be followed (`error`, the backend's words)."""

    job_id: str
    statuses: list[TaskStatus]
    error: str | None = None


@dataclass(frozen=True)
class SalesWaited(TaskDocument):
    """The sales trigger's event: whether the week's sales arrived before the deadline, and the
    week the sales marker says sales are in through (None: no marker)."""

    week: int
    arrived: bool
    sales_through: int | None


@dataclass(frozen=True)
class ScoreResult(TaskDocument):
    """The score task's result: partitions scored by its job, partitions skipped as already valid,
    and the job's task statuses (the report's timings and cost)."""

    scored: list[str]
    skipped: list[str]
    statuses: list[TaskStatus]


@dataclass(frozen=True)
class ValidationReport(TaskDocument):
    """The validate task's verdict, written to storage (layout.validation_report) and returned:
    every partition's problems by product, or by shard of a scenario's run (`summary` for the
    partition as a whole); `checked` counts the products or shards."""

    run_id: str
    valid: bool
    checked: int
    problem_count: int
    partitions: dict[str, dict[str, list[str]]]
    checked_at: str


@dataclass(frozen=True)
class PublishResult(TaskDocument):
    """The publish task's result and its asset event's extra: how many products it published under
    the origin, how many of them are now in the current forecast, and the index to read."""

    origin: int
    products: int
    current: int
    run_id: str
    index: str


@dataclass(frozen=True)
class ScenarioPublishResult(TaskDocument):
    """A scenario run's publish result and its asset event's extra: the rows it published as of its
    date, the current table's rows afterwards, and the index to read."""

    scenario: str
    as_of: str
    run_id: str
    published_rows: int
    current_rows: int
    index: str
