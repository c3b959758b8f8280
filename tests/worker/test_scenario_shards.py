"""A hive-style dataset is cut into shards by its folders' values and at most max_rows rows each,
from the files' metadata, every row in exactly one shard."""

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from retail_scoring.scenarios.document import Column, Dataset, ScenarioError, Sharding
from retail_scoring.scenarios.shards import plan_shards


def write_by_store(reference_series, folder, rows_per_file: int) -> Dataset:
    """The reference series as hive-style Parquet, a folder per store, files of `rows_per_file`."""
    table = pa.Table.from_pandas(reference_series[reference_series["store"] <= 3], preserve_index=False)
    ds.write_dataset(
        table, folder, format="parquet", partitioning=["store"], partitioning_flavor="hive",
        max_rows_per_file=rows_per_file, max_rows_per_group=rows_per_file,
    )  # fmt: skip
    columns = {"sku": Column("sku", "integer"), "store": Column("store", "integer"), "week": Column("week", "integer")}
    return Dataset(f"file://{folder}", "parquet", "hive", ("sku", "store", "week"), columns)


def test_shards_are_the_folders_values_cut_at_max_rows_and_hold_every_row_once(reference_series, tmp_path):
    dataset = write_by_store(reference_series, tmp_path / "series", rows_per_file=700)
    per_store = reference_series[reference_series["store"] <= 3].groupby("store").size()
    shards = plan_shards(dataset, Sharding(("store",), 1000), "file:///unused")
    assert [s.values["store"] for s in shards][:1] == ["1"] and all(s.rows <= 1000 for s in shards)
    for store, rows in per_store.items():
        mine = [s for s in shards if s.values["store"] == str(store)]
        assert sum(s.rows for s in mine) == rows, f"store {store}: every row in one shard"
        assert [s.label for s in mine][:2] == [f"store={store}/part_000", f"store={store}/part_001"]
    whole = plan_shards(dataset, Sharding(("store",), None), "file:///unused")
    assert [s.label for s in whole] == ["store=1", "store=2", "store=3"]


def test_a_file_outside_the_sharding_folders_is_refused_naming_it(reference_series, tmp_path):
    dataset = write_by_store(reference_series, tmp_path / "series", rows_per_file=10_000)
    (tmp_path / "series" / "stray.parquet").write_bytes((next((tmp_path / "series").rglob("*.parquet"))).read_bytes())
    with pytest.raises(ScenarioError, match=r"stray.parquet is in no store=<value> folder, but the scenario shards by"):
        plan_shards(dataset, Sharding(("store",), None), "file:///unused")
