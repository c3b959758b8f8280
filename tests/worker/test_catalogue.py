"""The product catalogue: written with the data, rewritten by ingest, rebuilt by the `catalogue`
command for data written by others; the three agree."""

import pandas as pd

from retail_scoring.catalogue import build_catalogue, read_catalogue
from retail_scoring.cli import main
from retail_scoring.dataset import ingest_next_week
from tests.conftest import TEST_STORES


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
