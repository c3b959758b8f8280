"""The product catalogue: written with the data, rewritten by ingest, rebuilt by the `catalogue`
command for data written by others; the three agree. A catalogue older than the data is refused
by name, by planning and by the worker."""

import shutil

import pandas as pd
import pytest

from retail_scoring import storage
from retail_scoring.cli import main
from retail_scoring.data.catalogue import build_catalogue, read_catalogue
from retail_scoring.data.dataset import ingest_next_week, record_sales_through
from retail_scoring.errors import InputDataError, ScoringError
from retail_scoring.run.scoring import ScoringJob, score_partition
from tests.conftest import TEST_STORES, TINY_MODELS, local_path


def test_the_catalogue_written_with_the_data_is_what_a_rescan_finds(layout):
    written = read_catalogue(layout)
    assert written["product"].tolist() == [1, 2, 3]
    assert written["series"].tolist() == [TEST_STORES * 11] * 3
    assert written["skus"].map(list).tolist() == [list(range(1, 12)), list(range(12, 23)), list(range(23, 34))]
    assert written["problem"].isna().all()
    assert build_catalogue(layout) == 3
    pd.testing.assert_frame_equal(read_catalogue(layout), written)


def test_ingest_moves_every_products_planned_weeks_in_the_catalogue(layout):
    before = read_catalogue(layout)
    assert ingest_next_week(layout) == 108
    after = read_catalogue(layout)
    assert (after["planned_through"] == before["planned_through"] + 1).all()
    assert (after["history_start"] == before["history_start"]).all()
    build_catalogue(layout)
    pd.testing.assert_frame_equal(read_catalogue(layout), after)


def test_the_catalogue_command_rebuilds_it_and_says_how_many_products(layout, capsys):
    assert main(["catalogue", "--storage", layout.root]) == 0
    assert capsys.readouterr().out.strip() == f"{layout.catalogue()}: 3 products"


def stale_message(layout) -> str:
    return f"write it with `retail-scoring catalogue --storage {layout.root}`"


def test_a_product_whose_files_were_replaced_by_another_products_is_refused_as_stale(layout):
    """product_002's tables replaced by copies of product_001's, the catalogue not rebuilt: the
    worker refuses it by name, and the other products are scored."""
    for table in ("history", "futurex"):
        shutil.copy(local_path(layout.product_file(1, table)), local_path(layout.product_file(2, table)))
    with pytest.raises(ScoringError, match="1 of 2 products failed") as refused:
        score_partition(ScoringJob(layout, [2, 3], 107, TINY_MODELS, "copied"))
    assert f"{layout.product_file(2, 'history')}: sku 1 is not one of product_002's SKUs" in str(refused.value)
    assert stale_message(layout) in str(refused.value)
    assert len(storage.list_names(layout.forecasts_dir("copied"))) == 1, "product 3 is scored"


def test_a_product_relabelled_or_rewritten_since_the_catalogue_is_refused_as_stale(layout):
    history = local_path(layout.product_file(2, "history"))
    frame = pd.read_parquet(history)
    frame.to_parquet(history, index=False)  # the same rows, written again: another file
    with pytest.raises(ScoringError, match=r"product_002/history.parquet: changed since the product catalogue"):
        score_partition(ScoringJob(layout, [2], 107, TINY_MODELS, "rewritten"))
    build_catalogue(layout)
    score_partition(ScoringJob(layout, [2], 107, TINY_MODELS, "rewritten"))
    futurex = local_path(layout.product_file(3, "futurex"))
    relabelled = pd.read_parquet(futurex)
    relabelled["sku"] = relabelled["sku"] - 22  # product_001's SKUs
    relabelled.to_parquet(futurex, index=False)
    with pytest.raises(ScoringError, match=r"product_003/futurex.parquet: sku 1 is not one of product_003's SKUs"):
        score_partition(ScoringJob(layout, [3], 107, TINY_MODELS, "relabelled"))


def test_a_catalogue_older_than_the_landed_sales_is_refused_naming_the_command(layout):
    record_sales_through(layout, 108)  # a week landed by something that did not rebuild the catalogue
    with pytest.raises(InputDataError) as refused:
        read_catalogue(layout)
    assert "the product catalogue is stale: built when sales were in through week 107" in str(refused.value)
    assert stale_message(layout) in str(refused.value)
    build_catalogue(layout)
    assert read_catalogue(layout).attrs["sales_through"] == 108
