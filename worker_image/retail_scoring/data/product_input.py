"""A product's input to a package as of an origin: its tables read and checked (schema, catalogue,
the package's input contract, the reference data's rules), history cut at the origin, later weeks
only plans, and the sales known after the origin kept apart for accuracy."""

import numpy as np
import pandas as pd

from retail_scoring.data.catalogue import check_against_catalogue, column_kinds
from retail_scoring.data.series import check_series_reach_origin, series_bounds, sorted_by_series
from retail_scoring.data.tables import check_table, read_raw_product_table
from retail_scoring.errors import InputDataError
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import PackageManifest, ProductInput
from retail_scoring.run.accuracy import SALES_COLUMNS, known_sales


def product_tables(
    layout: StorageLayout, product: int, manifest: PackageManifest, catalogue: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A product's history and futurex, checked against the table schema, the product catalogue
    (the files it was made from, the product's SKUs) and the package's input contract."""
    tables = []
    for table in ("history", "futurex"):
        url, raw = read_raw_product_table(layout, product, table)
        tables.append((url, check_table(raw, table, url)))
    for url, frame in tables:
        mismatch = manifest.input.mismatch(column_kinds(frame), url, manifest.version)
        if mismatch:
            raise InputDataError(mismatch)
    entry = catalogue.loc[product] if product in catalogue.index else None
    for url, frame in tables:
        check_against_catalogue(layout, product, entry, url, frame)
    return tables[0][1], tables[1][1]


def product_input(
    layout: StorageLayout, product: int, origin: int, manifest: PackageManifest, catalogue: pd.DataFrame
) -> tuple[ProductInput, pd.DataFrame]:
    """One product's tables as of `origin`, checked against the package's input contract: history is
    cut there, later weeks are only plans. Also the sales known after the origin (held-back
    actuals, later history), kept from the package and used only to measure its accuracy."""
    history, futurex = product_tables(layout, product, manifest, catalogue)
    check_futurex_follows_history(history, futurex, layout.product_file(product, "futurex"))
    both_tables = f"{layout.product_file(product, 'history')} and {layout.product_file(product, 'futurex')}"
    check_base_sku_per_sku(history, futurex, both_tables)
    visible = history[history["week"] <= origin]
    plans = pd.concat([history[history["week"] > origin].drop(columns="sales"), futurex], ignore_index=True)
    source = f"{layout.product_file(product, 'history')} (origin week {origin})"
    ordered = sorted_by_series(visible)
    starts, ends = series_bounds(ordered)
    needs = f"model package {manifest.version} needs"
    check_series_reach_origin(ordered, starts, ends, origin, manifest.input.history_weeks, source, needs)
    later_sales = [history[history["week"] > origin]]
    try:  # unchecked: accuracy is measured, never a reason to refuse a product
        later_sales.insert(0, read_raw_product_table(layout, product, "actuals", columns=SALES_COLUMNS)[1])
    except InputDataError:
        pass
    forecast_weeks = range(origin + 1, origin + manifest.output.horizon + 1)
    return ProductInput(product, visible, plans, source), known_sales(later_sales, forecast_weeks)


def check_futurex_follows_history(history: pd.DataFrame, futurex: pd.DataFrame, source: str) -> None:
    """Planned weeks continue each series right after its last week of history, for known series only."""
    last_history = _weeks_of_series(sorted_by_series(history), last=True)
    first_planned = _weeks_of_series(sorted_by_series(futurex), last=False)
    unknown = first_planned.index.difference(last_history.index)
    if len(unknown):
        sku, store = unknown[0]
        raise InputDataError(f"{source}: unknown series sku={sku} store={store}: it has no history")
    misplaced = first_planned != last_history.reindex(first_planned.index) + 1
    if misplaced.any():
        sku, store = first_planned.index[misplaced.argmax()]
        raise InputDataError(
            f"{source}: series sku={sku} store={store} plans from week {first_planned[(sku, store)]}, but its "
            f"history ends at week {last_history[(sku, store)]}; planned weeks must follow the history"
        )


def check_base_sku_per_sku(history: pd.DataFrame, futurex: pd.DataFrame, source: str) -> None:
    """A SKU replicates one brand: its base_sku (the models' `sku` feature) is the same in every
    row of both tables. Rows sorted by SKU, a SKU with two brands has two neighbours that differ
    (a pandas drop_duplicates of the pairs took 3x as long)."""
    sku = np.concatenate([history["sku"].to_numpy(), futurex["sku"].to_numpy()])
    base = np.concatenate([history["base_sku"].to_numpy(), futurex["base_sku"].to_numpy()])
    order = np.argsort(sku, kind="stable")
    sku, base = sku[order], base[order]
    differ = np.flatnonzero((sku[1:] == sku[:-1]) & (base[1:] != base[:-1]))
    if len(differ):
        first = sku[differ[0]]
        brands = sorted(np.unique(base[sku == first]).tolist())
        raise InputDataError(
            f"{source}: sku {first} has base_sku {brands} across the history and futurex tables; a SKU has one base_sku"
        )


def _weeks_of_series(sorted_frame: pd.DataFrame, last: bool) -> pd.Series:
    """The first or last week of every series, by (sku, store); a groupby would cost more than the
    rest of the check."""
    starts, ends = series_bounds(sorted_frame)
    rows = ends if last else starts
    keys = [sorted_frame[column].to_numpy()[rows] for column in ("sku", "store")]
    return pd.Series(sorted_frame["week"].to_numpy()[rows], index=pd.MultiIndex.from_arrays(keys))
