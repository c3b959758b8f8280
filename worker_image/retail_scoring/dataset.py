"""The reference dataset: bayesm's orangeJuice, cleaned as the reference architecture did and
replicated into products of 11 SKUs each."""

import logging

import numpy as np
import pandas as pd

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.schema import HORIZON, PRICE_COLUMNS, SKUS_PER_PRODUCT, TABLES
from retail_scoring.tables import write_table

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
    storage.create_root(layout.root)
    for product in range(1, n_products + 1):
        for table, frame in product_tables(reference, product).items():
            write_table(layout.product_file(product, table), frame, table)
        log.info("product %d of %d written", product, n_products)
