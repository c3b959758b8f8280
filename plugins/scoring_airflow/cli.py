"""Small operator commands that read storage only (no Airflow server needed).

python -m scoring_airflow.cli latest-origin      the newest origin the data allows (the main job's)
python -m scoring_airflow.cli summary            the current forecast and where its outputs are
python -m scoring_airflow.cli backtests          every finished backtest: packages compared, calibrations
python -m scoring_airflow.cli latest-backtest    the newest finished backtest's id
python -m scoring_airflow.cli import-connections the compose deployment's connections, from its environment
python -m scoring_airflow.cli create-pools       the Airflow pool the scoring tasks run in (deployment step)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from retail_scoring import storage
from retail_scoring.layout import StorageLayout, origin_of_published_index
from scoring_airflow.blob import MAX_STORED_POLICIES
from scoring_airflow.planning import origin_range, package_manifest, read_products
from scoring_airflow.publishing import changed_since_published, read_current
from scoring_airflow.settings import ForecastSettings
from scoring_airflow.task_documents import ValidationReport


def latest_origin(settings: ForecastSettings) -> int:
    """The newest origin the data and the default model package allow."""
    layout = StorageLayout(settings.storage_root)
    return origin_range(layout, read_products(layout), package_manifest(layout, settings.model_version)[0])[1]


def summary(settings: ForecastSettings) -> str:
    """The current forecast (each product's newest published forecast), where it came from, whether
    storage still holds it as published, and the newest run behind it."""
    layout = StorageLayout(settings.storage_root)
    current = read_current(layout)
    if current is None:
        return f"no forecast published yet under {settings.storage_root}"
    entries = current["products"]
    runs = Counter(entry["run_id"] for entry in entries.values())
    origins = Counter(entry["origin"] for entry in entries.values())
    newest = max(entries.values(), key=lambda entry: entry["published_at"])["run_id"]
    report_url = layout.validation_report(newest)
    report = ValidationReport.from_dict(json.loads(storage.read_bytes(report_url)), report_url)
    names = storage.list_names(layout.published_dir())
    published = sorted(o for o in map(origin_of_published_index, names) if o is not None)
    changed = changed_since_published(layout, entries)
    return "\n".join(
        [
            f"current forecast:  {len(entries)} products ("
            + ", ".join(f"origin week {origin}: {count}" for origin, count in sorted(origins.items(), reverse=True))
            + f") (index: {layout.current_forecast()})",
            "from runs:         " + ", ".join(f"{run} ({count} products)" for run, count in runs.most_common()),
            "model versions:    " + ", ".join(sorted({entry["model_version"] for entry in entries.values()})),
            "integrity:         "
            + (
                f"{len(changed)} published files CHANGED since publishing: {', '.join(changed[:5])}"
                if changed
                else f"every published file is as published ({len(entries)} checked)"
            ),
            f"published origins: {', '.join(map(str, published))}",
            f"newest run:        {newest}",
            f"validation report: {layout.validation_report(newest)} "
            f"({'valid' if report.valid else 'INVALID'}, {report.checked} products)",
            f"task logs:         {layout.run_dir(newest)}/logs",
            f"report:            {layout.report_file(newest, 'report.md')}",
            *accuracy_lines(layout, newest),
            f"run manifest:      {layout.run_manifest(newest)}",
        ]
    )


def accuracy_lines(layout: StorageLayout, run_id: str) -> list[str]:
    accuracy = storage.read_json(layout.run_accuracy(run_id))
    if accuracy is None:
        return ["accuracy:          not computed for this run"]
    if not accuracy.get("rows"):
        return ["accuracy:          no actual sales yet for the forecast weeks"]
    described = {
        "mape_q50": "median MAPE {:.1%}",
        "coverage_50": "50% interval covers {:.1%}",
        "coverage_90": "90% interval covers {:.1%}",
    }
    parts = [text.format(accuracy[name]) for name, text in described.items() if name in accuracy]
    return [f"accuracy:          over {accuracy['rows']} rows: {', '.join(parts) or 'pinball loss only'}"]


def finished_backtests(layout: StorageLayout) -> list[dict]:
    """Every finished backtest's accuracy record, oldest first."""
    records = [storage.read_json(layout.backtest_accuracy(b)) for b in storage.list_names(layout.backtests_dir())]
    return sorted((record for record in records if record), key=lambda record: record["recorded_at"])


def backtests(settings: ForecastSettings) -> str:
    """Each finished backtest, and per package what its intervals covered over the compared
    origins as forecast and calibrated, and its calibration."""
    lines = []
    for record in finished_backtests(StorageLayout(settings.storage_root)):
        compared = record["compared_origins"]
        span = f"{compared[0]}..{compared[-1]}" if compared else "none"
        lines += [
            f"backtest {record['backtest_id']}",
            f"  origins {record['origins'][0]}..{record['origins'][-1]}, compared {span}, "
            f"{record['products']} products, recorded {record['recorded_at']}",
        ]
        for version, package in record["packages"].items():
            calibration = record["calibrations"].get(version)
            usable = f"calibration usable from origin {calibration['usable_from']}" if calibration else "no calibration"
            lines.append(f"  {version}: {usable}")
            for kind, metrics in (package["compared"] or {}).items():
                lines.append(
                    f"    {kind:<10} 50% covers {metrics['coverage_50']:.1%}, 90% covers {metrics['coverage_90']:.1%}, "
                    f"median pinball {metrics['pinball_q50']:.1f}, over {metrics['rows']} rows"
                )
    return "\n".join(lines) or f"no finished backtest under {settings.storage_root}"


def deployment_connections(environment: dict[str, str]) -> dict[str, dict]:
    """The `wasb_default` and `azure_batch_default` connections of a compose deployment, from
    its environment (WASB_CONNECTION_STRING, AZURE_BATCH_ACCOUNT_NAME/KEY/URL)."""
    return {
        "wasb_default": {
            "conn_type": "wasb",
            "extra": json.dumps({"connection_string": environment["WASB_CONNECTION_STRING"]}),
        },
        "azure_batch_default": {
            "conn_type": "azure_batch",
            "login": environment.get("AZURE_BATCH_ACCOUNT_NAME") or "not-configured",
            "password": environment.get("AZURE_BATCH_ACCOUNT_KEY") or "not-configured",
            "extra": json.dumps(
                {"account_url": environment.get("AZURE_BATCH_ACCOUNT_URL") or "https://not-configured.batch.azure.com"}
            ),
        },
    }


def import_connections() -> None:
    """Write the deployment's connections with `airflow connections import`, from a file only this
    user can read, removed afterwards: Airflow's audit log records a command's arguments, and
    `connections add --conn-extra` would put an account key there in clear."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "connections.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(deployment_connections(dict(os.environ))))
        subprocess.run([sys.executable, "-m", "airflow", "connections", "import", "--overwrite", str(path)], check=True)


def create_pools(settings: ForecastSettings) -> None:
    """The Airflow pool every scoring task runs in, deferred ones counted: as many slots as a
    storage container holds stored access policies, one per scoring job's write grants, so no job
    that Airflow starts is refused its grants (the weekly runs' and the backtests' alike)."""
    description = (
        f"scoring jobs holding write grants: at most {MAX_STORED_POLICIES} stored access policies per container"
    )
    command = ["pools", "set", settings.write_grants_pool, str(MAX_STORED_POLICIES), description, "--include-deferred"]
    subprocess.run([sys.executable, "-m", "airflow", *command], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scoring_airflow.cli")
    commands = ["latest-origin", "summary", "backtests", "latest-backtest", "import-connections", "create-pools"]
    parser.add_argument("command", choices=commands)
    command = parser.parse_args().command
    if command == "import-connections":
        import_connections()
        return
    settings = ForecastSettings()
    if command == "create-pools":
        create_pools(settings)
        return
    if command == "latest-backtest":
        finished = finished_backtests(StorageLayout(settings.storage_root))
        print(finished[-1]["backtest_id"] if finished else "")
        return
    print({"latest-origin": latest_origin, "summary": summary, "backtests": backtests}[command](settings))


if __name__ == "__main__":
    main()
