"""Every kind of bad product file: the worker exits 2 naming file and fault; good products are kept."""

import numpy as np
import pandas as pd
import pytest

from retail_scoring import storage
from retail_scoring.data.catalogue import build_catalogue
from tests.conftest import local_path
from tests.worker.test_cli_errors import score


def rewrite(layout, table: str, change) -> str:
    """Rewrite product 2's table, then its catalogue, as a writer of product data must."""
    path = local_path(layout.product_file(2, table))
    change(pd.read_parquet(path)).to_parquet(path, index=False)
    build_catalogue(layout)
    return str(path)


def replace_file(layout, table: str, suffix: str, write) -> str:
    parquet = local_path(layout.product_file(2, table))
    target = parquet.with_suffix(f".{suffix}")
    write(pd.read_parquet(parquet), parquet, target)
    if target != parquet:
        parquet.unlink()
    build_catalogue(layout)
    return str(target)


def with_gap(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~((frame["store"] == 3) & (frame["week"] == 50))]


def short_series(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~((frame["store"] == 4) & (frame["week"] < 105))]


def duplicated_row(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[10]]])


def unknown_store(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame[frame["store"] == 1].assign(store=99)])


HISTORY_CASES = {
    "extra-text-column": (lambda f: f.assign(promo="yes"), r"column 'promo' must be numeric, found"),
    "extra-column-with-gaps": (
        lambda f: f.assign(promo=np.where(f["week"] == 50, np.nan, 1.0)),
        r"column 'promo' has missing values",
    ),
    "wrong-dtype": (lambda f: f.assign(price1=f["price1"].astype(str)), r"column 'price1' must be numeric"),
    "duplicate-rows": (duplicated_row, r"duplicate \(sku, store, week\) rows"),
    "gap-in-weeks": (with_gap, r"store=3 has gaps in its weekly history"),
    "negative-price": (lambda f: f.assign(price7=-f["price7"]), r"column 'price7' has negative prices"),
    "fewer-than-5-weeks": (short_series, r"store=4 lacks the 5 weeks of sales up to origin week 107"),
    "unknown-sku": (lambda f: f.assign(base_sku=f["base_sku"].where(f.index != 3, 13)), r"unknown base_sku 13"),
    "infinite-sales": (
        lambda f: f.assign(sales=f["sales"].where(f.index != 8, np.inf)),
        r"column 'sales' holds inf, not a finite number of at most 1e\+09, first at sku=",
    ),
    "absurd-price": (
        lambda f: f.assign(price3=f["price3"].where(f.index != 8, 1e300)),
        r"column 'price3' holds 1e\+300, not a finite number",
    ),
    "base-sku-differs-from-futurex": (
        lambda f: f.assign(base_sku=f["base_sku"].where(f["sku"] != f["sku"].min(), f["base_sku"] % 11 + 1)),
        r"sku \d+ has base_sku \[\d+, \d+\] across the history and futurex tables",
    ),
}
FUTUREX_CASES = {
    "futurex-not-following-history": (lambda f: f.assign(week=f["week"] + 1), r"planned weeks must follow"),
    "futurex-unknown-store": (unknown_store, r"unknown series sku=\d+ store=99: it has no history"),
    "futurex-nan-price": (lambda f: f.assign(price2=f["price2"].where(f.index != 0)), r"'price2' has missing"),
    "futurex-infinite-price": (
        lambda f: f.assign(price2=f["price2"].where(f.index != 0, -np.inf)),
        r"column 'price2' holds -inf, not a finite number",
    ),
}
FILE_CASES = {
    "empty-file": ("parquet", lambda f, p, t: f.iloc[0:0].to_parquet(t, index=False), r"has no rows"),
    "truncated-parquet": (
        "parquet",
        lambda f, p, t: t.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        r"not a readable Parquet",
    ),
    "csv-wrong-delimiter": ("csv", lambda f, p, t: f.to_csv(t, sep=";", index=False), r"columns do not match"),
    "csv-wrong-header": (
        "csv",
        lambda f, p, t: f.rename(columns={"sales": "units"}).to_csv(t, index=False),
        r"missing: \['sales'\]",
    ),
}


def assert_fails_naming(layout, result, path: str, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert path in result.stderr, result.stderr
    assert pd.Series([result.stderr]).str.contains(message).all(), result.stderr
    assert storage.exists(layout.forecast_file("run-1", 1)), "the good product before it was written"
    assert storage.exists(layout.forecast_file("run-1", 3)), "the good product after it was written"
    assert not storage.exists(layout.forecast_file("run-1", 2))


@pytest.mark.parametrize("case", HISTORY_CASES)
def test_bad_history(layout, case):
    change, message = HISTORY_CASES[case]
    path = rewrite(layout, "history", change)
    assert_fails_naming(layout, score(layout, "1,2,3"), path, message)


@pytest.mark.parametrize("case", FUTUREX_CASES)
def test_bad_futurex(layout, case):
    change, message = FUTUREX_CASES[case]
    path = rewrite(layout, "futurex", change)
    assert_fails_naming(layout, score(layout, "1,2,3"), path, message)


@pytest.mark.parametrize("case", FILE_CASES)
def test_unreadable_history_file(layout, case):
    suffix, write, message = FILE_CASES[case]
    path = replace_file(layout, "history", suffix, write)
    assert_fails_naming(layout, score(layout, "1,2,3"), path, message)
