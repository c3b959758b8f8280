"""A run's partitions as its manifest lists them and as their scoring tasks summarised them: what
Airflow's tasks read instead of every product's files, so their time and memory do not grow with
the number of products.

A summary cannot vouch for itself: it is trusted only while storage gives it the identity it had
when its scoring job ended, which the score task pins (`runs/{run}/summary_pins.json`, written by
Airflow, never granted to a task); and a forecast only while storage gives it the identity its
summary recorded when the task wrote it."""

from retail_scoring import storage
from retail_scoring.layout import StorageLayout, partition_label

SUMMARY_SUFFIX = ".json"


def partition_labels(plan: dict) -> list[str]:
    return [partition_label(index) for index in range(plan["partition_count"])]


def run_partitions(plan: dict) -> dict[str, list[int]]:
    """Each partition's products, from the run manifest in storage (the plan in XCom has only counts)."""
    return storage.read_json(plan["run_manifest"])["partitions"]


def read_summary(layout: StorageLayout, run_id: str, partition: str) -> dict | None:
    return storage.read_json(layout.partition_summary(run_id, partition))


def stored_forecasts(layout: StorageLayout, run_id: str) -> dict[str, str]:
    """The run's forecast files and their stored identities, from one listing of its forecasts folder."""
    return storage.list_identities(layout.forecasts_dir(run_id))


def stored_summaries(layout: StorageLayout, run_id: str) -> dict[str, str]:
    """Each partition's summary and its stored identity, from one listing."""
    folder = layout.partition_summaries_dir(run_id)
    return {
        name.removesuffix(SUMMARY_SUFFIX): identity
        for name, identity in storage.list_identities(folder).items()
        if name.endswith(SUMMARY_SUFFIX)
    }


def pin_summaries(layout: StorageLayout, run_id: str, partitions: list[str]) -> dict[str, str]:
    """Record the summaries of `partitions` as they are now (their scoring job has ended), so that
    validation and publishing refuse a summary written again since, by whoever."""
    stored = stored_summaries(layout, run_id)
    pins = {partition: stored[partition] for partition in partitions if partition in stored}
    storage.update_json(layout.summary_pins(run_id), lambda current: {**(current or {}), **pins})
    return pins


def read_summary_pins(layout: StorageLayout, run_id: str) -> dict[str, str]:
    return storage.read_json(layout.summary_pins(run_id)) or {}


def partition_problems(
    layout: StorageLayout,
    run_id: str,
    partition: str,
    products: list[int],
    summary: dict | None,
    forecasts: dict[str, str],
    package_sha256: str,
) -> dict[str, list[str]]:
    """What keeps a partition's forecasts from being valid, by product (`summary` for the partition
    as a whole): no summary (its task has not finished), a summary of other package content than
    the run pins (the package was replaced since), failed products, the problems its task found in
    the forecasts it wrote, and forecast files missing from storage or not the ones the task wrote
    (`forecasts`: name -> stored identity, from one listing). Empty when the partition is valid."""
    summary_url = layout.partition_summary(run_id, partition)
    if summary is None:
        return {"summary": [f"{summary_url}: missing: the partition's scoring task has not finished"]}
    scored_with = summary.get("package_sha256")  # absent from summaries of versions before the pins
    if scored_with != package_sha256:
        return {
            "summary": [
                f"{summary_url}: scored with model package content {str(scored_with)[:12]}, but the run "
                f"pins {package_sha256[:12]} (the package was replaced since): every partition is scored again"
            ]
        }
    if summary["products"] != products:
        return {"summary": [f"{summary_url}: written for other products than the run's plan gives the partition"]}
    problems = {"summary": list(summary["failures"])} if summary["failures"] else {}
    for product in products:
        url = layout.forecast_file(run_id, product)
        found = list(summary["problems"].get(str(product), []))
        written = summary["forecasts"].get(str(product))
        stored = forecasts.get(url.rsplit("/", 1)[-1])
        if stored is None:
            found.append(f"{url}: missing")
        elif written is None or stored != written["identity"]:
            found.append(f"{url}: not the file the partition's scoring task wrote (written again since)")
        if found:
            problems[str(product)] = found
    return problems


def run_problems(layout: StorageLayout, plan: dict) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict]]:
    """Every partition's problems (empty when valid) and summaries, from P summary reads and two
    listings: a summary counts only as pinned when its scoring job ended."""
    run_id = plan["run_id"]
    pins, summaries_now = read_summary_pins(layout, run_id), stored_summaries(layout, run_id)
    forecasts = stored_forecasts(layout, run_id)
    problems, summaries = {}, {}
    for partition, products in run_partitions(plan).items():
        url = layout.partition_summary(run_id, partition)
        if partition in summaries_now and summaries_now[partition] != pins.get(partition):
            why = (
                "written again after its scoring job ended"
                if partition in pins
                else "its scoring job's end was not seen"
            )
            problems[partition] = {"summary": [f"{url}: {why}; not trusted"]}
            continue
        summaries[partition] = read_summary(layout, run_id, partition)
        problems[partition] = partition_problems(
            layout, run_id, partition, products, summaries[partition], forecasts, plan["model_manifest_sha256"]
        )
    return problems, summaries


def recorded_forecast(layout: StorageLayout, run_id: str, product: int) -> dict | None:
    """What the scoring task that wrote a run's forecast of `product` recorded of it (bytes,
    sha256, stored identity), or None when no pinned summary of the run records it."""
    manifest = storage.read_json(layout.run_manifest(run_id)) or {"partitions": {}}
    for partition, products in manifest["partitions"].items():
        if product in products:
            pinned = read_summary_pins(layout, run_id).get(partition)
            if pinned is None or stored_summaries(layout, run_id).get(partition) != pinned:
                return None
            return ((read_summary(layout, run_id, partition) or {}).get("forecasts") or {}).get(str(product))
    return None
