"""Series of a product table: rows of one (sku, store) laid end to end in week order, the way
every table is read and checked (numpy over sorted rows: a groupby costs more than the check)."""

import numpy as np
import pandas as pd

from retail_scoring.data.schema import ROW_KEY
from retail_scoring.data.tables import is_sorted_by_row_key
from retail_scoring.errors import InputDataError


def sorted_by_series(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` ordered by (sku, store, week). Product files are written sorted, so this sorts only
    when one is not."""
    return frame if is_sorted_by_row_key(frame) else frame.sort_values(list(ROW_KEY), kind="stable")


def series_bounds(sorted_frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """First and last row of every (sku, store) series of a frame sorted by series."""
    sku, store = sorted_frame["sku"].to_numpy(), sorted_frame["store"].to_numpy()
    starts = np.flatnonzero(np.r_[True, (sku[1:] != sku[:-1]) | (store[1:] != store[:-1])])
    return starts, np.r_[starts[1:], len(sku)] - 1


def check_series_reach_origin(
    sorted_frame: pd.DataFrame, starts: np.ndarray, ends: np.ndarray, origin: int, weeks: int, source: str, needs: str
) -> None:
    """Every series (rows `starts`..`ends` of a frame sorted by series) has sales in the origin week
    and at least `weeks` weeks of them; the error names the first series that does not and who
    `needs` them."""
    week = sorted_frame["week"].to_numpy()
    short = (week[ends] != origin) | (ends - starts + 1 < weeks)
    if short.any():
        first = starts[short.argmax()]
        raise InputDataError(
            f"{source}: series sku={sorted_frame['sku'].iat[first]} store={sorted_frame['store'].iat[first]} lacks "
            f"the {weeks} weeks of sales up to origin week {origin} that {needs}"
        )
