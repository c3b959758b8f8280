"""The extra links on the score and report tasks, and the API server app they point to, through a
real run and Airflow's real API server app (its own auth manager deciding who may read)."""

import json
from dataclasses import asdict

from retail_scoring import storage
from scoring_airflow.partitions import pin_summaries
from tests.airflow.conftest import run_dag
from tests.airflow.test_dag_end_to_end import LATEST_WEEK, TWO_PRODUCTS, run_id_of
from tests.conftest import local_path


def test_links_lead_to_the_runs_report_and_forecasts_for_signed_in_users_only(
    airflow_db, layout, forecast_env, api_client
):
    dag_run = run_dag(LATEST_WEEK, TWO_PRODUCTS)
    assert dag_run.state == "success"
    run_id = run_id_of(dag_run)
    report_ti, score_ti = dag_run.get_task_instance("report"), dag_run.get_task_instance("score")
    report_link = report_ti.xcom_pull(task_ids="report", key="_link_ForecastReportLink")
    forecasts_link = score_ti.xcom_pull(task_ids="score", key="_link_ForecastFilesLink")
    assert report_link == f"/forecast-outputs/runs/{run_id}/report/"
    assert forecasts_link == f"/forecast-outputs/runs/{run_id}/forecasts/"
    assert score_ti.xcom_pull(task_ids="score", key="_link_BatchAccountLink") == "", "local runs have no Batch"

    assert api_client.get(report_link).status_code == 401, "no token: nothing served"
    api_client.cookies.set("_token", "not-a-token")
    assert api_client.get(report_link).status_code in (401, 403), "a forged token: nothing served"
    login = api_client.post("/auth/token", json={"username": "planner", "password": "planner-password"})
    api_client.cookies.set("_token", login.json()["access_token"])
    links = api_client.get(
        f"/api/v2/dags/weekly_sales_forecast/dagRuns/{dag_run.run_id}/taskInstances/report/links"
    ).json()["extra_links"]
    assert links == {"Forecast report": report_link, "Forecasts": forecasts_link}, "what the UI shows on the task"
    page = api_client.get(report_link)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"<h1>Forecast run {run_id}</h1>" in page.text and "<table>" in page.text
    figure = api_client.get(f"{report_link}forecast_store1.png")
    assert figure.content.startswith(b"\x89PNG") and figure.headers["x-content-type-options"] == "nosniff"
    listing = api_client.get(forecasts_link).text
    assert "product_001.csv" in listing and "product_002.csv" in listing
    csv = api_client.get(f"{forecasts_link}product_002.csv")
    lines = csv.text.splitlines()
    assert lines[0] == '"sku","store","week","q5","q25","q50","q75","q95","forecast_origin","model_version"'
    assert len(lines) == 1 + 66 * 13
    assert api_client.get(f"{forecasts_link}product_003.csv").status_code == 404, "not in this run"
    hostile = "x'><img src=x onerror=alert(1)>.parquet"
    (local_path(layout.forecasts_dir(run_id)) / hostile).write_bytes(b"not a forecast")
    listing = api_client.get(forecasts_link)
    assert listing.status_code == 200 and "<img" not in listing.text and "onerror" not in listing.text
    assert "product_001.csv" in listing.text, "the run's own forecasts are still listed"
    storage.write_bytes_atomic(layout.forecast_file(run_id, 5), storage.read_bytes(layout.forecast_file(run_id, 1)))
    assert "product_005" not in api_client.get(forecasts_link).text, "a forecast no scoring task wrote"
    long_id = api_client.get(f"/forecast-outputs/runs/{'r' * 5000}/report/")
    assert long_id.status_code == 400 and "(5000 characters)" in long_id.text and len(long_id.text) < 400

    unreadable = layout.forecast_file(run_id, 1)
    summary_url = layout.partition_summary(run_id, "partition_000")
    summary = storage.read_json(summary_url)
    summary["forecasts"]["1"] = asdict(storage.write_recorded(unreadable, b"PAR1 but not Parquet PAR1"))
    storage.write_bytes_atomic(summary_url, json.dumps(summary).encode())
    forged = api_client.get(f"{forecasts_link}product_001.csv")
    assert forged.status_code == 409, "a summary written since its job ended vouches for nothing"
    pin_summaries(layout, run_id, ["partition_000"])  # as if its scoring task had written that file
    refused = api_client.get(f"{forecasts_link}product_001.csv")
    assert refused.status_code == 422 and "not a readable forecast" in refused.text

    replaced = layout.forecast_file(run_id, 2)
    storage.write_bytes_atomic(replaced, storage.read_bytes(replaced)[::-1])  # same size, other content
    refused = api_client.get(f"{forecasts_link}product_002.csv")
    assert refused.status_code == 409 and "not the file its scoring task wrote" in refused.text
    assert api_client.get("/forecast-outputs/runs/no-such-run/report/").status_code == 404
    assert api_client.get("/forecast-outputs/runs/.hidden/report/").status_code == 400
    assert api_client.get(f"{report_link}..%2F..%2Fmanifest.json").status_code in (400, 404)


def test_every_name_a_page_shows_is_escaped():
    """Names reach pages from storage listings and URLs: whatever they hold, never as markup."""
    from scoring_airflow.outputs_app import _page

    hostile = "x'><img src=x onerror=alert(1)>"
    page = _page(hostile, heading=hostile, links=[(f"{hostile}.csv", hostile)]).body.decode()
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_backtest_pages_go_to_readers_of_the_backtest_dag_and_run_pages_to_the_forecast_dags():
    from scoring_airflow.outputs_app import BACKTEST_READERS, RUN_READERS, app

    routes = {route.path: route.dependencies for route in app.routes if hasattr(route, "dependencies")}
    served = {path: deps for path, deps in routes.items() if path.startswith(("/runs/", "/backtests/"))}
    assert len(served) == 6
    for path, dependencies in served.items():
        assert dependencies == [BACKTEST_READERS if path.startswith("/backtests/") else RUN_READERS], path
