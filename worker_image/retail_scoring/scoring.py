"""Score one partition: load the model package once, then chunk by chunk read the products' tables,
let the package score the chunk, check each product's forecast against the package's output
contract and write it."""

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from retail_scoring.errors import ContractMismatchError, InputDataError, ScoringError
from retail_scoring.features import check_series_reach_origin, series_bounds, sorted_by_series
from retail_scoring.layout import StorageLayout, product_label
from retail_scoring.package import PackageKind, PackageManifest, ProductInput, load_package
from retail_scoring.schema import ROW_KEY, SERIES_KEY, forecast_schema
from retail_scoring.tables import check_table, read_raw_product_table, write_table
from retail_scoring.validation import check_forecast

log = logging.getLogger(__name__)

# Products one `score` call gets. Stacking more gains little (the gbm kind makes one predict call
# per chunk and model, ~10% faster than one per product), while a chunk bounds the rows held in
# memory and lets progress be seen as chunks are written.
PRODUCTS_PER_CHUNK = 15


@dataclass
class PartitionTimings:
    """Where a scoring task's seconds went; the benchmark and the task log print these."""

    model_load_s: float = 0.0
    features_s: float = 0.0
    conversion_s: float = 0.0
    predict_s: float = 0.0
    write_s: float = 0.0
    predict_calls: int = 0
    rows: int = 0
    quantile_count: int = 0
    products_scored: list[int] = field(default_factory=list)
    forecast_sha256: dict[str, str] = field(default_factory=dict)  # product -> its forecast file's

    @property
    def scoring_operations(self) -> int:
        return self.rows * self.quantile_count

    def to_dict(self) -> dict:
        return {**asdict(self), "scoring_operations": self.scoring_operations}

    def summary(self) -> str:
        total = self.model_load_s + self.features_s + self.conversion_s + self.predict_s + self.write_s
        return (
            f"model_load_s={self.model_load_s:.3f} features_s={self.features_s:.3f} "
            f"conversion_s={self.conversion_s:.3f} predict_s={self.predict_s:.3f} write_s={self.write_s:.3f} "
            f"predict_calls={self.predict_calls} rows={self.rows} "
            f"scoring_ops_per_s={self.scoring_operations / total if total else 0:.0f}"
        )


def product_tables(layout: StorageLayout, product: int, manifest: PackageManifest) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A product's history and futurex, checked against the table schema and the package's input
    contract (a contract mismatch raises ContractMismatchError)."""
    tables = []
    for table in ("history", "futurex"):
        url, raw = read_raw_product_table(layout, product, table)
        tables.append(check_table(raw, table, url))
        mismatch = manifest.input.mismatch(tables[-1], url, manifest.version)
        if mismatch:
            raise ContractMismatchError(mismatch)
    return tables[0], tables[1]


def product_input(layout: StorageLayout, product: int, origin: int, manifest: PackageManifest) -> ProductInput:
    """One product's tables as of `origin`, checked against the package's input contract: history is
    cut there, later weeks are only plans."""
    history, futurex = product_tables(layout, product, manifest)
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
    return ProductInput(product, visible, plans, source)


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
    row of both tables."""
    pairs = pd.concat([history[["sku", "base_sku"]], futurex[["sku", "base_sku"]]]).drop_duplicates()
    repeated = pairs["sku"].duplicated(keep=False)
    if repeated.any():
        sku = pairs.loc[repeated, "sku"].iloc[0]
        brands = sorted(pairs.loc[pairs["sku"] == sku, "base_sku"].tolist())
        raise InputDataError(
            f"{source}: sku {sku} has base_sku {brands} across the history and futurex tables; a SKU has one base_sku"
        )


def _weeks_of_series(sorted_frame: pd.DataFrame, last: bool) -> pd.Series:
    """The first or last week of every series, by (sku, store); a groupby would cost more than the
    rest of the check."""
    starts, ends = series_bounds(sorted_frame)
    rows = ends if last else starts
    keys = [sorted_frame[column].to_numpy()[rows] for column in ("sku", "store")]
    return pd.Series(sorted_frame["week"].to_numpy()[rows], index=pd.MultiIndex.from_arrays(keys))


