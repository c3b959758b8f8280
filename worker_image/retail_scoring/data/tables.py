"""Reading and writing the product and forecast tables, with the checks that keep garbage out."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from retail_scoring import storage
from retail_scoring.data.schema import (
    KNOWN_BASE_SKUS,
    MAX_PLAUSIBLE_VALUE,
    PRICE_COLUMNS,
    QUANTILE_COLUMN,
    ROW_KEY,
    TABLES,
)
from retail_scoring.errors import InputDataError
from retail_scoring.layout import StorageLayout


def read_product_table(layout: StorageLayout, product: int, table: str) -> pd.DataFrame:
    """Read a product's table from Parquet, or from CSV when only a .csv is there, and check it."""
    url, raw = read_raw_product_table(layout, product, table)
    return check_table(raw, table, url)


def read_raw_product_table(
    layout: StorageLayout, product: int, table: str, columns: list[str] | None = None
) -> tuple[str, pd.DataFrame]:
    """The table as stored, unchecked, with the URL it came from; only those of `columns` it has
    when they are given."""
    parquet_url = layout.product_file(product, table)
    csv_url = layout.product_file(product, table, suffix="csv")
    # Read and caught, never exists() first: adlfs answers False during an outage, which would make
    # an unreachable file look missing (bad input, exit 2, not retried) instead of unavailable.
    try:
        return parquet_url, _read_parquet(parquet_url, storage.read_bytes(parquet_url), columns)
    except FileNotFoundError:
        pass
    try:
        return csv_url, _read_csv(csv_url, storage.read_bytes(csv_url), columns)
    except FileNotFoundError:
        raise InputDataError(f"{parquet_url}: file not found (no .csv beside it either)") from None


