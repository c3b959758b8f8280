"""A run's partitions as its manifest lists them and as their scoring tasks summarised them: what
Airflow's tasks read instead of every product's files, so their time and memory do not grow with
the number of products.

A summary cannot vouch for itself: it is trusted only while storage gives it the identity it had
when its scoring job ended, which the score task pins (`runs/{run}/summary_pins.json`, written by
Airflow, never granted to a task); and a forecast only while storage gives it the identity its
summary recorded when the task wrote it."""

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from retail_scoring import storage
from retail_scoring.layout import StorageLayout, forecast_file_name, partition_label
from retail_scoring.run.contract import ContractError, PartitionSummary, RunManifest, RunPlan, ScenarioRunPlan
from retail_scoring.storage import RecordedFile

SUMMARY_SUFFIX = ".json"


def partition_labels(plan: RunPlan | ScenarioRunPlan) -> list[str]:
    return [partition_label(index) for index in range(plan.partition_count)]


def read_run_manifest(plan: RunPlan) -> RunManifest:
    """The run manifest in storage, with each partition's products (the plan in XCom has only counts)."""
    return RunManifest.from_json(storage.read_bytes(plan.run_manifest), plan.run_manifest)


def read_summary(layout: StorageLayout, run_id: str, partition: str) -> PartitionSummary | None:
    """A partition's summary, or None when its task has not written one. A summary of another
    contract version (written before an upgrade) raises ContractError."""
    url = layout.partition_summary(run_id, partition)
    try:
        return PartitionSummary.from_json(storage.read_bytes(url), url)
    except FileNotFoundError:
        return None


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


def pin_summaries(layout: StorageLayout, run_id: str, partitions: list[str]) -> dict[str, RecordedFile]:
    """Record the summaries of `partitions` as they are now (their scoring job has ended: identity
    and sha256), so that validation and publishing refuse a summary written again since, by
    whoever, and recognise it by content in storage copied or restored since."""
    stored = stored_summaries(layout, run_id)
    pins = {}
    for partition in partitions:
        if partition in stored:
            data = storage.read_bytes(layout.partition_summary(run_id, partition))
            pins[partition] = RecordedFile(len(data), storage.sha256_hex(data), stored[partition])
    documents = {partition: asdict(pin) for partition, pin in pins.items()}
    storage.update_json(layout.summary_pins(run_id), lambda current: {**(current or {}), **documents})
    return pins


def read_summary_pins(layout: StorageLayout, run_id: str) -> dict[str, RecordedFile]:
    """The pinned summaries; a pin of an older release (an identity alone) counts as none, so its
    partition is scored again, as the older contract version of its summary would be anyway."""
    pins = storage.read_json(layout.summary_pins(run_id)) or {}
    return {partition: RecordedFile(**pin) for partition, pin in pins.items() if isinstance(pin, dict)}


def why_summary_untrusted(
    layout: StorageLayout, run_id: str, partition: str, stored: str | None, pins: dict[str, RecordedFile]
) -> str | None:
    """Why the partition's summary (of stored identity `stored`, None: none) is not to be trusted,
    None when it is: pinned when its scoring job ended, and storage still gives it that identity,
    or, copied or restored since, that content."""
    if stored is None:
        return None
    url = layout.partition_summary(run_id, partition)
    if partition not in pins:
        return f"{url}: its scoring job's end was not seen; not trusted"
    if not storage.matches_record(url, stored, pins[partition]):
        return f"{url}: written again after its scoring job ended; not trusted"
    return None


