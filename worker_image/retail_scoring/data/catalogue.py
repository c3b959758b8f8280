"""The product catalogue: what planning needs to know of every product (its series, SKUs, weeks and
table columns), written where product data is written (`build-data`, `ingest-week`, or
`retail-scoring catalogue` for data written by others) and read once by each run's plan, so that
planning never opens a product's tables, however many products there are."""

import io
import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retail_scoring import storage
from retail_scoring.data.tables import check_table, read_raw_product_table
from retail_scoring.errors import InputDataError
from retail_scoring.layout import StorageLayout, product_label, product_of_folder

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
        ("sources", pa.string()),  # JSON: table file name -> its stored identity when the row was made
    ]
)
# The schema metadata key of the sales_through week the catalogue was built at.
SALES_THROUGH_KEY = b"sales_through"
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
        "sources": json.dumps(
            {url.rsplit("/", 1)[-1]: storage.identity(url) for url, _ in (history_table, futurex_table)}
        ),
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
        return {"product": product, "series": None, "skus": [], "problem": str(error), "sources": "{}"}
    return catalogue_entry(product, tables["history"], tables["futurex"])


def write_catalogue(layout: StorageLayout, entries: list[dict], sales_through: int | None) -> None:
    """The catalogue of `entries`, made when the data's sales were in through `sales_through`."""
    frame = pd.DataFrame(entries, columns=CATALOGUE_SCHEMA.names).sort_values("product")
    buffer = io.BytesIO()
    table = pa.Table.from_pandas(frame, schema=CATALOGUE_SCHEMA, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({SALES_THROUGH_KEY: json.dumps(sales_through)}), buffer)
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
    write_catalogue(layout, [scan_product(layout, product) for product in sorted(products)], read_sales_through(layout))
    return len(products)


def read_sales_through(layout: StorageLayout) -> int | None:
    """The newest week whose sales every product's history holds (data/sales_through.json)."""
    marker = storage.read_json(layout.sales_through())
    return None if marker is None else marker["week"]


def rebuild_hint(layout: StorageLayout) -> str:
    return (
        f"write it with `retail-scoring catalogue --storage {layout.root}` whenever product data changes "
        "(build-data and ingest-week write it themselves)"
    )


def read_catalogue(layout: StorageLayout) -> pd.DataFrame:
    """The catalogue, indexed by nothing; `attrs["sales_through"]` is the week it was built at.
    Refused, saying how to rebuild it, when it is missing or older than the data's sales."""
    url = layout.catalogue()
    try:
        table = pq.read_table(pa.BufferReader(storage.read_bytes(url)))
    except FileNotFoundError as error:
        raise InputDataError(f"{url}: no product catalogue; {rebuild_hint(layout)}") from error
    except (pa.ArrowException, OSError) as error:
        raise InputDataError(f"{url}: not a readable product catalogue ({error})") from error
    built_at = json.loads((table.schema.metadata or {}).get(SALES_THROUGH_KEY, b"null"))
    sales_through = read_sales_through(layout)
    if built_at != sales_through:
        raise InputDataError(
            f"{url}: the product catalogue is stale: built when sales were in through week {built_at}, but "
            f"{layout.sales_through()} says week {sales_through}; {rebuild_hint(layout)}"
        )
    frame = table.to_pandas()
    frame.attrs["sales_through"] = built_at
    return frame


def check_against_catalogue(
    layout: StorageLayout, product: int, entry: pd.Series | None, url: str, table: pd.DataFrame
) -> None:
    """A product's table as the worker read it from `url` is the one its catalogue row `entry` was
    made from (storage gives it the identity recorded then), and holds only the catalogue's SKUs of
    the product: a file replaced or relabelled since would otherwise be scored as that product."""
    if entry is None:
        raise InputDataError(
            f"{product_label(product)} is not in the product catalogue {layout.catalogue()}; {rebuild_hint(layout)}"
        )
    foreign = np.setdiff1d(table["sku"].unique(), np.asarray(entry["skus"], dtype="int64"))
    if len(foreign):
        raise InputDataError(
            f"{url}: sku {int(foreign[0])} is not one of {product_label(product)}'s SKUs in the product catalogue "
            f"{layout.catalogue()} (the file holds another product's rows, or the catalogue is stale); "
            + rebuild_hint(layout)
        )
    if json.loads(entry["sources"]).get(url.rsplit("/", 1)[-1]) != storage.identity(url):
        raise InputDataError(
            f"{url}: changed since the product catalogue {layout.catalogue()} was built (the catalogue is stale); "
            + rebuild_hint(layout)
        )