def _read_parquet(url: str, data: bytes, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        present = None if columns is None else [c for c in columns if c in parquet.schema_arrow.names]
        return parquet.read(columns=present).to_pandas(split_blocks=True)
    except (pa.ArrowException, OSError) as error:
        raise InputDataError(f"{url}: not a readable Parquet file ({error})") from error


def _read_csv(url: str, data: bytes, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        usecols = None if columns is None else (lambda column: column in columns)
        return pd.read_csv(io.BytesIO(data), usecols=usecols)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputDataError(f"{url}: not a readable CSV file ({error})") from error


def column_differences(found: list[str], expected: list[str]) -> str:
    """How `found` columns differ from `expected`, for messages."""
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    return f"(missing: {missing or 'none'}; unexpected: {extra or 'none'})"


def check_table(frame: pd.DataFrame, table: str, source: str) -> pd.DataFrame:
    """Return `frame` cast to the table's schema, or raise naming the file, column and row at fault.
    Product tables may carry extra numeric columns after the schema's (exogenous data a model
    package declares in its input contract); they get the same checks as the schema's numbers."""
    schema = TABLES[table]
    expected = list(schema.names)
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    if missing or (extra and table not in PRODUCT_TABLES_WITH_EXTRAS):
        raise InputDataError(
            f"{source}: columns do not match the {table} schema {column_differences(list(frame.columns), expected)}"
        )
    if frame.empty:
        raise InputDataError(f"{source}: has no rows")
    if list(frame.columns) != expected + extra:
        frame = frame[expected + extra]
    numeric = [f.name for f in schema if not pa.types.is_string(f.type)] + extra
    not_numeric = [c for c in numeric if not pd.api.types.is_numeric_dtype(frame[c])]
    if not_numeric:
        raise InputDataError(
            f"{source}: column '{not_numeric[0]}' must be numeric, found {frame[not_numeric[0]].dtype}"
        )
    floats = [c for c in numeric if frame[c].dtype.kind == "f"]  # a missing value makes an int column float
    column = _first_column_where(frame, floats, np.isnan)
    if column:
        raise InputDataError(
            f"{source}: column '{column}' has missing values, first at {_row(frame, frame[column].isna())}"
        )
    column = _first_column_where(frame, numeric, lambda values: ~(np.abs(values) <= MAX_PLAUSIBLE_VALUE))
    if column:
        implausible = ~(frame[column].abs() <= MAX_PLAUSIBLE_VALUE)
        raise InputDataError(
            f"{source}: column '{column}' holds {frame.loc[implausible, column].iloc[0]}, not a finite number of at "
            f"most {MAX_PLAUSIBLE_VALUE:g}, first at {_row(frame, implausible)}"
        )
    casts = {}
    for field in schema:
        dtype = frame[field.name].dtype
        if pa.types.is_integer(field.type) and dtype != "int64":
            if (frame[field.name] != frame[field.name].round()).any():
                raise InputDataError(f"{source}: column '{field.name}' must hold whole numbers")
            casts[field.name] = "int64"
        elif pa.types.is_floating(field.type) and dtype != "float64":
            casts[field.name] = "float64"
    frame = frame.astype(casts) if casts else frame
    if "sales" in frame and (frame["sales"] <= 0).any():
        raise InputDataError(
            f"{source}: column 'sales' must be positive, found {frame['sales'].min()} at "
            f"{_row(frame, frame['sales'] <= 0)}"
        )
    column = _first_column_where(frame, [c for c in PRICE_COLUMNS if c in frame], lambda values: values < 0)
    if column:
        raise InputDataError(
            f"{source}: column '{column}' has negative prices, first at {_row(frame, frame[column] < 0)}"
        )
    if "base_sku" in frame:
        unknown = ~frame["base_sku"].isin(KNOWN_BASE_SKUS)
        if unknown.any():
            raise InputDataError(
                f"{source}: unknown base_sku {frame.loc[unknown, 'base_sku'].iloc[0]} at {_row(frame, unknown)}; "
                f"the models know {KNOWN_BASE_SKUS.start}..{KNOWN_BASE_SKUS.stop - 1}"
            )
    if not is_sorted_by_row_key(frame):  # rows in strictly ascending order cannot repeat a key
        duplicated = frame.duplicated(list(ROW_KEY), keep=False)
        if duplicated.any():
            raise InputDataError(f"{source}: duplicate (sku, store, week) rows, first at {_row(frame, duplicated)}")
    return frame


PRODUCT_TABLES_WITH_EXTRAS = ("history", "futurex")


def has_forecast_rows(
    frame: pd.DataFrame, series_sku: np.ndarray, series_store: np.ndarray, origin: int, horizon: int
) -> bool:
    """Whether `frame`'s rows are exactly the given series' weeks origin+1..origin+horizon, in
    (sku, store, week) order: how plans and forecasts are laid out, recognised in one vectorised
    pass."""
    if len(frame) != len(series_sku) * horizon:
        return False
    expected = {
        "sku": np.repeat(series_sku, horizon),
        "store": np.repeat(series_store, horizon),
        "week": np.tile(np.arange(origin + 1, origin + horizon + 1), len(series_sku)),
    }
    return all(np.array_equal(frame[column].to_numpy(), values) for column, values in expected.items())


def is_sorted_by_row_key(frame: pd.DataFrame) -> bool:
    """Rows in strictly ascending (sku, store, week) order, as product files are written."""
    sku, store, week = (np.diff(frame[c].to_numpy()) for c in ROW_KEY)
    return bool(((sku > 0) | ((sku == 0) & ((store > 0) | ((store == 0) & (week > 0))))).all())


def _first_column_where(frame: pd.DataFrame, columns: list[str], test) -> str | None:
    """The first of `columns` whose numpy values `test` true anywhere."""
    return next((c for c in columns if test(frame[c].to_numpy()).any()), None)


def _row(frame: pd.DataFrame, mask: pd.Series) -> str:
    return first_key(frame, mask, ROW_KEY)


def first_key(frame: pd.DataFrame, mask: pd.Series, key: tuple[str, ...]) -> str:
    """`sku=12 store=1 ...` of the first row where `mask` holds, each value read from its own
    column: a row read across columns of mixed types (a merge's NaN) turns integers into floats."""
    position = int(np.flatnonzero(np.asarray(mask))[0])
    values = (frame[column].iat[position] for column in key)
    return " ".join(f"{column}={_plain(value)}" for column, value in zip(key, values, strict=True))


def _plain(value) -> object:
    value = value.item() if isinstance(value, np.generic) else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def write_table(url: str, frame: pd.DataFrame, table: str | pa.Schema) -> storage.RecordedFile:
    """Write `frame` as Parquet with the table's schema (a name in TABLES, or the schema itself),
    atomically; returns the file's size, sha256 and stored identity (storage.write_recorded), which
    a run records to recognise its own files in a listing."""
    schema = TABLES[table] if isinstance(table, str) else table
    arrow_table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    buffer = io.BytesIO()
    # Quantiles are distinct floats: a dictionary would only cost time (4 of 5 ms per forecast file).
    dictionary_columns = [c for c in schema.names if not QUANTILE_COLUMN.fullmatch(c)]
    pq.write_table(arrow_table, buffer, use_dictionary=dictionary_columns)
    return storage.write_recorded(url, buffer.getvalue())


def read_forecast(url: str) -> pd.DataFrame:
    return pq.read_table(pa.BufferReader(storage.read_bytes(url))).to_pandas(split_blocks=True)
