"""The plugin reaches an Airflow that installs the package, through its entry point alone."""

import json
import os
import subprocess
import sys

from scoring_airflow.links import URL_PREFIX


def test_airflow_finds_the_plugin_by_its_entry_point_with_an_empty_plugins_folder(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "plugins")}
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "--output", "json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (plugin,) = json.loads(listed.stdout)
    assert plugin["name"] == "forecast"
    assert plugin["source"].startswith("scoring-airflow==")
    assert "scoring_airflow.plugin:ForecastPlugin" in plugin["source"]
    assert [link.split(".")[-1] for link in plugin["operator_extra_links"]] == [
        "ForecastReportLink object>",
        "ForecastFilesLink object>",
        "BatchAccountLink object>",
    ]
    assert [app["url_prefix"] for app in plugin["fastapi_apps"]] == [URL_PREFIX]
