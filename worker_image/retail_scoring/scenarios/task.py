"""What one scoring task of a scenario's run does: load the package once, then shard by shard read
the rows, check them as the scenario declares, score them, check the output and write it. A shard
whose rows or output break the declaration, or whose R code fails, is written nothing and
summarised with the reason; the task goes on with the next shard, so one bad shard costs only
itself, and validation keeps the run from publishing until it is fixed."""

import io
import logging
import resource
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from retail_scoring import storage
from retail_scoring.errors import ScoringError
from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import ScenarioPartitionSummary, ScenarioRunManifest, ScenarioRunPlan
from retail_scoring.scenarios.document import Scenario
from retail_scoring.scenarios.package import load_table_package
from retail_scoring.scenarios.profiles.base import add_metric_sums
from retail_scoring.scenarios.scoring import TableModel, score_shard
from retail_scoring.scenarios.table import ShardDataError, checked_table, read_shard

log = logging.getLogger(__name__)


def read_run_scenario(plan: ScenarioRunPlan) -> Scenario:
    """The run's copy of its scenario, refused unless it is the content planning checked; resolved
    for the run's storage and as-of date."""
    data = storage.read_pinned(plan.scenario_url, plan.scenario_sha256, "when the run was planned")
    return Scenario.from_json(data, plan.scenario_url).for_run(plan.storage_root, plan.as_of)


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def score_scenario_partition(
    layout: StorageLayout,
    manifest: ScenarioRunManifest,
    partition: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScenarioPartitionSummary:
    """Score the partition's shards and write each one's output; write the summary whatever
    happened (ScenarioPartitionSummary), then raise ScoringError if any shard failed, so the task
    ends as failed without the run being retried into the same data."""
    plan = manifest.plan
    numbers = manifest.partitions[partition]
    summary = ScenarioPartitionSummary(shards=list(numbers), scenario_sha256=plan.scenario_sha256)
    started = time.perf_counter()
    try:
        scenario = read_run_scenario(plan)
        with load_table_package(layout, plan.model_version, plan.model_manifest_sha256) as model:
            summary.package_sha256 = plan.model_manifest_sha256  # refused above unless it is that content
            summary.model_load_s = time.perf_counter() - started
            for done, number in enumerate(numbers, start=1):
                _score_one(layout, manifest, scenario, model, number, summary)
                if on_progress:
                    on_progress(done, len(numbers))
    except ScoringError as error:
        summary.error = str(error)
        raise
    finally:
        summary.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        storage.write_bytes_atomic(layout.partition_summary(plan.run_id, partition), summary.to_json())
    log.info(
        "%s done: %d of %d shards scored, %d rows; read %.3f s, score %.3f s, write %.3f s",
        partition, len(summary.outputs), len(numbers), sum(summary.rows.values()),
        summary.read_s, summary.score_s, summary.write_s,
    )  # fmt: skip
    if summary.failures:
        raise ScoringError(
            f"{len(summary.failures)} of {len(numbers)} shards failed: " + "; ".join(summary.failures.values())
        )
    return summary


def _score_one(
    layout: StorageLayout,
    manifest: ScenarioRunManifest,
    scenario: Scenario,
    model: TableModel,
    number: int,
    summary: ScenarioPartitionSummary,
) -> None:
    plan, shard = manifest.plan, manifest.shards[number]
    started = time.perf_counter()
    try:
        dataset = scenario.dataset
        batch = checked_table(read_shard(dataset, shard, plan.storage_root), dataset.columns, dataset.key,
                              f"shard {shard.label}")  # fmt: skip
        summary.read_s += time.perf_counter() - started
        started = time.perf_counter()
        result = score_shard(scenario, model, batch, shard.label, plan.as_of)
        summary.score_s += time.perf_counter() - started
    except ShardDataError as error:
        summary.failures[str(number)] = str(error)
        log.error("shard %s: nothing written: %s", shard.label, error)
        return
    started = time.perf_counter()
    url = layout.shard_output(plan.run_id, number)
    summary.outputs[str(number)] = storage.write_recorded(url, parquet_bytes(result.output))
    summary.rows[str(number)] = len(result.output)
    summary.metric_sums = add_metric_sums(summary.metric_sums, result.metric_sums)
    summary.write_s += time.perf_counter() - started
    log.info("shard %s: %d rows scored, written to %s", shard.label, len(result.output), url)
