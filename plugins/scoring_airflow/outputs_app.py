"""A run's report and forecasts in the browser, served by Airflow's API server (a plugin FastAPI
app under /forecast-outputs): the task extra links point here. Files are read from storage with the
server's own credentials (the `wasb` connection), so no storage URL or SAS ever reaches a browser;
a run's pages go only to users who may read the forecast DAG's runs, a backtest's to those who may
read the backtest DAG's, a scenario run's to those who may read its scenario DAG's runs."""

import io
import re

import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment
from markdown_it import MarkdownIt
from markupsafe import Markup

from retail_scoring import storage
from retail_scoring.errors import UnsafeIdentifierError
from retail_scoring.layout import StorageLayout, product_label, product_of_folder
from retail_scoring.run.contract import ContractError, RunManifest, ScenarioRunManifest
from scoring_airflow.blob import connect_storage
from scoring_airflow.partitions import checked_partitions, recorded_forecast
from scoring_airflow.planning import storage_run_id
from scoring_airflow.settings import ForecastSettings

FORECAST_DAG_ID = "weekly_sales_forecast"
BACKTEST_DAG_ID = "backtest_model_package"
MEDIA_TYPES = {"png": "image/png", "md": "text/markdown; charset=utf-8", "json": "application/json"}
FORECAST_CSV = re.compile(r"(product_\d+)\.csv")

app = FastAPI(title="Forecast outputs")
RUN_READERS = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=FORECAST_DAG_ID))
BACKTEST_READERS = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=BACKTEST_DAG_ID))
DAG_RUN_READERS = Depends(requires_access_dag("GET", DagAccessEntity.RUN))  # of the DAG the path names


@app.middleware("http")
async def no_sniffing(request, call_next):
    """Browsers take each file for the type it is served as, never guess one from its bytes."""
    response = await call_next(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _layout() -> StorageLayout:
    connect_storage()
    return StorageLayout(ForecastSettings().storage_root)


def _read(url_of) -> bytes:
    """The bytes at the URL `url_of(layout)` names: 400 for an unsafe name, 404 when absent."""
    try:
        url = url_of(_layout())
    except UnsafeIdentifierError as error:
        raise HTTPException(400, str(error)) from error
    try:
        return storage.read_bytes(url)
    except FileNotFoundError as error:
        raise HTTPException(404, "not found") from error


PAGE = Environment(autoescape=True).from_string(
    "<!doctype html><html><head><meta charset='utf-8'><title>{{ title }}</title>"
    "<style>body{font-family:sans-serif;max-width:70rem;margin:2rem auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}</style></head>"
    "<body>{% if heading %}<h1>{{ heading }}</h1>{% endif %}{{ body }}"
    "{% if links %}<ul>{% for href, text in links %}<li><a href='{{ href }}'>{{ text }}</a></li>{% endfor %}</ul>"
    "{% endif %}</body></html>"
)


def _page(title: str, heading: str = "", body: Markup | None = None, links: list[tuple[str, str]] = ()) -> HTMLResponse:
    """A page from the one autoescaping template: every name from storage or the URL is escaped;
    `body` is markup we rendered ourselves (the report, with raw HTML disabled)."""
    return HTMLResponse(PAGE.render(title=title, heading=heading, body=body or "", links=links))


def _report_page(title: str, url_of) -> HTMLResponse:
    """A report.md as a page; its figure links resolve to the report's file route."""
    text = _read(url_of).decode(errors="replace")
    return _page(title, body=Markup(MarkdownIt("commonmark", {"html": False}).enable("table").render(text)))


def _file(url_of, name: str) -> Response:
    return Response(_read(url_of), media_type=MEDIA_TYPES.get(name.rpartition(".")[2], "application/octet-stream"))


@app.get("/runs/{run_id}/report/", dependencies=[RUN_READERS])
def report(run_id: str) -> HTMLResponse:
    return _report_page(f"Forecast run {run_id}", lambda layout: layout.report_file(run_id, "report.md"))


@app.get("/runs/{run_id}/report/{name}", dependencies=[RUN_READERS])
def report_file(run_id: str, name: str) -> Response:
    return _file(lambda layout: layout.report_file(run_id, name), name)


def check_scenario_run_of(dag_id: str, run_id: str) -> None:
    """404 unless `run_id` is a scenario run of the DAG `dag_id` (the one its reader may read): its
    manifest's Airflow run id, with `dag_id`, gives exactly this storage run id."""
    try:
        plan = ScenarioRunManifest.from_json(_read(lambda layout: layout.run_manifest(run_id)), run_id).plan
    except ContractError as error:
        raise HTTPException(404, "not a scenario run of this release") from error
    if storage_run_id(dag_id, plan.airflow_run_id) != run_id:
        raise HTTPException(404, "not a run of this DAG")


@app.get("/dags/{dag_id}/runs/{run_id}/report/", dependencies=[DAG_RUN_READERS])
def scenario_report(dag_id: str, run_id: str) -> HTMLResponse:
    check_scenario_run_of(dag_id, run_id)
    return _report_page(f"Scenario run {run_id}", lambda layout: layout.report_file(run_id, "report.md"))


@app.get("/backtests/{backtest_id}/report/", dependencies=[BACKTEST_READERS])
def backtest_report(backtest_id: str) -> HTMLResponse:
    return _report_page(f"Backtest {backtest_id}", lambda layout: layout.backtest_report_file(backtest_id, "report.md"))


@app.get("/backtests/{backtest_id}/report/{name}", dependencies=[BACKTEST_READERS])
def backtest_report_file(backtest_id: str, name: str) -> Response:
    return _file(lambda layout: layout.backtest_report_file(backtest_id, name), name)


@app.get("/runs/{run_id}/forecasts/", dependencies=[RUN_READERS])
def forecasts(run_id: str) -> HTMLResponse:
    """The run's forecasts its scoring tasks wrote (as their trusted summaries record them), each a
    link to its CSV; nothing else in the folder."""
    manifest = _read(lambda layout: layout.run_manifest(run_id))
    layout = _layout()
    try:
        checked = checked_partitions(layout, RunManifest.from_json(manifest, layout.run_manifest(run_id)))
        recorded = sorted(int(p) for partition in checked if partition.summary for p in partition.summary.forecasts)
    except ContractError as error:
        raise HTTPException(422, "this run's documents are not of this release") from error
    products = [product_label(product) for product in recorded]
    if not products:
        raise HTTPException(404, "no forecasts for this run")
    links = [(f"{product}.csv", f"{product}.csv") for product in products]
    return _page(f"Forecasts of {run_id}", f"Forecasts of run {run_id}", links=links)


@app.get("/runs/{run_id}/forecasts/{name}", dependencies=[RUN_READERS])
def forecast_csv(run_id: str, name: str) -> Response:
    """One product's forecast as CSV, for a spreadsheet."""
    match = FORECAST_CSV.fullmatch(name)
    if not match:
        raise HTTPException(404, "not found")
    product = product_of_folder(match[1])
    data = _read(lambda layout: layout.forecast_file(run_id, product))
    recorded = recorded_forecast(_layout(), run_id, product)
    if recorded is None or storage.sha256_hex(data) != recorded.sha256:
        raise HTTPException(409, f"{match[1]} of this run is not the file its scoring task wrote; not served")
    csv = io.BytesIO()
    try:
        pyarrow.csv.write_csv(pq.read_table(pa.BufferReader(data)), csv)
    except pa.ArrowException as error:
        raise HTTPException(422, f"{match[1]} of this run is not a readable forecast") from error
    return Response(csv.getvalue(), media_type="text/csv", headers={"Content-Disposition": f"inline; filename={name}"})
