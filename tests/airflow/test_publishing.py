"""What planners read: the current forecast is each product's newest published forecast; a
reforecast or a partial run at a newer origin replaces just its products, a backfill never moves
them, every entry pins the content it publishes, and publishers that finish together lose nothing
(compare-and-swap, on local disk and on Azurite)."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
from sqlalchemy import select

from retail_scoring import storage
from retail_scoring.layout import StorageLayout
from retail_scoring.run.contract import PartitionSummary, RunManifest, RunPlan
from scoring_airflow.partitions import pin_summaries
from scoring_airflow.planning import storage_run_id
from scoring_airflow.publishing import changed_since_published, publish_run, read_current
from tests.airflow.conftest import run_dag
from tests.conftest import run_plan

LATEST_WEEK = datetime(2026, 11, 23, 6, tzinfo=UTC)  # origin 107
OLDER_WEEK = datetime(2025, 12, 1, 6, tzinfo=UTC)  # origin 56


def run_id_of(dag_run) -> str:
    return storage_run_id(dag_run.dag_id, dag_run.run_id)


def asset_event_extras() -> list[dict]:
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "current_sales_forecast")
        ).all()
        return [event.extra for event in sorted(events, key=lambda event: event.id)]


def test_a_reforecast_replaces_its_products_and_a_backfill_leaves_the_current_forecast(
    airflow_db, layout, forecast_env
):
    weekly = run_dag(LATEST_WEEK, {"pool_size": 2})
    assert weekly.state == "success"
    events_before = len(asset_event_extras())
    # A reforecast of two products for the same week, triggered the next day.
    reforecast = run_dag(LATEST_WEEK + timedelta(days=1), {"products": [1, 2], "origin_week": 107})
    assert reforecast.state == "success"
    current = read_current(layout)
    assert {entry["origin"] for entry in current["products"].values()} == {107}
    sources = {product: entry["run_id"] for product, entry in current["products"].items()}
    assert sources == {"1": run_id_of(reforecast), "2": run_id_of(reforecast), "3": run_id_of(weekly)}

    published = storage.read_bytes(layout.current_forecast())
    backfill = run_dag(OLDER_WEEK, {"products": [1]})
    assert backfill.state == "success"
    assert storage.read_bytes(layout.current_forecast()) == published, "a backfill never moves the current forecast"
    older = json.loads(storage.read_bytes(layout.published_index(56)))
    assert older["products"]["1"]["run_id"] == run_id_of(backfill)

    extras = asset_event_extras()[events_before - 1 :]
    summaries = [(e["origin"], e["products"], e["current"]) for e in extras]
    assert summaries == [(107, 3, 3), (107, 2, 2), (56, 1, 0)]
    assert extras[0]["index"] == layout.current_forecast() and extras[2]["index"] == layout.published_index(56)


def plan_of(root: str, run_id: str, origin: int, products: list[int]) -> RunPlan:
    """A scored run as publishing sees it: its plan and run manifest, one partition's forecasts (a
    few bytes each) and summary, pinned as the score task pins it."""
    layout = StorageLayout(root)
    partitions = {"partition_000": products}
    plan = run_plan(layout, run_id, partitions, origin=origin, model_version="m", model_manifest_sha256="m-sha256")
    series = {str(product): None for product in products}
    storage.write_bytes_atomic(plan.run_manifest, RunManifest(plan, partitions, series).to_json())
    summary = PartitionSummary(products=products, package_sha256="m-sha256")
    for product in products:
        url = layout.forecast_file(run_id, product)
        summary.forecasts[str(product)] = storage.write_recorded(url, f"{run_id} {product}".encode())
    storage.write_bytes_atomic(layout.partition_summary(run_id, "partition_000"), summary.to_json())
    pin_summaries(layout, run_id, ["partition_000"])
    return plan


def test_a_run_at_a_newer_origin_changes_only_its_products_in_the_current_forecast(tmp_path):
    root = f"file://{tmp_path}/storage"
    layout = StorageLayout(root)
    publish_run(plan_of(root, "weekly-107", 107, [1, 2, 3]))
    assert publish_run(plan_of(root, "partial-108", 108, [2]))["current"] == 1
    current = read_current(layout)["products"]
    assert {p: (e["origin"], e["run_id"]) for p, e in current.items()} == {
        "1": (107, "weekly-107"),
        "2": (108, "partial-108"),
        "3": (107, "weekly-107"),
    }, "the other products keep their newest forecast"
    assert current["2"]["sha256"] == storage.sha256_hex(b"partial-108 2"), "each entry pins the content"
    assert publish_run(plan_of(root, "backfill-107", 107, [2, 3]))["current"] == 1, "2 has a newer forecast"
    assert read_current(layout)["products"]["2"]["run_id"] == "partial-108"
    assert read_current(layout)["products"]["3"]["run_id"] == "backfill-107"
    assert changed_since_published(layout, read_current(layout)["products"]) == []
    storage.write_bytes_atomic(layout.forecast_file("weekly-107", 1), b"weekly-107 1")
    assert changed_since_published(layout, read_current(layout)["products"]) == [], "rewritten, same content"
    storage.write_bytes_atomic(layout.forecast_file("weekly-107", 1), b"weekly-107 9")  # same size
    assert changed_since_published(layout, read_current(layout)["products"]) == [layout.forecast_file("weekly-107", 1)]


@pytest.mark.parametrize("storage_kind", ["local", "azurite"])
def test_publishers_finishing_together_lose_nothing(request, tmp_path, storage_kind):
    if storage_kind == "azurite":
        request.getfixturevalue("azurite")
        root = "abfs://publishing"
        storage.create_root(root)
    else:
        root = f"file://{tmp_path}/storage"
    plans = [plan_of(root, f"reforecast-{i}", 107, [i * 3 + 1, i * 3 + 2, i * 3 + 3]) for i in range(6)]
    plans += [plan_of(root, "backfill", 56, [1]), plan_of(root, "older-weekly", 106, [50])]
    threads = [threading.Thread(target=publish_run, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    current = read_current(StorageLayout(root))
    expected = [*range(1, 19), 50]
    assert sorted(map(int, current["products"])) == expected, "every publisher's products are there"
    for i in range(6):
        assert current["products"][str(i * 3 + 1)]["run_id"] == f"reforecast-{i}", "origin 107 is newer than 56"
    assert current["products"]["50"]["origin"] == 106
    older = json.loads(storage.read_bytes(StorageLayout(root).published_index(56)))
    assert list(older["products"]) == ["1"]
