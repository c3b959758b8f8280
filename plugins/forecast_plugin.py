"""Registers the forecast tasks' extra links and the app that serves a run's outputs (Airflow finds
plugins by scanning this folder; the code lives in scoring_airflow)."""

from airflow.plugins_manager import AirflowPlugin

from scoring_airflow.links import URL_PREFIX, BatchAccountLink, ForecastFilesLink, ForecastReportLink
from scoring_airflow.outputs_app import app


class ForecastPlugin(AirflowPlugin):
    name = "forecast"
    operator_extra_links = [ForecastReportLink(), ForecastFilesLink(), BatchAccountLink()]
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Forecast outputs"}]
