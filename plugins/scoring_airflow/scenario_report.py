"""The report of a scenario's run: its metrics against the labels its rows hold (the profile's:
AUC, Brier score and log loss for a classifier; RMSE and MAE for a regression), from the
partitions' summed sums, beside every other package's run of the same scenario over the same
rows (a champion and its challengers), and where the seconds went."""

import hashlib
import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime

import pandas as pd

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import ScenarioRunManifest, ScenarioRunPlan
from retail_scoring.scenarios.profiles import profile_for
from retail_scoring.scenarios.profiles.base import add_metric_sums
from retail_scoring.scenarios.task import read_run_scenario
from scoring_airflow.outages import survives_outages
from scoring_airflow.scenario_validation import checked_scenario_partitions, read_scenario_manifest

log = logging.getLogger(__name__)


def rows_digest(manifest: ScenarioRunManifest) -> str:
    """What identifies the rows a run scored: its shards' files and row ranges. Runs of one
    scenario with the same digest scored the same rows, so their metrics compare."""
    pieces = [asdict(shard) for shard in manifest.shards]
    return hashlib.sha256(json.dumps(pieces, sort_keys=True).encode()).hexdigest()


def run_evaluation(layout: StorageLayout, plan: ScenarioRunPlan) -> dict:
    """The run's evaluation record: its metrics over the rows of the shards it scored and trusts."""
    manifest = read_scenario_manifest(plan)
    scenario = read_run_scenario(plan)
    sums, scored = {}, 0
    for checked in checked_scenario_partitions(layout, manifest):
        if checked.summary:
            sums = add_metric_sums(sums, checked.summary.metric_sums)
            scored += sum(checked.summary.rows.values())
    profile = profile_for(scenario.profile, scenario.parameters, plan.scenario_url)
    return {
        "run_id": plan.run_id,
        "scenario": plan.scenario_name,
        "as_of": plan.as_of,
        "model_version": plan.model_version,
        "published": plan.publish,
        "rows": plan.row_count,
        "rows_scored": scored,
        "rows_digest": rows_digest(manifest),
        "metrics": profile.metrics(sums) if sums.get("rows") else {},
        "evaluated_at": datetime.now(UTC).isoformat(),
    }


def comparison(layout: StorageLayout, evaluation: dict) -> pd.DataFrame:
    """Every package's newest evaluated run over the same rows as `evaluation`, one row each."""
    folder = layout.scenario_evaluations_dir(evaluation["scenario"])
    records = [storage.read_json(f"{folder}/{name}") for name in storage.list_names(folder) if name.endswith(".json")]
    same = sorted(
        (r for r in records if r and r["rows_digest"] == evaluation["rows_digest"] and r["metrics"]),
        key=lambda record: record["evaluated_at"],
    )
    if not same:
        return pd.DataFrame()
    table = pd.DataFrame([{"model_version": r["model_version"], "run_id": r["run_id"], **r["metrics"]} for r in same])
    return table.drop_duplicates("model_version", keep="last").sort_values("model_version", ignore_index=True)


@survives_outages
def write_scenario_report(plan: ScenarioRunPlan) -> str:
    """Record the run's evaluation and write its report; returns the report's URL."""
    layout = StorageLayout(plan.storage_root)
    evaluation = run_evaluation(layout, plan)
    storage.write_bytes_atomic(
        layout.scenario_evaluation(plan.scenario_name, plan.run_id), json.dumps(evaluation, indent=2).encode()
    )
    compared = comparison(layout, evaluation)
    metrics = (
        compared.to_markdown(index=False, floatfmt=".4f")
        if not compared.empty
        else "(no row of the run holds its label: nothing to evaluate yet)"
    )
    lines = [
        f"# Scenario {plan.scenario_name}: run {plan.run_id}",
        "",
        f"As of {plan.as_of}, model package {plan.model_version} "
        f"({'published' if plan.publish else 'a challenger: not published'}): {evaluation['rows_scored']} of "
        f"{plan.row_count} rows scored in {plan.shard_count} shards, {plan.partition_count} partitions.",
        "",
        "## Metrics against the labels the rows hold, every package's run over the same rows",
        "",
        metrics,
        "",
    ]
    url = layout.report_file(plan.run_id, "report.md")
    storage.write_bytes_atomic(url, "\n".join(lines).encode())
    log.info("report at %s", url)
    return url