def partition_problems(
    layout: StorageLayout,
    run_id: str,
    partition: str,
    products: list[int],
    summary: PartitionSummary | None,
    forecasts: dict[str, str],
    package_sha256: str,
    calibration_sha256: str | None,
) -> dict[str, list[str]]:
    """What keeps a partition's forecasts from being valid, by product (`summary` for the partition
    as a whole): no summary (its task has not finished), a summary of other package content or
    calibration than the run pins (replaced since: a run never mixes two), failed products, the
    problems its task found in the forecasts it wrote, and forecast files missing from storage or
    not the ones the task wrote (`forecasts`: name -> stored identity, from one listing). Empty
    when the partition is valid."""
    summary_url = layout.partition_summary(run_id, partition)
    if summary is None:
        return {"summary": [f"{summary_url}: missing: the partition's scoring task has not finished"]}
    if summary.package_sha256 != package_sha256:
        return {
            "summary": [
                f"{summary_url}: scored with model package content {summary.package_sha256[:12]}, but the run "
                f"pins {package_sha256[:12]} (the package was replaced since): every partition is scored again"
            ]
        }
    if summary.calibration_sha256 != calibration_sha256:
        return {
            "summary": [
                f"{summary_url}: calibrated with {_content(summary.calibration_sha256)}, but the run pins "
                f"{_content(calibration_sha256)} (the calibration changed since): every partition is scored again"
            ]
        }
    if summary.products != products:
        return {"summary": [f"{summary_url}: written for other products than the run's plan gives the partition"]}
    problems = {"summary": list(summary.failures)} if summary.failures else {}
    folder = layout.forecasts_dir(run_id)
    for product in products:
        name = forecast_file_name(product)
        url = f"{folder}/{name}"  # layout.forecast_file, without checking the run id once per product
        found = list(summary.problems.get(str(product), []))
        written = summary.forecasts.get(str(product))
        stored = forecasts.get(name)
        if stored is None:
            found.append(f"{url}: missing")
        elif written is None or not storage.matches_record(url, stored, written):
            found.append(f"{url}: not the file the partition's scoring task wrote (written again since)")
        if found:
            problems[str(product)] = found
    return problems


@dataclass(frozen=True)
class CheckedPartition:
    """One partition as validation sees it: its problems (empty when valid) and its summary when
    one is trusted (pinned when its scoring job ended, of this contract version)."""

    name: str
    problems: dict[str, list[str]]
    summary: PartitionSummary | None


def checked_partitions(layout: StorageLayout, manifest: RunManifest) -> Iterator[CheckedPartition]:
    """Every partition checked, one summary in memory at a time (a 200-product partition's residual
    profile alone is megabytes: callers keep what they need of each), from P summary reads and two
    listings. A summary written before an upgrade gets its partition scored again."""
    run_id = manifest.plan.run_id
    pins, summaries_now = read_summary_pins(layout, run_id), stored_summaries(layout, run_id)
    forecasts = stored_forecasts(layout, run_id)
    for partition, products in manifest.partitions.items():
        distrust = why_summary_untrusted(layout, run_id, partition, summaries_now.get(partition), pins)
        if distrust:
            yield CheckedPartition(partition, {"summary": [distrust]}, None)
            continue
        try:
            summary = read_summary(layout, run_id, partition)
        except ContractError as error:
            yield CheckedPartition(partition, {"summary": [str(error)]}, None)
            continue
        problems = partition_problems(
            layout,
            run_id,
            partition,
            products,
            summary,
            forecasts,
            manifest.plan.model_manifest_sha256,
            manifest.plan.calibration_sha256,
        )
        yield CheckedPartition(partition, problems, summary)


def _content(sha256: str | None) -> str:
    return f"calibration content {sha256[:12]}" if sha256 else "no calibration"


def run_problems(layout: StorageLayout, manifest: RunManifest) -> dict[str, dict[str, list[str]]]:
    """Every partition's problems, empty when valid."""
    return {checked.name: checked.problems for checked in checked_partitions(layout, manifest)}


def problem_list(problems: dict[str, dict[str, list[str]]]) -> list[str]:
    return [problem for found in problems.values() for listed in found.values() for problem in listed]


def recorded_forecast(layout: StorageLayout, run_id: str, product: int) -> RecordedFile | None:
    """What the scoring task that wrote a run's forecast of `product` recorded of it (bytes,
    sha256, stored identity), or None when no pinned summary of this contract version records it."""
    url = layout.run_manifest(run_id)
    try:
        manifest = RunManifest.from_json(storage.read_bytes(url), url)
        partition = next((p for p, products in manifest.partitions.items() if product in products), None)
        if partition is None:
            return None
        stored = stored_summaries(layout, run_id).get(partition)
        if stored is None or why_summary_untrusted(
            layout, run_id, partition, stored, read_summary_pins(layout, run_id)
        ):
            return None
        summary = read_summary(layout, run_id, partition)
    except (FileNotFoundError, ContractError):
        return None
    return summary.forecasts.get(str(product)) if summary else None
