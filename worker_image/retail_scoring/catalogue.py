"""The product catalogue: what planning needs to know of every product (its series, SKUs, weeks and
table columns), written where product data is written (`build-data`, `ingest-week`, or
`retail-scoring catalogue` for data written by others) and read once by each run's plan, so that
planning never opens a product's tables, however many products there are."""

import io
import json
import logging

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retail_scoring import storage
from retail_scoring.errors import InputDataError
from retail_scoring.layout import StorageLayout, product_label, product_of_folder
from retail_scoring.tables import check_table, read_raw_product_table

log = logging.getLogger(__name__)

CATALOGUE_SCHEMA = pa.schema(
    [
        ("product", pa.int64()),
        ("series", pa.int64()),  # planned (sku, store) series; null when the tables cannot be read
        ("skus", pa.list_(pa.int64())),
        ("history_start", pa.int64()),  # the latest first week of history among its series
        ("planned_through", pa.int64()),  # the last planned week
        ("columns", pa.string()),  # JSON: table file name -> column -> numpy dtype kind
        ("problem", pa.string()),  # why the tables cannot be read, naming the file; null when they can
    ]
)
TABLES_PLANNED_FROM = ("history", "futurex")


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Column -> numpy dtype kind ('i', 'f', ...): what an input contract is checked against."""
    return {column: frame[column].dtype.kind for column in frame.columns}


Table = tuple[str, pd.DataFrame]  # a checked table and the URL it was read from or written to


def catalogue_entry(product: int, history_table: Table, futurex_table: Table) -> dict:
    """A product's catalogue row from its checked history and futurex."""
    (_, history), (_, futurex) = history_table, futurex_table
    return {
        "product": product,
        "series": len(futurex[["sku", "store"]].drop_duplicates()),
        "skus": sorted(futurex["sku"].unique().tolist()),
        "history_start": int(history.groupby(["sku", "store"])["week"].min().max()),
        "planned_through": int(futurex["week"].max()),
        "columns": json.dumps(
            {url.rsplit("/", 1)[-1]: column_kinds(frame) for url, frame in (history_table, futurex_table)}
        ),
        "problem": None,
    }


def scan_product(layout: StorageLayout, product: int) -> dict:
    """Read and check a product's tables for its catalogue row; a product whose tables cannot be
    read gets a row saying why (its scoring task will fail naming it; the others are scored)."""
    tables = {}
    try:
        for table in TABLES_PLANNED_FROM:
            url, raw = read_raw_product_table(layout, product, table)
            tables[table] = (url, check_table(raw, table, url))
    except InputDataError as error:
        log.warning("%s: %s", product_label(product), error)
        return {"product": product, "series": None, "skus": [], "problem": str(error)}
    return catalogue_entry(product, tables["history"], tables["futurex"])


def write_catalogue(layout: StorageLayout, entries: list[dict]) -> None:
    frame = pd.DataFrame(entries, columns=CATALOGUE_SCHEMA.names).sort_values("product")
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, schema=CATALOGUE_SCHEMA, preserve_index=False), buffer)
    storage.write_bytes_atomic(layout.catalogue(), buffer.getvalue())
    unreadable = frame["problem"].notna().sum()
    log.info("catalogue of %d products written (%d unreadable): %s", len(frame), unreadable, layout.catalogue())


def build_catalogue(layout: StorageLayout) -> int:
    """Scan every product folder and write the catalogue; returns how many products it lists."""
    products = []
    for name in storage.list_names(layout.products_dir()):
        product = product_of_folder(name)
        if product is None:
            log.warning("%s/%s: not a product folder (product_NNN); ignored", layout.products_dir(), name)
        else:
            products.append(product)
    write_catalogue(layout, [scan_product(layout, product) for product in sorted(products)])
    return len(products)


def read_catalogue(layout: StorageLayout) -> pd.DataFrame:
    url = layout.catalogue()
    if not storage.exists(url):
        raise InputDataError(
            f"{url}: no product catalogue; write it with `retail-scoring catalogue --storage {layout.root}` "
            "whenever product data changes (build-data and ingest-week write it themselves)"
        )
    try:
        return pq.read_table(pa.BufferReader(storage.read_bytes(url))).to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise InputDataError(f"{url}: not a readable product catalogue ({error})") from error
