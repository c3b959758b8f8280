"""A scenario's input cut into shards, the unit one scoring task works through: one shard per
value of the sharding columns (hive-style `column=value/` folders), split into consecutive
pieces of at most `max_rows` rows. Planned from the files' metadata alone (Parquet footers), so
planning 50 million rows reads no row."""

from dataclasses import dataclass

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


def plan_shards(dataset: Dataset, sharding: Sharding, root: str) -> list[Shard]:
    """The dataset's shards in a stable order (by value, then file, then row)."""
    url = dataset.url.replace("{storage}", root)
    fs, path = storage.filesystem(url)
    partitioning = "hive" if dataset.layout == "hive" else None
    try:
        arrow = ds.dataset(path, filesystem=fs, format=dataset.format, partitioning=partitioning)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise ScenarioError(f"{url}: the scenario's dataset cannot be read: {error}") from error
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
