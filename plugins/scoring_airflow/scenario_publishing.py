"""The publish task of a scenario's run (publishing mode `current_per_key`): the run's validated
shard outputs, each read back and checked against the sha256 its scoring task recorded, merged
into the scenario's current table so that each key keeps its newest version
(scenarios.current.newest_per_key). The table is a new file per publish, named by its content,
and `current.json` points at it, swapped by compare-and-swap: a reader sees the old table or the
new one, never half, and publishers finishing together lose nothing."""

import logging
from dataclasses import asdict

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from retail_scoring import storage
from retail_scoring.errors import ContentChangedError
from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import ScenarioRunPlan
from retail_scoring.scenarios.current import newest_per_key
from retail_scoring.scenarios.document import Scenario
from retail_scoring.scenarios.task import parquet_bytes, read_run_scenario
from scoring_airflow.outages import survives_outages
from scoring_airflow.partitions import problem_list
from scoring_airflow.scenario_validation import checked_scenario_partitions, read_scenario_manifest
from scoring_airflow.task_documents import ScenarioPublishResult
from scoring_airflow.validation import ValidationFailed, describe_problems

log = logging.getLogger(__name__)


def publish_key(scenario: Scenario) -> tuple[str, ...]:
    """What a current result is kept per: the dataset's key without the version column (a
    customer, whose key in the data also holds the snapshot)."""
    return tuple(column for column in scenario.dataset.key if column != scenario.publishing.version_column)


def run_output(layout: StorageLayout, plan: ScenarioRunPlan) -> pa.Table:
    """Every shard's output as validated, each file's content checked once more against its
    task's record; ValidationFailed, nothing published, when any partition or file is not."""
    manifest = read_scenario_manifest(plan)
    problems, tables = {}, []
    for checked in checked_scenario_partitions(layout, manifest):
        problems[checked.name] = dict(checked.problems)
        for number, written in checked.summary.outputs.items() if checked.summary else ():
            url = layout.shard_output(plan.run_id, int(number))
            try:  # the bytes published are the bytes validated, whatever happened since the listing
                data = storage.read_pinned(url, written.sha256, "by its scoring task")
            except ContentChangedError as error:
                problems[checked.name][manifest.shards[int(number)].label] = [str(error)]
                continue
            tables.append(pq.read_table(pa.BufferReader(data)))
    if found := problem_list(problems):
        raise ValidationFailed("changed since validation; nothing published:\n" + describe_problems(found))
    return pa.concat_tables(tables)


def refuse_repeated_keys(output: pa.Table, key: tuple[str, ...], run_id: str) -> None:
    """Two rows of one run for one key (two shards holding a customer) would make the current
    result depend on row order: refused, naming the key."""
    counts = output.group_by(list(key)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    if len(repeated):
        named = ", ".join(f"{column}={repeated[column][0].as_py()}" for column in key)
        raise ValidationFailed(
            f"run {run_id}: {len(repeated)} keys have more than one result, first {named}; each key belongs to "
            "one row of one shard: nothing published"
        )


def read_current_table(pointer: dict) -> pa.Table:
    """The current table as its index pins it (ContentChangedError otherwise)."""
    return pq.read_table(pa.BufferReader(storage.read_pinned(pointer["table"], pointer["sha256"], "in its index")))


@survives_outages
def publish_scenario_run(plan: ScenarioRunPlan) -> dict:
    """Merge the run's validated output into the scenario's current table (see the module's doc)."""
    layout = StorageLayout(plan.storage_root)
    scenario = read_run_scenario(plan)
    key, version = publish_key(scenario), scenario.publishing.version_column
    output = run_output(layout, plan)
    refuse_repeated_keys(output, key, plan.run_id)

    def merged(pointer: dict | None) -> dict:
        current = read_current_table(pointer) if pointer else output.schema.empty_table()
        table = newest_per_key(current, output, key, version)
        data = parquet_bytes(table)
        sha256 = storage.sha256_hex(data)
        if pointer and pointer["sha256"] == sha256:
            return pointer  # published before (a rerun of this task): nothing changes
        url = layout.scenario_current_table(scenario.name, sha256)
        written = storage.write_recorded(url, data)
        runs = {**(pointer or {}).get("runs", {}), plan.run_id: plan.as_of}
        return {"table": url, **asdict(written), "rows": len(table), "runs": runs}

    index = layout.scenario_current(scenario.name)
    pointer = storage.update_json(index, merged)
    log.info(
        "published %d rows of run %s (as of %s) into %s: %d rows current",
        len(output), plan.run_id, plan.as_of, pointer["table"], pointer["rows"],
    )  # fmt: skip
    return ScenarioPublishResult(scenario.name, plan.as_of, plan.run_id, len(output), pointer["rows"], index).to_dict()
