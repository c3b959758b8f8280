"""A run's report and forecasts in the browser, served by Airflow's API server (a plugin FastAPI
app under /forecast-outputs): the task extra links point here. Files are read from storage with the
server's own credentials (the `wasb` connection), so no storage URL or SAS ever reaches a browser,
and only users who may read the forecast DAG's runs get them."""

import html
import io
import re

import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

from retail_scoring import storage
from retail_scoring.errors import UnsafeIdentifierError
from retail_scoring.layout import StorageLayout, product_of_folder
from scoring_airflow.blob import connect_storage
from scoring_airflow.partitions import recorded_forecast
from scoring_airflow.settings import ForecastSettings

FORECAST_DAG_ID = "weekly_sales_forecast"
MEDIA_TYPES = {"png": "image/png", "md": "text/markdown; charset=utf-8", "json": "application/json"}
FORECAST_CSV = re.compile(r"(product_\d+)\.csv")

app = FastAPI(
    title="Forecast outputs",
    dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=FORECAST_DAG_ID))],
)


def _layout() -> StorageLayout:
    connect_storage()
    return StorageLayout(ForecastSettings().storage_root)


def _read(url_of) -> bytes:
    """The bytes at the URL `url_of(layout)` names: 400 for an unsafe name, 404 when absent."""
    try:
        url = url_of(_layout())
    except UnsafeIdentifierError as error:
        raise HTTPException(400, str(error)) from error
    if not storage.exists(url):
        raise HTTPException(404, "not found")
    return storage.read_bytes(url)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:70rem;margin:2rem auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}</style></head>"
        f"<body>{body}</body></html>"
    )


@app.get("/runs/{run_id}/report/")
def report(run_id: str) -> HTMLResponse:
    """report.md as a page; its figure links resolve to the route below."""
    text = _read(lambda layout: layout.report_file(run_id, "report.md")).decode()
    return _page(f"Forecast run {run_id}", MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


@app.get("/runs/{run_id}/report/{name}")
def report_file(run_id: str, name: str) -> Response:
    data = _read(lambda layout: layout.report_file(run_id, name))
    return Response(data, media_type=MEDIA_TYPES.get(name.rpartition(".")[2], "application/octet-stream"))


@app.get("/runs/{run_id}/forecasts/")
def forecasts(run_id: str) -> HTMLResponse:
    """The run's forecast files, each a link to its CSV."""
    try:
        folder = _layout().forecasts_dir(run_id)
    except UnsafeIdentifierError as error:
        raise HTTPException(400, str(error)) from error
    products = [name.removesuffix(".parquet") for name in storage.list_names(folder) if name.endswith(".parquet")]
    if not products:
        raise HTTPException(404, "no forecasts for this run")
    items = "".join(f"<li><a href='{p}.csv'>{p}.csv</a></li>" for p in products)
    return _page(f"Forecasts of {run_id}", f"<h1>Forecasts of run {html.escape(run_id)}</h1><ul>{items}</ul>")


@app.get("/runs/{run_id}/forecasts/{name}")
def forecast_csv(run_id: str, name: str) -> Response:
    """One product's forecast as CSV, for a spreadsheet."""
    match = FORECAST_CSV.fullmatch(name)
    if not match:
        raise HTTPException(404, "not found")
    product = product_of_folder(match[1])
    data = _read(lambda layout: layout.forecast_file(run_id, product))
    recorded = recorded_forecast(_layout(), run_id, product)
    if recorded is None or storage.sha256_hex(data) != recorded["sha256"]:
        raise HTTPException(409, f"{match[1]} of this run is not the file its scoring task wrote; not served")
    csv = io.BytesIO()
    pyarrow.csv.write_csv(pq.read_table(pa.BufferReader(data)), csv)
    return Response(csv.getvalue(), media_type="text/csv", headers={"Content-Disposition": f"inline; filename={name}"})
