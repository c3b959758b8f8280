"""Score one partition: load the model set once, then chunk by chunk of products stack their rows,
make one R predict call per model and write one forecast file per product."""

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import accumulate

import numpy as np
import pandas as pd

from retail_scoring import rsession
from retail_scoring.errors import InputDataError, ScoringError
from retail_scoring.features import scoring_features, series_bounds, sorted_by_series
from retail_scoring.layout import StorageLayout, product_label
from retail_scoring.models import ModelSet, model_columns
from retail_scoring.schema import QUANTILE_COLUMNS, QUANTILES
from retail_scoring.tables import read_product_table, write_table

log = logging.getLogger(__name__)

# Products stacked into one chunk of R predict calls. Stacking more gains little (one call per
# chunk and model, ~10% over one per product), while a chunk bounds the rows held in memory and
# lets progress be seen as chunks are written.
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
    products_scored: list[int] = field(default_factory=list)
    forecast_sha256: dict[str, str] = field(default_factory=dict)  # product -> its forecast file's

    @property
    def scoring_operations(self) -> int:
        return self.rows * len(QUANTILES)

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


def product_features(layout: StorageLayout, product: int, origin: int) -> pd.DataFrame:
    """Features of one product as of `origin`: history is cut there, later weeks are only plans."""
    history = read_product_table(layout, product, "history")
    futurex = read_product_table(layout, product, "futurex")
    check_futurex_follows_history(history, futurex, layout.product_file(product, "futurex"))
    both_tables = f"{layout.product_file(product, 'history')} and {layout.product_file(product, 'futurex')}"
    check_base_sku_per_sku(history, futurex, both_tables)
    visible = history[history["week"] <= origin]
    plans = pd.concat([history[history["week"] > origin].drop(columns="sales"), futurex], ignore_index=True)
    source = f"{layout.product_file(product, 'history')} (origin week {origin})"
    return scoring_features(visible, plans, origin, source=source)


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


def predict_quantiles(models: ModelSet, rows: pd.DataFrame, timings: PartitionTimings) -> np.ndarray:
    """Sales quantiles for stacked rows: one R data.frame per step group and one predict call per
    model, whatever the number of products; sorted so quantiles never cross."""
    log_sales = np.full((len(rows), len(QUANTILES)), np.nan)
    started = time.perf_counter()
    step_groups = sorted({(entry.steps, entry.features) for entry in models.entries})
    row_steps = rows["step"].to_numpy()
    columns = {features: model_columns(rows, features) for features in {features for _, features in step_groups}}
    timings.conversion_s += time.perf_counter() - started
    for steps, features in step_groups:
        started = time.perf_counter()
        selected = np.flatnonzero(np.isin(row_steps, steps))
        if not len(selected):
            continue
        newdata = rsession.numeric_columns_to_r({name: values[selected] for name, values in columns[features].items()})
        timings.conversion_s += time.perf_counter() - started
        for entry in models.entries:
            if (entry.steps, entry.features) != (steps, features):
                continue
            started = time.perf_counter()
            log_sales[selected, QUANTILES.index(entry.quantile)] = models.predict(entry, newdata)
            timings.predict_s += time.perf_counter() - started
            timings.predict_calls += 1
    return np.sort(np.exp(log_sales), axis=1)


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
    `on_progress(products done, products)` after each chunk. Products with bad input are reported
    together at the end, after every good product's forecast is written. With a pinned manifest
    checksum (the run's), a model set changed since the run was planned is refused."""
    timings = PartitionTimings()
    started = time.perf_counter()
    models = ModelSet.load(layout, model_version, pinned_manifest_sha256)
    timings.model_load_s = time.perf_counter() - started
    failures: list[str] = []
    for start in range(0, len(products), PRODUCTS_PER_CHUNK):
        chunk = products[start : start + PRODUCTS_PER_CHUNK]
        failures += _score_chunk(layout, chunk, origin, models, run_id, timings)
        if on_progress:
            on_progress(start + len(chunk), len(products))
    log.info("partition done: %s", timings.summary())
    if failures:
        raise ScoringError(f"{len(failures)} of {len(products)} products failed: " + "; ".join(failures))
    return timings


def _score_chunk(
    layout: StorageLayout, products: list[int], origin: int, models: ModelSet, run_id: str, timings: PartitionTimings
) -> list[str]:
    """Score and write a chunk of products with stacked predict calls; returns the bad-input
    messages of the products that could not be scored."""
    scored, feature_frames, failures = [], [], []
    for product in products:
        started = time.perf_counter()
        try:
            feature_frames.append(product_features(layout, product, origin))
            scored.append(product)
        except InputDataError as error:
            failures.append(str(error))
            log.error("%s: skipped: %s", product_label(product), error)
        timings.features_s += time.perf_counter() - started
    if not feature_frames:
        return failures
    rows = pd.concat(feature_frames, ignore_index=True)
    quantiles = predict_quantiles(models, rows, timings)
    forecasts = rows[["sku", "store", "week"]].assign(
        **dict(zip(QUANTILE_COLUMNS, quantiles.T, strict=True)),
        forecast_origin=origin,
        model_version=models.version,
    )
    ends = list(accumulate(len(frame) for frame in feature_frames))
    for product, start, end in zip(scored, [0, *ends[:-1]], ends, strict=True):
        started = time.perf_counter()
        # scoring_features gives each product's rows in (sku, store, week) order, the file's order
        sha256 = write_table(layout.forecast_file(run_id, product), forecasts.iloc[start:end], "forecast")
        timings.forecast_sha256[str(product)] = sha256
        seconds = time.perf_counter() - started
        timings.write_s += seconds
        timings.rows += end - start
        timings.products_scored.append(product)
        log.info("%s: %d rows scored, written in %.3f s", product_label(product), end - start, seconds)
    return failures
