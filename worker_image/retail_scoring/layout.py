"""Where everything lives in storage: the one description of the layout (docs link here). Nobody
else builds storage paths, and every identifier that becomes part of one (model version, model
file name, run id, partition) is checked here.

{root}/data/products/product_007/history.parquet   sku, base_sku, store, week, deal, feat, price1..11, sales
{root}/data/products/product_007/futurex.parquet   the same without sales: the planned weeks after the history
{root}/data/products/product_007/actuals.parquet   sku, store, week, sales of the held-back weeks (demo data)
    (each table may be .csv instead, read when no .parquet is there; schemas in schema.py)
{root}/data/sales_through.json                     the newest week whose sales every product's history holds
{root}/data/catalogue.parquet                      per product: series, SKUs, weeks, columns, the files' stored
                                                   identities (what plans read; stale ones are refused)
{root}/models/{model_version}/manifest.json + the files it lists with their sha256
{root}/runs/{run_id}/manifest.json                 the run's plan, with every partition's products
{root}/runs/{run_id}/forecasts/product_007.parquet sku, store, week, q5..q95, forecast_origin, model_version
{root}/runs/{run_id}/model_output/product_007.parquet  a calibrated run's forecast as the package made it
{root}/runs/{run_id}/logs/{partition}/{stdout,stderr}.txt
{root}/runs/{run_id}/progress/{partition}.json     products written so far (what the score task logs)
{root}/runs/{run_id}/partitions/{partition}.json   a scoring task's summary: products, package sha256, each
                                                   forecast's size, sha256, stored identity and problems,
                                                   failures, accuracy sums, timings, peak memory
{root}/runs/{run_id}/summary_pins.json             each summary's stored identity when its scoring job
                                                   ended (written by Airflow; what validation trusts)
{root}/runs/{run_id}/report/report.md + figure     the planners' and on-call's report
{root}/runs/{run_id}/accuracy.json                 forecast accuracy against actual sales (one
                                                   record per run; read together for the history)
{root}/runs/{run_id}/validation.json
{root}/published/origin_107.json                   what is published for an origin: product -> forecast file
                                                   with its sha256 and stored identity
{root}/current.json                                the current forecast: each product's newest published
                                                   forecast (its origin, run, sha256, stored identity)
{root}/backtests/{backtest_id}/backtest.json       a backtest's plan: packages, origins, products, its runs
{root}/backtests/{backtest_id}/runs/{run_id}/...   its runs, one per package and origin, laid out as above
                                                   (their ids, `{backtest_id}-p{package}-o{origin}`, say so)
{root}/backtests/{backtest_id}/accuracy.json       accuracy by package, origin, step and quantile, as
                                                   forecast and calibrated point-in-time
{root}/backtests/{backtest_id}/calibration/{model_version}.json  the calibration learned for a package
{root}/backtests/{backtest_id}/report/report.md + figure

A scenario's run (retail_scoring.scenarios) keeps the run folder's manifest, logs, progress,
partitions, summary_pins, report and validation.json as above, and instead of forecasts:
{root}/runs/{run_id}/scenario.json                 the scenario document as planning checked it
{root}/runs/{run_id}/output/shard_00017.parquet    one shard's result: its keys, pass-through and output columns
{root}/scenarios/{scenario}/current.json           the current result per key: which table, its sha256 and
                                                   stored identity, and the runs it holds
{root}/scenarios/{scenario}/current/{sha256}.parquet  that table (a new file per publish, never rewritten)
{root}/scenarios/{scenario}/evaluations/{run_id}.json  a run's metrics against the labels its rows hold (what
                                                   its report compares with other packages' runs)
"""

import re
from dataclasses import dataclass
from numbers import Integral

from retail_scoring.errors import UnsafeIdentifierError

# One path segment: no separators (so no traversal), no leading dot (hidden and temporary files), bounded.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
PRODUCT_FOLDER = re.compile(r"product_(\d{3,})")
PUBLISHED_INDEX = re.compile(r"origin_(\d{3,})\.json")
BACKTEST_RUN = re.compile(r"(?P<backtest>.+)-p(?P<package>\d+)-o(?P<origin>\d{3,})")


