"""The validate task of a scenario's run: every partition's pinned summary and its shards' outputs
as stored, checked from P summaries and two listings, never a row; the verdict written; the run
failed on any problem, so nothing of it is published."""

from collections.abc import Iterator
from dataclasses import dataclass

from retail_scoring import storage
from retail_scoring.layout import StorageLayout, shard_file_label
from retail_scoring.run.contract import ContractError, ScenarioPartitionSummary, ScenarioRunManifest, ScenarioRunPlan
from scoring_airflow.outages import survives_outages
from scoring_airflow.partitions import read_summary_pins, stored_summaries, why_summary_untrusted
from scoring_airflow.validation import record_verdict


def read_scenario_manifest(plan: ScenarioRunPlan) -> ScenarioRunManifest:
    return ScenarioRunManifest.from_json(storage.read_bytes(plan.run_manifest), plan.run_manifest)


@dataclass(frozen=True)
class CheckedScenarioPartition:
    """One partition as validation sees it: its problems by shard label (`summary` for the whole),
    empty when valid, and its summary when one is trusted."""

    name: str
    problems: dict[str, list[str]]
    summary: ScenarioPartitionSummary | None


def summary_problems(
    layout: StorageLayout, manifest: ScenarioRunManifest, partition: str, summary: ScenarioPartitionSummary | None
) -> list[str]:
    """What keeps a partition's summary as a whole from vouching for its shards: none written (its
    task has not finished), other scenario or package content than the run pins, other shards
    than the plan gives it, or an error that stopped the partition."""
    plan = manifest.plan
    url = layout.partition_summary(plan.run_id, partition)
    if summary is None:
        return [f"{url}: missing: the partition's scoring task has not finished"]
    if summary.scenario_sha256 != plan.scenario_sha256:
        return [f"{url}: scored with scenario content {summary.scenario_sha256[:12]}, the run pins "
                f"{plan.scenario_sha256[:12]}"]  # fmt: skip
    if summary.error:
        return [f"{url}: {summary.error}"]
    if summary.package_sha256 != plan.model_manifest_sha256:
        return [f"{url}: scored with model package content {summary.package_sha256[:12]}, the run pins "
                f"{plan.model_manifest_sha256[:12]}"]  # fmt: skip
    if summary.shards != manifest.partitions[partition]:
        return [f"{url}: written for other shards than the run's plan gives the partition"]
    return []


def shard_problems(
    layout: StorageLayout, manifest: ScenarioRunManifest, summary: ScenarioPartitionSummary, stored: dict[str, str]
) -> dict[str, list[str]]:
    """Each of the summary's shards that failed or whose output is not in storage as its task
    wrote it (`stored`: file name -> stored identity, from one listing), by shard label."""
    problems = {}
    for number in summary.shards:
        label, url = manifest.shards[number].label, layout.shard_output(manifest.plan.run_id, number)
        written, identity = summary.outputs.get(str(number)), stored.get(f"{shard_file_label(number)}.parquet")
        if str(number) in summary.failures:
            problems[label] = [summary.failures[str(number)]]
        elif written is None:
            problems[label] = [f"{url}: its scoring task recorded no output for it"]
        elif identity is None:
            problems[label] = [f"{url}: missing"]
        elif not storage.matches_record(url, identity, written):
            problems[label] = [f"{url}: not the file the partition's scoring task wrote (written again since)"]
    return problems


def checked_scenario_partitions(
    layout: StorageLayout, manifest: ScenarioRunManifest
) -> Iterator[CheckedScenarioPartition]:
    """Every partition checked, one summary in memory at a time, from P summary reads and two
    listings (summaries, outputs)."""
    run_id = manifest.plan.run_id
    pins, summaries_now = read_summary_pins(layout, run_id), stored_summaries(layout, run_id)
    outputs = storage.list_identities(layout.shard_outputs_dir(run_id))
    for partition in manifest.partitions:
        distrust = why_summary_untrusted(layout, run_id, partition, summaries_now.get(partition), pins)
        summary = None
        if not distrust and partition in summaries_now:
            url = layout.partition_summary(run_id, partition)
            try:
                summary = ScenarioPartitionSummary.from_json(storage.read_bytes(url), url)
            except ContractError as error:
                distrust = str(error)
        found = [distrust] if distrust else summary_problems(layout, manifest, partition, summary)
        if found:
            yield CheckedScenarioPartition(partition, {"summary": found}, None)
        else:
            yield CheckedScenarioPartition(partition, shard_problems(layout, manifest, summary, outputs), summary)


@survives_outages
def validate_scenario_run(plan: ScenarioRunPlan) -> dict:
    """Check every partition's summary and outputs; write the verdict; fail naming every problem."""
    layout = StorageLayout(plan.storage_root)
    partitions = {c.name: c.problems for c in checked_scenario_partitions(layout, read_scenario_manifest(plan))}
    return record_verdict(layout, plan.run_id, partitions, plan.shard_count, "shards")
