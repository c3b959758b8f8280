"""A run's partitions as its manifest lists them and as their scoring tasks summarised them: what
Airflow's tasks read instead of every product's files, so their time and memory do not grow with
the number of products."""

import json

from retail_scoring import storage
from retail_scoring.layout import StorageLayout, partition_label


def partition_labels(plan: dict) -> list[str]:
    return [partition_label(index) for index in range(plan["partition_count"])]


def run_partitions(plan: dict) -> dict[str, list[int]]:
    """Each partition's products, from the run manifest in storage (the plan in XCom has only counts)."""
    return json.loads(storage.read_bytes(plan["run_manifest"]))["partitions"]


def read_summary(layout: StorageLayout, run_id: str, partition: str) -> dict | None:
    url = layout.partition_summary(run_id, partition)
    return json.loads(storage.read_bytes(url)) if storage.exists(url) else None


def forecast_sizes(layout: StorageLayout, run_id: str) -> dict[str, int]:
    """The run's forecast files and their sizes, from one listing of its forecasts folder."""
    return storage.list_sizes(layout.forecasts_dir(run_id))


def partition_problems(
    layout: StorageLayout, run_id: str, partition: str, products: list[int], summary: dict | None, sizes: dict[str, int]
) -> dict[str, list[str]]:
    """What keeps a partition's forecasts from being valid, by product (`summary` for the partition
    as a whole): no summary (its task has not finished), failed products, the problems its task
    found in the forecasts it wrote, and forecast files missing from storage or not the size the
    task wrote (replaced by something else since). Empty when the partition is valid."""
    summary_url = layout.partition_summary(run_id, partition)
    if summary is None:
        return {"summary": [f"{summary_url}: missing: the partition's scoring task has not finished"]}
    if summary["products"] != products:
        return {"summary": [f"{summary_url}: written for other products than the run's plan gives the partition"]}
    problems = {"summary": list(summary["failures"])} if summary["failures"] else {}
    for product in products:
        url = layout.forecast_file(run_id, product)
        found = list(summary["problems"].get(str(product), []))
        written = summary["forecast_bytes"].get(str(product))
        stored = sizes.get(url.rsplit("/", 1)[-1])
        if stored is None:
            found.append(f"{url}: missing")
        elif stored != written:
            found.append(f"{url}: not the file the partition's scoring task wrote ({stored} bytes, it wrote {written})")
        if found:
            problems[str(product)] = found
    return problems
