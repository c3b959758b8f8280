"""Score one partition: load the model package once, then chunk by chunk read the products' tables,
let the package score the chunk, check each product's forecast against the package's output
contract and write it."""

import logging
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd

from retail_scoring import storage
from retail_scoring.data.catalogue import read_catalogue
from retail_scoring.data.product_input import product_input
from retail_scoring.data.schema import ROW_KEY, SERIES_KEY, forecast_schema
from retail_scoring.data.tables import column_differences, write_table
from retail_scoring.errors import InputDataError, ScoringError
from retail_scoring.layout import StorageLayout, product_label
from retail_scoring.packages.base import (
    Engine,
    ModelPackage,
    OutputContract,
    ProductInput,
    load_package,
)
from retail_scoring.run.accuracy import accuracy_sums, joined_sums, with_actuals
from retail_scoring.run.calibration import Calibration, read_calibration, residual_sums
from retail_scoring.run.contract import PartitionSummary, RunManifest
from retail_scoring.run.forecast_checks import DEFAULT_MAX_FORECAST_RATIO, check_forecast

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunChecks:
    """What the run's plan says each forecast must be, checked by the worker as it writes them (the
    checks the validate task relies on): the run's model version, no quantile above
    `max_forecast_ratio` times its series' highest weekly sales, and the plan's series count per
    product (None: each product's own planned series, for scoring outside a run)."""

    model_version: str
    max_forecast_ratio: float = DEFAULT_MAX_FORECAST_RATIO
    series_per_product: dict[str, int | None] | None = None


@dataclass(frozen=True)
class ScoringJob:
    """What one scoring task does: a partition of a planned run (`for_partition`, from its run
    manifest), or products scored outside a run, checked by the package's contract alone.

    With a pinned manifest checksum (the run's), a package changed since the run was planned is
    refused. `engine` says how the package scores (packages.base.ENGINES), on `engine_threads`
    cores (None: all this process may use). With a `calibration`, the forecast written is the
    calibrated one, and what the package made is written beside it (layout.model_output_file), so
    the package's own output stays comparable with R's; the summary, written to `summary_url` when
    given, records the calibration's content (`calibration_sha256`) beside the package's. With
    `profile_residuals` (a backtest's runs) the summary also carries the residual profile that
    calibration learns from: megabytes per partition that a weekly run's tasks need not read."""

    layout: StorageLayout
    products: Sequence[int]
    origin: int
    model_version: str
    run_id: str
    checks: RunChecks | None = None  # None: RunChecks(model_version)
    pinned_manifest_sha256: str | None = None
    summary_url: str | None = None
    engine: Engine = "auto"
    engine_threads: int | None = None
    calibration: Calibration | None = None
    calibration_sha256: str | None = None
    profile_residuals: bool = False

    @classmethod
    def for_partition(cls, layout: StorageLayout, run_id: str, manifest: RunManifest, partition: str) -> Self:
        """The job the run manifest gives `partition`, with the calibration the plan pinned."""
        plan = manifest.plan
        calibration = None
        if plan.calibration_url is not None:
            calibration = read_calibration(plan.calibration_url, plan.calibration_sha256)[0]
        return cls(
            layout,
            manifest.partitions[partition],
            plan.origin,
            plan.model_version,
            run_id,
            RunChecks(plan.model_version, plan.max_forecast_ratio, manifest.series_per_product),
            plan.model_manifest_sha256,
            layout.partition_summary(run_id, partition),
            plan.engine,
            plan.engine_threads,
            calibration,
            plan.calibration_sha256,
            plan.profile_residuals,
        )


def score_partition(job: ScoringJob, on_progress: Callable[[int, int], None] | None = None) -> PartitionSummary:
    """Score the job's products and write their forecasts, the package's `products_per_chunk` at a
    time (so memory holds one chunk, whatever the partition's size), calling
    `on_progress(products done, products)` after each chunk. Every written forecast is checked
    against the job's checks, its problems kept in the summary. Products with bad input or a
    forecast the package's contract refuses are reported together at the end, after every good
    product's forecast is written."""
    layout, products = job.layout, list(job.products)
    summary = PartitionSummary(products=products, calibration_sha256=job.calibration_sha256)
    checks = job.checks or RunChecks(job.model_version)
    started = time.perf_counter()
    try:
        catalogue = read_catalogue(layout).set_index("product")
        loaded = load_package(layout, job.model_version, job.pinned_manifest_sha256, job.engine, job.engine_threads)
        with loaded as package:
            summary.model_load_s = time.perf_counter() - started
            summary.package_sha256 = package.manifest.sha256
            summary.quantile_count = len(package.manifest.output.quantiles)
            per_chunk = package.products_per_chunk
            for start in range(0, len(products), per_chunk):
                chunk = products[start : start + per_chunk]
                summary.failures += _score_chunk(job, chunk, package, catalogue, checks, summary)
                if on_progress:
                    on_progress(start + len(chunk), len(products))
    except ScoringError as error:
        summary.failures.append(str(error))
        raise
    finally:
        summary.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if job.summary_url:
            storage.write_bytes_atomic(job.summary_url, summary.to_json())
    log.info("partition done: %s", summary.summary())
    if summary.failures:
        failed = f"{len(summary.failures)} of {len(products)} products failed: "
        raise ScoringError(failed + "; ".join(summary.failures))
    return summary


