"""The figures of scripts/backtest_demo.sh: per package, its intervals over the compared origins as
forecast and calibrated point-in-time, and at origin 107 what the backtest computed from its
summaries beside what a calibrated weekly run of all products measured."""

import sys

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import RunManifest
from scoring_airflow.report import accuracy_history
from scoring_airflow.settings import ForecastSettings

FIGURES = "50% covers {coverage_50:.1%}, 90% covers {coverage_90:.1%}, median pinball {pinball_q50:.1f}"


def calibrated_weekly_run(layout: StorageLayout, model_version: str) -> dict:
    """The newest calibrated run of `model_version` at origin 107: its accuracy record."""
    history = accuracy_history(layout)
    runs = history[(history["model_version"] == model_version) & (history["origin"] == 107)]
    for record in reversed(runs.to_dict("records")):
        plan = RunManifest.from_json(storage.read_bytes(layout.run_manifest(record["run_id"])), "").plan
        if plan.calibration_url:
            return record
    raise SystemExit(f"no calibrated run of {model_version} at origin 107")


def main(backtest_id: str, *model_versions: str) -> None:
    layout = StorageLayout(ForecastSettings().storage_root)
    record = storage.read_json(layout.backtest_accuracy(backtest_id))
    compared = record["compared_origins"]
    print(f"backtest {backtest_id}: compared origins {compared[0]}..{compared[-1]}, product 1")
    for version in model_versions:
        package = record["packages"][version]
        forecast, calibrated = package["compared"]["forecast"], package["compared"]["calibrated"]
        change = calibrated["pinball_q50"] / forecast["pinball_q50"] - 1
        print(f"{version}:")
        print(f"  as forecast:  {FIGURES.format(**forecast)}")
        print(f"  calibrated:   {FIGURES.format(**calibrated)} ({change:+.1%})")
        at_107 = package["by_origin"]["107"]["calibrated"]
        weekly = calibrated_weekly_run(layout, version)
        print(f"  origin 107, backtest (product 1, from summaries): {FIGURES.format(**at_107)}")
        print(f"  origin 107, calibrated weekly run ({weekly['products']} products): {FIGURES.format(**weekly)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
