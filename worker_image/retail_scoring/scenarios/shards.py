"""A scenario's input cut into shards, the unit one scoring task works through: one shard per
value of the sharding columns (hive-style `column=value/` folders), split into consecutive
pieces of at most `max_rows` rows. Planned from the files' metadata alone (Parquet footers), so
planning 50 million rows reads no row."""

import csv as stdlib_csv
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as csv
import pyarrow.dataset as ds

from retail_scoring import storage
from retail_scoring.scenarios.document import Dataset, ScenarioError, Sharding


@dataclass(frozen=True)
class ShardPiece:
    """Rows `first`..`first + rows` of one file."""

    path: str
    first: int
    rows: int


@dataclass(frozen=True)
class Shard:
    label: str  # state=CA/part_001: what error messages and summaries name
    values: dict[str, str]  # the sharding columns' values
    pieces: tuple[ShardPiece, ...]

    @property
    def rows(self) -> int:
        return sum(piece.rows for piece in self.pieces)


# declared type -> the Arrow type a CSV column is read as (Parquet files carry their own)
CSV_TYPES = {
    "integer": pa.int64(), "number": pa.float64(), "string": pa.string(), "categorical": pa.string(),
    "boolean": pa.bool_(), "date": pa.date32(),
}  # fmt: skip


def arrow_dataset(dataset: Dataset, root: str, files: list[str] | None = None) -> ds.Dataset:
    """The dataset's files (or only `files` of it) as Arrow sees them: hive folders' values as
    columns (not dictionaries), CSV columns read as their declared types rather than guessed.
    Arrow's errors (a file missing, a CSV value of another type) are the caller's to name."""
    fs, path = storage.filesystem(dataset.url.replace("{storage}", root))
    partitioning = ds.HivePartitioning.discover(infer_dictionary=False) if dataset.layout == "hive" else None
    file_format = dataset.format
    if dataset.format == "csv":
        types = {name: CSV_TYPES[column.type] for name, column in dataset.columns.items()}
        file_format = ds.CsvFileFormat(convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True))
    if files is None:
        return ds.dataset(path, filesystem=fs, format=file_format, partitioning=partitioning)
    return ds.dataset(files, filesystem=fs, format=file_format, partitioning=partitioning, partition_base_dir=path)


def named_csv_column(error: Exception, fs, path: str | None = None) -> str:
    """Arrow's message for a CSV value it could not convert in `path` (or the file it names), with
    the file and the column's name (Arrow gives the column's number only)."""
    message = str(error)
    column = re.search(r"In CSV column #(\d+)", message)
    named_file = re.search(r"CSV input source '([^']+)'", message)
    path = named_file.group(1) if named_file else path
    if not column or not path:
        return message
    with fs.open(path, "rt") as header:
        names = next(stdlib_csv.reader([header.readline()]))
    number = int(column.group(1))
    name = f" ({names[number]!r})" if number < len(names) else ""
    message = message.replace(column.group(0), f"{column.group(0)}{name}")
    return message if named_file else f"{path}: {message}"


def plan_shards(dataset: Dataset, sharding: Sharding, root: str) -> list[Shard]:
    """The dataset's shards in a stable order (by value, then file, then row)."""
    url = dataset.url.replace("{storage}", root)
    try:
        arrow = arrow_dataset(dataset, root)
    except (FileNotFoundError, OSError, ValueError) as error:
        fs, _ = storage.filesystem(url)
        raise ScenarioError(f"{url}: the scenario's dataset cannot be read: {named_csv_column(error, fs)}") from error
    groups: dict[tuple, list[ShardPiece]] = {}
    for fragment in sorted(arrow.get_fragments(), key=lambda f: f.path):
        values = ds.get_partition_keys(fragment.partition_expression)
        missing = [column for column in sharding.by if column not in values]
        if missing:
            raise ScenarioError(
                f"{url}: {fragment.path} is in no {'/'.join(f'{c}=<value>' for c in missing)} folder, "
                f"but the scenario shards by {', '.join(sharding.by)}"
            )
        key = tuple(str(values[column]) for column in sharding.by)
        groups.setdefault(key, []).append(ShardPiece(fragment.path, 0, fragment.count_rows()))
    shards = []
    for key, pieces in sorted(groups.items()):
        values = dict(zip(sharding.by, key, strict=True))
        name = "/".join(f"{column}={value}" for column, value in values.items()) or "all"
        split = _split(pieces, sharding.max_rows)
        for number, part in enumerate(split):
            label = name if len(split) == 1 else f"{name}/part_{number:03d}"
            shards.append(Shard(label, values, tuple(part)))
    return shards


def _split(pieces: list[ShardPiece], max_rows: int | None) -> list[list[ShardPiece]]:
    """The pieces regrouped, in order, into parts of at most `max_rows` rows (cutting files)."""
    if max_rows is None:
        return [pieces]
    parts, part, room = [], [], max_rows
    for piece in pieces:
        first, left = piece.first, piece.rows
        while left:
            taken = min(left, room)
            part.append(ShardPiece(piece.path, first, taken))
            first, left, room = first + taken, left - taken, room - taken
            if not room:
                parts, part, room = [*parts, part], [], max_rows
    return [*parts, part] if part else parts
