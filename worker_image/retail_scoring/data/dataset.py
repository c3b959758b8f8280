"""The reference dataset: bayesm's orangeJuice, cleaned as the reference architecture did and
replicated into products of 11 SKUs each."""

import json
import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from retail_scoring import storage
from retail_scoring.data.catalogue import Table, catalogue_entry, read_sales_through, write_catalogue
from retail_scoring.data.schema import HORIZON, PRICE_COLUMNS, SKUS_PER_PRODUCT, TABLES
from retail_scoring.data.tables import read_product_table, write_table
from retail_scoring.errors import InputDataError
from retail_scoring.layout import StorageLayout, product_of_folder

log = logging.getLogger(__name__)

LAST_WEEK = 160  # series that do not reach the data's last week were discontinued


def load_orange_juice() -> pd.DataFrame:
    """orangeJuice$yx from the R package bayesm, through rpy2."""
    from retail_scoring import rsession

    rsession.r_eval("data(orangeJuice, package = 'bayesm')")
    return rsession.r_to_pandas(rsession.r_eval("orangeJuice$yx"))


def prepare_reference_series(yx: pd.DataFrame) -> pd.DataFrame:
    """Clean the raw panel into complete weekly (sku, store) series, one product's worth."""
    frame = yx.drop(columns=["constant", "profit"])
    last_week = frame.groupby(["store", "brand"])["week"].transform("max")
    frame = frame[last_week == LAST_WEEK]
    store_numbers = {store: n for n, store in enumerate(pd.unique(frame["store"]), start=1)}
    frame = frame.assign(store=frame["store"].map(store_numbers))
    frame = _insert_missing_weeks(frame)
    frame = frame.assign(
        week=frame["week"] - frame["week"].min(),
        sales=np.exp(frame["logmove"]),
        feat=frame["feat"].astype("int64"),
        deal=frame["deal"].astype("int64"),
        sku=frame["brand"].astype("int64"),
        base_sku=frame["brand"].astype("int64"),
    )
    columns = ["sku", "base_sku", "store", "week", "deal", "feat", *PRICE_COLUMNS, "sales"]
    return frame[columns].sort_values(["sku", "store", "week"]).reset_index(drop=True)


def _insert_missing_weeks(frame: pd.DataFrame) -> pd.DataFrame:
    """Give every series each week between its first and last, carrying values forward."""
    filled = []
    for (store, brand), series in frame.groupby(["store", "brand"], sort=False):
        weeks = pd.RangeIndex(series["week"].min(), series["week"].max() + 1, name="week")
        series = series.set_index("week").reindex(weeks).ffill()
        filled.append(series.assign(store=store, brand=brand).reset_index())
    return pd.concat(filled, ignore_index=True)


def product_tables(reference: pd.DataFrame, product: int) -> dict[str, pd.DataFrame]:
    """The history, futurex and actuals tables of one product: a copy of the reference series
    under SKU ids unique to the product, with the last HORIZON weeks held back."""
    frame = reference.assign(sku=reference["base_sku"] + (product - 1) * SKUS_PER_PRODUCT)
    holdout_start = frame["week"].max() - HORIZON + 1
    held_back = frame["week"] >= holdout_start
    return {
        table: frame.loc[held_back if table != "history" else ~held_back, list(TABLES[table].names)]
        for table in ("history", "futurex", "actuals")
    }


def build_dataset(layout: StorageLayout, n_products: int) -> None:
    """Write every product's tables to storage; reruns overwrite with identical content."""
    reference = prepare_reference_series(load_orange_juice())
    log.info(
        "reference data: %d series (%d SKUs x %d stores), weeks %d..%d",
        reference.groupby(["sku", "store"]).ngroups,
        reference["sku"].nunique(),
        reference["store"].nunique(),
        reference["week"].min(),
        reference["week"].max(),
    )
    write_products(layout, reference, n_products)


def write_products(layout: StorageLayout, reference: pd.DataFrame, n_products: int) -> None:
    """Every product's tables, then the catalogue, then the sales_through marker."""
    storage.create_root(layout.root)
    entries = []
    for product in range(1, n_products + 1):
        tables = product_tables(reference, product)
        for table, frame in tables.items():
            write_table(layout.product_file(product, table), frame, table)
        entries.append(
            catalogue_entry(product, *_planning_tables(layout, product, tables["history"], tables["futurex"]))
        )
        log.info("product %d of %d written", product, n_products)
    sales_through = int(reference["week"].max()) - HORIZON
    write_catalogue(layout, entries, sales_through)
    record_sales_through(layout, sales_through)


def record_sales_through(layout: StorageLayout, week: int) -> None:
    """The newest week whose sales are in every product's history: what a weekly run waits for.
    Written last, after the product files, as a nightly ingest would."""
    marker = {"week": week, "recorded_at": datetime.now(UTC).isoformat()}
    storage.write_bytes_atomic(layout.sales_through(), json.dumps(marker).encode())


def ingest_next_week(layout: StorageLayout) -> int:
    """Land the next held-back week of the demo data, as a nightly ingest of a week's sales would:
    its sales join each product's history (with the week's planned deal/feat/prices), its plans
    leave the futurex, and the futurex gains the plans of the week 13 weeks ahead (a copy of the
    last planned week: the demo's stand-in for the retailer's promotion plan). Idempotent per
    product; the sales_through marker moves last."""
    current = read_sales_through(layout)
    if current is None:
        raise InputDataError(f"{layout.sales_through()}: not found; build the data first (build-data)")
    week = current + 1
    products = [p for p in map(product_of_folder, storage.list_names(layout.products_dir())) if p is not None]
    entries = []
    for product in sorted(products):
        history = read_product_table(layout, product, "history")
        futurex = read_product_table(layout, product, "futurex")
        if history["week"].max() >= week:  # landed by an earlier, interrupted ingest
            entries.append(catalogue_entry(product, *_planning_tables(layout, product, history, futurex)))
            continue
        actuals = read_product_table(layout, product, "actuals")
        landed = futurex[futurex["week"] == week].merge(actuals[actuals["week"] == week], on=["sku", "store", "week"])
        if landed.empty:
            raise InputDataError(f"{layout.product_file(product, 'actuals')}: no sales held back for week {week}")
        last_plan = futurex[futurex["week"] == futurex["week"].max()]
        futurex = pd.concat([futurex[futurex["week"] != week], last_plan.assign(week=last_plan["week"] + 1)])
        write_table(layout.product_file(product, "futurex"), futurex.sort_values(["sku", "store", "week"]), "futurex")
        history = pd.concat([history, landed[list(TABLES["history"].names)]]).sort_values(["sku", "store", "week"])
        write_table(layout.product_file(product, "history"), history, "history")
        entries.append(catalogue_entry(product, *_planning_tables(layout, product, history, futurex)))
    write_catalogue(layout, entries, week)
    record_sales_through(layout, week)
    log.info("sales of week %d landed for %d products", week, len(products))
    return week


def _planning_tables(layout: StorageLayout, product: int, history: pd.DataFrame, futurex: pd.DataFrame) -> list[Table]:
    """A product's history and futurex as the catalogue takes them, with the files they are written to."""
    return [(layout.product_file(product, "history"), history), (layout.product_file(product, "futurex"), futurex)]