def score_partition(
    layout: StorageLayout,
    products: list[int],
    origin: int,
    model_version: str,
    run_id: str,
    pinned_manifest_sha256: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PartitionTimings:
    """Score `products` and write their forecasts, `PRODUCTS_PER_CHUNK` at a time, calling
    `on_progress(products done, products)` after each chunk. Products with bad input or a forecast
    the package's contract refuses are reported together at the end, after every good product's
    forecast is written. With a pinned manifest checksum (the run's), a package changed since the
    run was planned is refused."""
    timings = PartitionTimings()
    started = time.perf_counter()
    failures: list[str] = []
    with load_package(layout, model_version, pinned_manifest_sha256) as package:
        timings.model_load_s = time.perf_counter() - started
        timings.quantile_count = len(package.manifest.output.quantiles)
        for start in range(0, len(products), PRODUCTS_PER_CHUNK):
            chunk = products[start : start + PRODUCTS_PER_CHUNK]
            failures += _score_chunk(layout, chunk, origin, package, run_id, timings)
            if on_progress:
                on_progress(start + len(chunk), len(products))
    log.info("partition done: %s", timings.summary())
    if failures:
        raise ScoringError(f"{len(failures)} of {len(products)} products failed: " + "; ".join(failures))
    return timings


def as_forecast(
    scored: pd.DataFrame, product: ProductInput, origin: int, package: PackageKind
) -> tuple[pd.DataFrame, list[str]]:
    """A package's forecast of one product as a forecast file's rows (quantiles sorted so they never
    cross, rows in (sku, store, week) order), and the problems that keep it from being written."""
    output = package.manifest.output
    expected = [*ROW_KEY, *output.columns]
    if sorted(scored.columns) != sorted(expected):
        missing = [c for c in expected if c not in scored.columns]
        extra = [c for c in scored.columns if c not in expected]
        return scored, [f"columns differ from {expected} (missing: {missing or 'none'}; unexpected: {extra or 'none'})"]
    not_numeric = [c for c in expected if not pd.api.types.is_numeric_dtype(scored[c])]
    if not_numeric:
        return scored, [f"column '{not_numeric[0]}' is not numeric ({scored[not_numeric[0]].dtype})"]
    quantiles = np.sort(scored[list(output.columns)].to_numpy(dtype="float64"), axis=1)
    frame = (
        scored.assign(**dict(zip(output.columns, quantiles.T, strict=True)), forecast_origin=origin)
        .assign(model_version=package.version)
        .astype({column: "int64" for column in ROW_KEY})[list(forecast_schema(output.columns).names)]
        .sort_values(list(ROW_KEY), kind="stable", ignore_index=True)
    )
    planned = product.plans[list(SERIES_KEY)].drop_duplicates()
    return frame, check_forecast(frame, len(planned), origin, package.version, planned=planned, output=output)


def _score_chunk(
    layout: StorageLayout, products: list[int], origin: int, package: PackageKind, run_id: str, timings
) -> list[str]:
    """Read, score, check and write a chunk of products; returns the messages of the products
    that could not be scored."""
    inputs, failures = [], []
    for product in products:
        started = time.perf_counter()
        try:
            inputs.append(product_input(layout, product, origin, package.manifest))
        except InputDataError as error:
            failures.append(str(error))
            log.error("%s: skipped: %s", product_label(product), error)
        timings.features_s += time.perf_counter() - started
    if not inputs:
        return failures
    scores = package.score(inputs, origin, timings)
    schema = forecast_schema(package.manifest.output.columns)
    for product in inputs:
        label = product_label(product.product)
        if product.product in scores.failures:
            failures.append(scores.failures[product.product])
            continue
        if product.product not in scores.forecasts:
            failures.append(f"{label}: model package {package.version} returned no forecast for it")
            continue
        started = time.perf_counter()
        frame, problems = as_forecast(scores.forecasts[product.product], product, origin, package)
        if problems:
            refused = "; ".join(problems)
            failures.append(f"{label}: model package {package.version} returned a forecast it may not: {refused}")
            log.error("%s: refused: %s", label, problems)
            continue
        sha256 = write_table(layout.forecast_file(run_id, product.product), frame, schema)
        timings.forecast_sha256[str(product.product)] = sha256
        seconds = time.perf_counter() - started
        timings.write_s += seconds
        timings.rows += len(frame)
        timings.products_scored.append(product.product)
        log.info("%s: %d rows scored, written in %.3f s", label, len(frame), seconds)
    return failures
