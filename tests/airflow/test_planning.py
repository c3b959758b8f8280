from datetime import date, datetime

import pandas as pd
import pytest

from retail_scoring.schema import SKUS_PER_PRODUCT
from scoring_airflow.planning import (
    PlanError,
    check_origin,
    origin_for_logical_date,
    partition_products,
    select_products,
    storage_run_id,
)
from scoring_airflow.run_steps import origin_range, plan_run, series_count
from scoring_airflow.settings import ForecastSettings
from tests.conftest import TEST_STORES, local_path

WEEK0 = date(2024, 10, 28)


def test_origin_is_the_week_completed_before_the_logical_date():
    assert origin_for_logical_date(date(2026, 11, 23), WEEK0) == 107
    assert origin_for_logical_date(datetime(2026, 11, 29, 23), WEEK0) == 107
    assert origin_for_logical_date(date(2026, 11, 30), WEEK0) == 108
    assert origin_for_logical_date(date(2025, 12, 1), WEEK0) == 56


def test_origin_outside_the_data_is_refused_with_the_valid_range():
    with pytest.raises(PlanError, match="origin week 108 is outside the data: origins 31..107"):
        check_origin(108, 31, 107)


def test_per_node_partitioning_makes_one_balanced_partition_per_node():
    partitions = partition_products(list(range(1, 11)), pool_size=4, partitioning="per_node")
    assert list(partitions) == ["partition_000", "partition_001", "partition_002", "partition_003"]
    assert sorted(p for products in partitions.values() for p in products) == list(range(1, 11))
    assert sorted(len(products) for products in partitions.values()) == [2, 2, 3, 3]


def test_per_product_partitioning_and_more_nodes_than_products():
    assert len(partition_products([1, 2, 3], 2, "per_product")) == 3
    assert len(partition_products([1, 2], 8, "per_node")) == 2
    with pytest.raises(PlanError, match="partitioning must be"):
        partition_products([1], 1, "per_store")


def test_unknown_products_are_named():
    assert select_products([1, 2, 3], None) == [1, 2, 3]
    assert select_products([1, 2, 3], [3, 1]) == [1, 3]
    with pytest.raises(PlanError, match=r"unknown products \[7, 9\]; storage has products 1..3"):
        select_products([1, 2, 3], [1, 7, 9])


def test_run_ids_differ_per_run_and_are_safe_in_paths():
    first = storage_run_id("weekly", "scheduled__2026-11-23T06:00:00+00:00")
    second = storage_run_id("weekly", "backfill__2025-12-01T06:00:00+00:00")
    assert first != second
    assert all(c.isalnum() or c in "_-" for c in first)


def test_series_count_reads_the_planned_series_from_parquet_or_csv(layout):
    futurex = local_path(layout.product_file(1, "futurex"))
    parquet_count = series_count(layout, 1)
    assert parquet_count == TEST_STORES * SKUS_PER_PRODUCT
    pd.read_parquet(futurex).to_csv(futurex.with_suffix(".csv"), index=False)
    futurex.unlink()
    assert series_count(layout, 1) == parquet_count


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_series_count_names_the_file_without_series_keys(layout, suffix):
    futurex = local_path(layout.product_file(1, "futurex"))
    frame = pd.read_parquet(futurex).drop(columns="store")
    futurex.unlink()
    target = futurex.with_suffix(f".{suffix}")
    if suffix == "parquet":
        frame.to_parquet(target)
    else:
        frame.to_csv(target, index=False)
    with pytest.raises(PlanError, match=rf"product_001/futurex.{suffix}: lacks columns \['store'\]"):
        series_count(layout, 1)


def test_an_origin_outside_the_data_names_the_range_the_data_allows(layout, small_reference):
    """The range is computed from the data: every series needs 5 weeks of sales up to the origin,
    and the 13 weeks after it must be planned (the futurex weeks end at 120)."""
    first_origin = int(small_reference.groupby(["sku", "store"])["week"].min().max()) + 5 - 1
    assert origin_range(layout, 1) == (first_origin, 107)
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    for origin in (first_origin - 1, 108):
        with pytest.raises(PlanError, match=rf"origin week {origin} is outside the data: origins {first_origin}..107 "):
            plan_run("weekly", "manual__x", date(2026, 11, 23), {"origin_week": origin}, settings)
    assert plan_run("weekly", "manual__x", date(2026, 11, 23), {"origin_week": first_origin}, settings)["origin"] == (
        first_origin
    )
