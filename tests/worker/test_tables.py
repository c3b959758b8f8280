"""The table checks' fast paths: a sorted file skips the duplicate search only when its keys are
strictly ascending, so a duplicate row right after its twin is still found."""

import pandas as pd
import pytest

from retail_scoring.data.tables import check_table, is_sorted_by_row_key
from retail_scoring.errors import InputDataError


def keys(*rows: tuple[int, int, int]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sku", "store", "week"])


def test_strictly_ascending_keys_are_sorted_and_repeated_or_descending_ones_are_not():
    assert is_sorted_by_row_key(keys((1, 1, 1), (1, 1, 2), (1, 2, 0), (2, 0, 0)))
    assert not is_sorted_by_row_key(keys((1, 1, 1), (1, 1, 1)))
    assert not is_sorted_by_row_key(keys((1, 1, 2), (1, 1, 1)))
    assert not is_sorted_by_row_key(keys((1, 2, 1), (1, 1, 5)))


def test_a_duplicate_row_next_to_its_twin_in_a_sorted_file_is_refused(small_reference):
    history = small_reference[small_reference["store"] == 1].sort_values(["sku", "store", "week"])
    doubled = pd.concat([history.iloc[:11], history.iloc[10:]], ignore_index=True)  # row 10 twice, in order
    check_table(history.reset_index(drop=True), "history", "history.parquet")
    with pytest.raises(InputDataError, match=r"history.parquet: duplicate \(sku, store, week\) rows, first at sku="):
        check_table(doubled, "history", "history.parquet")