def checked_identifier(kind: str, value: object) -> str:
    """`value` if it is safe as one path segment and a cloud id, else an error naming it. Every
    identifier from users, manifests or plans passes here before it becomes a path."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:60]}... ({len(str(value))} characters)"
        raise UnsafeIdentifierError(
            f"{kind} {shown} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return value


def checked_product(product: object) -> int:
    if isinstance(product, bool) or not isinstance(product, Integral) or product < 1:
        raise UnsafeIdentifierError(f"product {product!r} is not allowed: product numbers are positive integers")
    return product


def product_label(product: int) -> str:
    return f"product_{checked_product(product):03d}"


def forecast_file_name(product: int) -> str:
    """A forecast's name in its run's forecasts folder (what one listing of the folder gives)."""
    return f"{product_label(product)}.parquet"


def product_of_folder(name: str) -> int | None:
    """The product number of a `product_007` folder name; None for anything else."""
    match = PRODUCT_FOLDER.fullmatch(name)
    return int(match[1]) if match else None


def origin_of_published_index(name: str) -> int | None:
    """The origin of an `origin_107.json` published index; None for anything else."""
    match = PUBLISHED_INDEX.fullmatch(name)
    return int(match[1]) if match else None


def backtest_run_id(backtest_id: str, package: int, origin: int) -> str:
    """The run of a backtest that scores its `package`-th model package at `origin`. A weekly run's
    id ends in a hash (planning.storage_run_id), so it never reads as one."""
    return checked_identifier("run id", f"{backtest_id}-p{package}-o{origin:03d}")


def backtest_of_run(run_id: str) -> str | None:
    """The backtest a run belongs to, None for a weekly run."""
    match = BACKTEST_RUN.fullmatch(run_id)
    return match["backtest"] if match else None


def partition_label(index: int) -> str:
    return f"partition_{index:03d}"


def shard_file_label(number: int) -> str:
    """A shard's name in storage: its number in the run manifest (its label, `state=CA/part_001`,
    holds the dataset's values and is no path segment)."""
    if isinstance(number, bool) or not isinstance(number, Integral) or number < 0:
        raise UnsafeIdentifierError(f"shard {number!r} is not allowed: shards are numbered from 0")
    return f"shard_{number:05d}"


