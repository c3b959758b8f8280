"""The validate task: every partition's pinned summary and its forecasts as stored, checked from
P summaries and two listings; the report written; the run failed on any problem."""

import json
import logging
from datetime import UTC, datetime

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import RunPlan
from scoring_airflow.outages import survives_outages
from scoring_airflow.partitions import problem_list, read_run_manifest, run_problems
from scoring_airflow.task_documents import ValidationReport

log = logging.getLogger(__name__)


class ValidationFailed(Exception):
    """The run's forecasts are incomplete or wrong; the report in storage lists every problem."""


@survives_outages
def validate_run(plan: RunPlan) -> dict:
    """Check every partition's summary (its scoring task checked each forecast as it wrote it; the
    score task pinned the summary when the job ended) and that the forecasts it names are in
    storage as written; write the report, fail with a readable summary. Reads P summaries and two
    listings, never the N forecasts."""
    layout = StorageLayout(plan.storage_root)
    partitions = run_problems(layout, read_run_manifest(plan))
    return record_verdict(layout, plan.run_id, partitions, plan.product_count, "products")


def record_verdict(
    layout: StorageLayout, run_id: str, partitions: dict[str, dict[str, list[str]]], checked: int, unit: str
) -> dict:
    """Write the run's verdict on its partitions' problems (`checked` products or shards) and
    return it; ValidationFailed naming the problems when there are any."""
    problems = problem_list(partitions)
    report = ValidationReport(run_id, not problems, checked, len(problems), partitions, datetime.now(UTC).isoformat())
    report_url = layout.validation_report(run_id)
    storage.write_bytes_atomic(report_url, json.dumps(report.to_dict(), indent=2).encode())
    if problems:
        raise ValidationFailed(
            f"{len(problems)} problems in partitions {[p for p, found in partitions.items() if found]} "
            f"(full report: {report_url}):\n" + describe_problems(problems)
        )
    log.info("all %d %s valid; report at %s", checked, unit, report_url)
    return report.to_dict()


def describe_problems(problems: list[str], shown: int = 20) -> str:
    more = f"\n... and {len(problems) - shown} more" if len(problems) > shown else ""
    return "\n".join(f"- {problem}" for problem in problems[:shown]) + more
