"""Where everything lives in storage. Nobody else builds storage paths.

{root}/data/products/product_007/{history,futurex,actuals}.parquet   (or .csv)
{root}/models/{model_version}/manifest.json + one .rds per model
{root}/runs/{run_id}/manifest.json                 the run's plan
{root}/runs/{run_id}/forecasts/product_007.parquet
{root}/runs/{run_id}/logs/{partition}/{stdout,stderr}.txt
{root}/runs/{run_id}/timings/{partition}.json      where a scoring task's seconds went
{root}/runs/{run_id}/report/report.md + figure     the planners' and on-call's report
{root}/runs/{run_id}/accuracy.json                 forecast accuracy against actual sales
{root}/accuracy/by_run.csv                         accuracy of every run, over time
{root}/runs/{run_id}/validation.json
{root}/latest.json                                 pointer to the last published run
"""

from dataclasses import dataclass


def product_label(product: int) -> str:
    return f"product_{product:03d}"


def partition_label(index: int) -> str:
    return f"partition_{index:03d}"


@dataclass(frozen=True)
class StorageLayout:
    root: str

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def products_dir(self) -> str:
        return self._join("data", "products")

    def product_file(self, product: int, table: str, suffix: str = "parquet") -> str:
        return self._join("data", "products", product_label(product), f"{table}.{suffix}")

    def model_set_dir(self, model_version: str) -> str:
        return self._join("models", model_version)

    def run_dir(self, run_id: str) -> str:
        return self._join("runs", run_id)

    def run_manifest(self, run_id: str) -> str:
        return self._join("runs", run_id, "manifest.json")

    def forecast_file(self, run_id: str, product: int) -> str:
        return self._join("runs", run_id, "forecasts", f"{product_label(product)}.parquet")

    def task_log(self, run_id: str, partition: str, stream: str) -> str:
        return self._join("runs", run_id, "logs", partition, f"{stream}.txt")

    def task_timings(self, run_id: str, partition: str) -> str:
        return self._join("runs", run_id, "timings", f"{partition}.json")

    def report_file(self, run_id: str, name: str) -> str:
        return self._join("runs", run_id, "report", name)

    def run_accuracy(self, run_id: str) -> str:
        return self._join("runs", run_id, "accuracy.json")

    def accuracy_history(self) -> str:
        return self._join("accuracy", "by_run.csv")

    def validation_report(self, run_id: str) -> str:
        return self._join("runs", run_id, "validation.json")

    def latest_pointer(self) -> str:
        return self._join("latest.json")
