"""A shard's rows as the scenario declares them: read from its pieces (row ranges of files, with
the hive folders' values as columns), every declared column checked for its type, its nulls, its
levels and its range, and the key for completeness and uniqueness. A refusal names the shard, the
column, the first offending row's key and the rule, so that the user can find the row."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retail_scoring import storage
from retail_scoring.errors import ScoringError
from retail_scoring.scenarios.document import Column, Dataset
from retail_scoring.scenarios.shards import Shard, arrow_dataset, named_csv_column

# declared type -> the Arrow types that hold it as declared (strings are read into levels by value)
_ARROW_TYPES = {
    "integer": pa.types.is_integer,
    "number": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t),
    "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "categorical": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t),
    "boolean": pa.types.is_boolean,
    "date": pa.types.is_date,
}


class ShardDataError(ScoringError):
    """A shard's rows break what the scenario declares of them: running again cannot help."""


def read_shard(dataset: Dataset, shard: Shard, root: str) -> pa.Table:
    """The shard's rows, only the declared columns, in the order of its pieces; only its own files
    are opened."""
    fs, _ = storage.filesystem(dataset.url.replace("{storage}", root))
    files = list(dict.fromkeys(piece.path for piece in shard.pieces))
    try:
        arrow = arrow_dataset(dataset, root, files)
    except FileNotFoundError as error:
        raise ShardDataError(
            f"shard {shard.label}: a file of it is gone since the run was planned ({error})"
        ) from error
    except pa.ArrowInvalid as error:  # Arrow read a CSV file's first block for its columns; the message names it
        raise ShardDataError(f"shard {shard.label}: {named_csv_column(error, fs)}") from error
    fragments = {fragment.path: fragment for fragment in arrow.get_fragments()}
    tables = []
    for piece in shard.pieces:
        try:
            tables.append(fragments[piece.path].to_table(schema=arrow.schema).slice(piece.first, piece.rows))
        except pa.ArrowInvalid as error:  # a CSV value that is not of its column's declared type
            raise ShardDataError(f"shard {shard.label}: {named_csv_column(error, fs, piece.path)}") from error
    table = pa.concat_tables(tables) if tables else arrow.schema.empty_table()
    missing = [name for name in dataset.columns if name not in table.column_names]
    if missing:
        raise ShardDataError(
            f"shard {shard.label}: column {', '.join(repr(c) for c in missing)} declared by the scenario is missing "
            f"from {shard.pieces[0].path if shard.pieces else dataset.url}"
        )
    return table.select(list(dataset.columns))


def checked_table(table: pa.Table, columns: dict[str, Column], key: tuple[str, ...], where: str) -> pa.Table:
    """`table` with each of `columns` in its declared form (categoricals and partition values as
    strings), refused on the first broken rule; its other columns as they are. `where` names the
    shard (or the output) for messages."""
    typed = {name: table[name] for name in table.column_names}
    typed |= {name: _checked_column(table, column, key, where) for name, column in columns.items()}
    table = pa.table(typed)
    duplicated = _duplicated(table, key)
    if duplicated is not None:
        raise ShardDataError(f"{where}: key {_key(table, key, duplicated)} appears more than once")
    return table


def _checked_column(table: pa.Table, column: Column, key: tuple[str, ...], where: str) -> pa.ChunkedArray:
    values = table[column.name]
    if column.type in ("string", "categorical") and pa.types.is_integer(values.type):
        values = values.cast(pa.string())  # a hive folder's value read as a number
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not _ARROW_TYPES[column.type](values.type):
        raise ShardDataError(f"{where}: column {column.name!r} is declared {column.type}, but holds {values.type}")

    def refuse(mask, rule: str) -> None:
        first = _first(mask)
        if first is not None:
            value = values[first].as_py()
            raise ShardDataError(
                f"{where}: column {column.name!r} at {_key(table, key, first)}: {value!r} breaks the rule {rule}"
            )

    if not column.nullable:
        refuse(pc.is_null(values), "not null")
    if column.levels is not None:
        unknown = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=pa.array(column.levels))))
        refuse(unknown, f"one of {list(column.levels)}")  # a null is the nullable rule's to judge
    if column.minimum is not None:
        refuse(pc.less(values, column.minimum), f">= {column.minimum:g}")
    if column.maximum is not None:
        refuse(pc.greater(values, column.maximum), f"<= {column.maximum:g}")
    if column.type == "number" and pa.types.is_floating(values.type):
        refuse(pc.invert(pc.is_finite(values)), "a finite number")
    return values


def _first(mask) -> int | None:
    """The first row where `mask` is true (nulls in the mask: false)."""
    hits = pc.indices_nonzero(pc.fill_null(mask, False))
    return hits[0].as_py() if len(hits) else None


def _duplicated(table: pa.Table, key: tuple[str, ...]) -> int | None:
    """The first row whose key an earlier row has too, or None."""
    if len(table) == len(table.group_by(list(key)).aggregate([])):
        return None
    frame = table.select(list(key)).to_pandas()
    return int(np.flatnonzero(frame.duplicated().to_numpy())[0])


def _key(table: pa.Table, key: tuple[str, ...], row: int) -> str:
    return ", ".join(f"{name}={table[name][row].as_py()}" for name in key)
