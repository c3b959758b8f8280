"""Scoring one shard of a tabular scenario (one output row per input row) with a package's R code:

    load_models(model_dir)           called once per task, returns whatever `score` needs
    score(models, batch, context)    returns a data.frame with the scenario's output columns, a row
                                     per row of `batch`, in its order

`batch` holds the input columns the package's manifest names, as the scenario types them
(factors with the declared levels, NA for nulls, Date for dates); `context` is a list of the
scenario's name, the shard's label and the as-of date. The worker attaches the keys and
pass-through columns itself: R need not return them, and if it does they must be the input's, row
for row. Before anything is kept, the output is checked against the scenario's output columns,
row by row with the row's key."""

from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pyarrow as pa

from retail_scoring.packages.rscript import PackageCodeError, call_package_function, source_functions
from retail_scoring.scenarios.document import Scenario
from retail_scoring.scenarios.profiles import profile_for
from retail_scoring.scenarios.table import ShardDataError, checked_table


@dataclass(frozen=True)
class ShardResult:
    output: pa.Table  # the keys, the pass-through columns, the output columns
    metric_sums: dict  # the profile's sums over the rows whose actual is known


@dataclass(frozen=True)
class TableModel:
    """A package's R code loaded once per task: its score(), what its load_models() returned, and
    the input columns it reads (only those reach R: a label the package does not ask for stays out)."""

    where: str  # the package, for messages
    score: object
    models: object
    input: tuple[str, ...]

    @classmethod
    def load(cls, folder: Path, script: str, where: str, input_columns: tuple[str, ...]) -> Self:
        files = [path.name for path in folder.iterdir() if path.is_file()]
        functions = source_functions(folder / script, ("load_models", "score"), where, files)
        models = call_package_function(functions["load_models"], str(folder), what=f"{where}: {script}: load_models()")
        return cls(f"{where}: {script}", functions["score"], models, input_columns)


def score_shard(scenario: Scenario, model: TableModel, batch: pa.Table, shard: str, as_of: str | None) -> ShardResult:
    """`batch` (the shard's rows, checked by table.checked_table) scored and its output checked;
    ShardDataError names the shard, and the column, row key and rule or R's message."""
    from retail_scoring import rsession

    columns = scenario.dataset.columns
    arguments = (
        rsession.declared_table_to_r(batch, {name: (columns[name].type, columns[name].levels) for name in model.input}),
        rsession.ro.ListVector({"scenario": scenario.name, "shard": shard, "as_of": as_of or rsession.ro.NULL}),
    )
    try:
        value = call_package_function(
            model.score, model.models, *arguments, what=f"shard {shard}: {model.where}: score()"
        )
    except PackageCodeError as error:
        raise ShardDataError(str(error)) from error
    returned = _returned_columns(value, len(batch), scenario, shard, model.where)
    key = scenario.dataset.key
    for name in key:
        if name in returned and not _same_values(returned[name], batch[name].combine_chunks()):
            raise ShardDataError(f"shard {shard}: {model.where}: score() changed the key column {name!r}")
    kept = [*key, *(c for c in scenario.output.pass_through if c not in key)]
    output = batch.select(kept)
    for name in scenario.output.columns:
        output = output.append_column(name, returned[name])
    output = checked_table(output, scenario.output.columns, key, f"shard {shard}: output of {model.where}: score()")
    profile = profile_for(scenario.profile, scenario.parameters, scenario.name)
    return ShardResult(output, profile.metric_sums(*profile.observed(batch, output)))


def _same_values(returned: pa.Array, given: pa.Array) -> bool:
    """Whether R gave back the key column it was given (a number for a date is not the date)."""
    try:
        return returned.equals(given.cast(returned.type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _returned_columns(value, rows: int, scenario: Scenario, shard: str, where: str) -> dict[str, pa.Array]:
    """What score() returned, refused unless it is a data.frame of `rows` rows with every output
    column and no column but those and the keys; checked in R before any of it is converted."""
    from retail_scoring import rsession

    where = f"shard {shard}: {where}: score()"
    if not rsession.r_function("is.data.frame")(value)[0]:
        kind = rsession.r_function("function(x) class(x)[1]")(value)[0]
        raise ShardDataError(f"{where} returned a {kind}, not a data.frame")
    names = list(rsession.r_function("names")(value))
    returned_rows = int(rsession.r_function("nrow")(value)[0])
    if returned_rows != rows:
        raise ShardDataError(f"{where} returned {returned_rows} rows for the {rows} rows of the batch: one row per row")
    missing = [c for c in scenario.output.columns if c not in names]
    unknown = [c for c in names if c not in scenario.output.columns and c not in scenario.dataset.key]
    if missing or unknown:
        raise ShardDataError(
            f"{where} returned the columns {names}; the scenario's output is {list(scenario.output.columns)}"
            + (f" (the keys {list(scenario.dataset.key)} may be returned unchanged)" if unknown else "")
        )
    arrays = rsession.r_columns_to_arrow(value, names)
    unreadable = [name for name, array in arrays.items() if array is None]
    if unreadable:
        raise ShardDataError(f"{where} returned the column {unreadable[0]!r} as no plain R vector")
    return arrays
