"""The churn scenario's data: modeldata's `mlc_churn` (5,000 real telecom customers, Debian's
r-cran-modeldata) with a customer id and a monthly snapshot date, replicated to any number of
customers and stored as hive-style Parquet, a folder per state, as include/scenarios/customer_churn.json
declares it."""

from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from retail_scoring import storage


def load_mlc_churn() -> pa.Table:
    """mlc_churn through rpy2, factors as their labels."""
    from retail_scoring import rsession

    frame = rsession.r_to_pandas(
        rsession.r_eval("{ data(mlc_churn, package = 'modeldata'); as.data.frame(mlc_churn) }")
    )
    return pa.Table.from_pandas(frame.astype({c: str for c in frame.select_dtypes("category")}), preserve_index=False)


def churn_customers(base: pa.Table, customers: int, snapshot: date) -> pa.Table:
    """`customers` rows cycling through `base`'s, with ids 1.. and the snapshot date first."""
    rows = base.take(np.arange(customers) % len(base))
    ids = pa.array(np.arange(1, customers + 1, dtype="int64"))
    return rows.add_column(0, "snapshot", pa.array([snapshot] * customers, pa.date32())).add_column(
        0, "customer_id", ids
    )


def write_by_state(table: pa.Table, url: str, rows_per_file: int = 1_000_000) -> None:
    """`table` as hive-style Parquet under `url`, a `state=XX/` folder per state."""
    fs, path = storage.filesystem(url)
    ds.write_dataset(
        table, path, filesystem=fs, format="parquet", partitioning=["state"], partitioning_flavor="hive",
        max_rows_per_file=rows_per_file, max_rows_per_group=min(rows_per_file, 100_000),
        existing_data_behavior="delete_matching",
    )  # fmt: skip