def as_forecast(
    scored: pd.DataFrame, planned: pd.DataFrame, origin: int, package: ModelPackage
) -> tuple[pd.DataFrame, list[str]]:
    """A package's forecast of one product (whose `planned` series it must cover) as a forecast
    file's rows (quantiles sorted so they never cross, rows in (sku, store, week) order), and the
    problems that keep it from being written."""
    output = package.manifest.output
    expected = [*ROW_KEY, *output.columns]
    if sorted(scored.columns) != sorted(expected):
        return scored, [f"columns differ from {expected} {column_differences(list(scored.columns), expected)}"]
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
    return frame, check_forecast(frame, len(planned), origin, package.version, planned=planned, output=output)


def _score_chunk(
    job: ScoringJob,
    products: list[int],
    package: ModelPackage,
    catalogue: pd.DataFrame,
    checks: RunChecks,
    summary: PartitionSummary,
) -> list[str]:
    """Read, score, check and write a chunk of the job's products; returns the messages of the
    products that could not be scored."""
    layout, origin, run_id, calibration = job.layout, job.origin, job.run_id, job.calibration
    inputs, later_sales, failures = [], {}, []
    for product in products:
        started = time.perf_counter()
        try:
            product_data, later_sales[product] = product_input(layout, product, origin, package.manifest, catalogue)
            inputs.append(product_data)
        except InputDataError as error:
            failures.append(str(error))
            log.error("%s: skipped: %s", product_label(product), error)
        summary.features_s += time.perf_counter() - started
    if not inputs:
        return failures
    scores = package.score(inputs, origin, summary)
    output = package.manifest.output
    schema = forecast_schema(output.columns)
    for product in inputs:
        label = product_label(product.product)
        if product.product in scores.failures:
            failures.append(scores.failures[product.product])
            continue
        if product.product not in scores.forecasts:
            failures.append(f"{label}: model package {package.version} returned no forecast for it")
            continue
        started = time.perf_counter()
        planned = product.plans[list(SERIES_KEY)].drop_duplicates()
        frame, problems = as_forecast(scores.forecasts[product.product], planned, origin, package)
        if problems:
            refused = "; ".join(problems)
            failures.append(f"{label}: model package {package.version} returned a forecast it may not: {refused}")
            log.error("%s: refused: %s", label, problems)
            continue
        actuals, key = later_sales[product.product], str(product.product)
        joined = with_actuals(frame, actuals)
        residuals = residual_sums(joined, output.quantiles, output.horizon) if job.profile_residuals else None
        if calibration:
            model_output = layout.model_output_file(run_id, product.product)
            summary.model_outputs[key] = write_table(model_output, frame, schema)
            frame = calibration.apply(frame, output.columns)
        url = layout.forecast_file(run_id, product.product)
        summary.forecasts[key] = write_table(url, frame, schema)
        problems = _forecast_problems(frame, product, planned, origin, checks, output)
        if problems:
            summary.problems[key] = [f"{url}: {problem}" for problem in problems]
        sums = (
            accuracy_sums(frame, actuals, output.quantiles)
            if calibration
            else joined_sums(joined, len(frame), output.quantiles)
        )
        summary.add_accuracy(sums, residuals, output.quantiles)
        seconds = time.perf_counter() - started
        summary.write_s += seconds
        summary.rows += len(frame)
        summary.products_scored.append(product.product)
        log.info("%s: %d rows scored, written in %.3f s", label, len(frame), seconds)
    return failures


def _forecast_problems(
    frame: pd.DataFrame,
    product: ProductInput,
    planned: pd.DataFrame,
    origin: int,
    checks: RunChecks,
    output: OutputContract,
) -> list[str]:
    """What a written forecast breaks of the run's plan (its model version, the plan's series,
    plausible magnitudes): kept for validation, which fails the run on them."""
    n_series = len(planned) if checks.series_per_product is None else checks.series_per_product[str(product.product)]
    peaks = product.history.groupby(list(SERIES_KEY))["sales"].max()
    return check_forecast(
        frame, n_series, origin, checks.model_version, planned, peaks, checks.max_forecast_ratio, output
    )
