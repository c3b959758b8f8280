"""Small operator commands that read storage only (no Airflow server needed).

python -m scoring_airflow.cli latest-data-week   the logical date whose run forecasts the newest data
python -m scoring_airflow.cli summary            where the latest published run's outputs are
"""

import argparse
import json

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from scoring_airflow.planning import logical_date_for_origin
from scoring_airflow.run_steps import origin_range, read_latest
from scoring_airflow.settings import ForecastSettings


def latest_data_week(settings: ForecastSettings) -> str:
    _, last_origin = origin_range(StorageLayout(settings.storage_root), 1)
    return logical_date_for_origin(last_origin, settings.week0_monday).isoformat()


def summary(settings: ForecastSettings) -> str:
    layout = StorageLayout(settings.storage_root)
    latest = read_latest(layout)
    if latest is None:
        return f"no run published yet under {settings.storage_root}"
    report = json.loads(storage.read_bytes(latest["validation_report"]))
    return "\n".join(
        [
            f"latest run:        {latest['run_id']} (published {latest['published_at']})",
            f"forecast origin:   week {latest['origin']}, model {latest['model_version']}",
            f"forecasts:         {latest['forecasts']}",
            f"validation report: {latest['validation_report']} "
            f"({'valid' if report['valid'] else 'INVALID'}, {report['checked_products']} products)",
            f"task logs:         {layout.run_dir(latest['run_id'])}/logs",
            f"report:            {layout.report_file(latest['run_id'], 'report.md')}",
            *accuracy_lines(layout, latest["run_id"]),
            f"run manifest:      {layout.run_manifest(latest['run_id'])}",
        ]
    )


def accuracy_lines(layout: StorageLayout, run_id: str) -> list[str]:
    url = layout.run_accuracy(run_id)
    if not storage.exists(url):
        return ["accuracy:          not computed for this run"]
    accuracy = json.loads(storage.read_bytes(url))
    if not accuracy.get("rows"):
        return ["accuracy:          no actual sales yet for the forecast weeks"]
    return [
        f"accuracy:          median MAPE {accuracy['mape_q50']:.1%} over {accuracy['rows']} rows; "
        f"50% interval covers {accuracy['coverage_50']:.1%}, 90% interval covers {accuracy['coverage_90']:.1%}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scoring_airflow.cli")
    parser.add_argument("command", choices=["latest-data-week", "summary"])
    command = parser.parse_args().command
    settings = ForecastSettings()
    print(latest_data_week(settings) if command == "latest-data-week" else summary(settings))


if __name__ == "__main__":
    main()