@dataclass(frozen=True)
class StorageLayout:
    root: str

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def products_dir(self) -> str:
        return self._join("data", "products")

    def catalogue(self) -> str:
        return self._join("data", "catalogue.parquet")

    def sales_through(self) -> str:
        return self._join("data", "sales_through.json")

    def product_file(self, product: int, table: str, suffix: str = "parquet") -> str:
        return self._join("data", "products", product_label(product), f"{table}.{suffix}")

    def package_dir(self, model_version: str) -> str:
        return self._join("models", checked_identifier("model_version", model_version))

    def model_file(self, model_version: str, file_name: str) -> str:
        """A file of a model package: the manifest, or a model named by the manifest."""
        return f"{self.package_dir(model_version)}/{checked_identifier('model file name', file_name)}"

    def runs_dir(self) -> str:
        return self._join("runs")

    def run_dir(self, run_id: str) -> str:
        """A run's folder: under `runs/`, or under its backtest's folder for a backtest's run."""
        checked = checked_identifier("run id", run_id)
        backtest = backtest_of_run(checked)
        if backtest:
            return f"{self.backtest_dir(backtest)}/runs/{checked}"
        return self._join("runs", checked)

    def run_manifest(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/manifest.json"

    def forecasts_dir(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/forecasts"

    def forecast_file(self, run_id: str, product: int) -> str:
        return f"{self.forecasts_dir(run_id)}/{forecast_file_name(product)}"

    def model_output_file(self, run_id: str, product: int) -> str:
        return f"{self.run_dir(run_id)}/model_output/{product_label(product)}.parquet"

    def scoring_task_writes(
        self, run_id: str, partition: str, products: list[int], calibrated: bool
    ) -> tuple[str, ...]:
        """Every file a partition's scoring task writes: its products' forecasts, the package's own
        output of a calibrated run, its summary and its progress. The one list of them: the worker
        writes nothing else, and a Batch task is granted exactly these."""
        forecasts = [self.forecast_file(run_id, product) for product in products]
        model_outputs = [self.model_output_file(run_id, product) for product in products] if calibrated else []
        return (
            *forecasts,
            *model_outputs,
            self.partition_summary(run_id, partition),
            self.task_progress(run_id, partition),
        )

    def run_scenario(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/scenario.json"

    def shard_outputs_dir(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/output"

    def shard_output(self, run_id: str, shard: int) -> str:
        return f"{self.shard_outputs_dir(run_id)}/{shard_file_label(shard)}.parquet"

    def scenario_task_writes(self, run_id: str, partition: str, shards: list[int]) -> tuple[str, ...]:
        """Every file a scenario's scoring task writes: its shards' outputs, its summary and its
        progress (the one list, as scoring_task_writes is for a forecast's)."""
        return (
            *(self.shard_output(run_id, shard) for shard in shards),
            self.partition_summary(run_id, partition),
            self.task_progress(run_id, partition),
        )

    def scenario_dir(self, scenario: str) -> str:
        return self._join("scenarios", checked_identifier("scenario name", scenario))

    def scenario_current(self, scenario: str) -> str:
        return f"{self.scenario_dir(scenario)}/current.json"

    def scenario_evaluations_dir(self, scenario: str) -> str:
        return f"{self.scenario_dir(scenario)}/evaluations"

    def scenario_evaluation(self, scenario: str, run_id: str) -> str:
        return f"{self.scenario_evaluations_dir(scenario)}/{checked_identifier('run id', run_id)}.json"

    def scenario_current_table(self, scenario: str, sha256: str) -> str:
        return f"{self.scenario_dir(scenario)}/current/{checked_identifier('sha256', sha256)}.parquet"

    def task_log(self, run_id: str, partition: str, stream: str) -> str:
        return f"{self.run_dir(run_id)}/logs/{checked_identifier('partition', partition)}/{stream}.txt"

    def partition_summaries_dir(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/partitions"

    def partition_summary(self, run_id: str, partition: str) -> str:
        return f"{self.partition_summaries_dir(run_id)}/{checked_identifier('partition', partition)}.json"

    def summary_pins(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/summary_pins.json"

    def task_progress(self, run_id: str, partition: str) -> str:
        return f"{self.run_dir(run_id)}/progress/{checked_identifier('partition', partition)}.json"

    def report_file(self, run_id: str, name: str) -> str:
        return f"{self.run_dir(run_id)}/report/{checked_identifier('report file name', name)}"

    def run_accuracy(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/accuracy.json"

    def validation_report(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/validation.json"

    def published_dir(self) -> str:
        return self._join("published")

    def published_index(self, origin: int) -> str:
        return f"{self.published_dir()}/origin_{origin:03d}.json"

    def current_forecast(self) -> str:
        return self._join("current.json")

    def backtests_dir(self) -> str:
        return self._join("backtests")

    def backtest_dir(self, backtest_id: str) -> str:
        return self._join("backtests", checked_identifier("backtest id", backtest_id))

    def backtest_plan(self, backtest_id: str) -> str:
        return f"{self.backtest_dir(backtest_id)}/backtest.json"

    def backtest_accuracy(self, backtest_id: str) -> str:
        return f"{self.backtest_dir(backtest_id)}/accuracy.json"

    def calibration_file(self, backtest_id: str, model_version: str) -> str:
        return f"{self.backtest_dir(backtest_id)}/calibration/{checked_identifier('model_version', model_version)}.json"

    def backtest_report_file(self, backtest_id: str, name: str) -> str:
        return f"{self.backtest_dir(backtest_id)}/report/{checked_identifier('report file name', name)}"
