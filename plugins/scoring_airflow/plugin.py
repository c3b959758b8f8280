"""Registers the forecast tasks' extra links and the app that serves a run's outputs. Airflow finds
it through this package's `airflow.plugins` entry point (plugins/pyproject.toml), so an Airflow
that installs the package has it without a copied plugins folder."""

from airflow.plugins_manager import AirflowPlugin

from scoring_airflow.links import URL_PREFIX, BatchAccountLink, ForecastFilesLink, ForecastReportLink
from scoring_airflow.outputs_app import app


class ForecastPlugin(AirflowPlugin):
    name = "forecast"
    operator_extra_links = [ForecastReportLink(), ForecastFilesLink(), BatchAccountLink()]
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Forecast outputs"}]
