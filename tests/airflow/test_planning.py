import json
import os
import re
import shutil
from datetime import date, datetime

import pandas as pd
import pytest

from retail_scoring import storage
from retail_scoring.data.catalogue import build_catalogue
from retail_scoring.data.schema import SKUS_PER_PRODUCT
from scoring_airflow.compute import ComputeBackend, ComputeError, backend_for_run
from scoring_airflow.planning import (
    PlanError,
    check_origin,
    origin_for_logical_date,
    origin_range,
    package_manifest,
    param,
    partition_products,
    plan_run,
    read_products,
    requested_products,
    select_products,
    storage_run_id,
)
from scoring_airflow.settings import ForecastSettings
from tests.conftest import TEST_STORES, local_path

WEEK0 = date(2024, 10, 28)


def test_origin_is_the_week_completed_before_the_logical_date():
    assert origin_for_logical_date(date(2026, 11, 23), WEEK0) == 107
    assert origin_for_logical_date(datetime(2026, 11, 29, 23), WEEK0) == 107
    assert origin_for_logical_date(date(2026, 11, 30), WEEK0) == 108
    assert origin_for_logical_date(date(2025, 12, 1), WEEK0) == 56


def test_origin_outside_the_data_is_refused_with_the_valid_range():
    with pytest.raises(PlanError, match="origin week 108 is outside the data: origins 31..107 .* 26 planned weeks"):
        check_origin(108, 31, 107, 26)


def test_a_horizon_longer_than_the_data_is_refused_naming_it(layout):
    from dataclasses import replace

    from retail_scoring.packages.base import OutputContract
    from scoring_airflow.planning import origin_range, package_manifest, read_products

    manifest = package_manifest(layout, "tiny-test")[0]
    assert origin_range(layout, read_products(layout), manifest)[1] == 107
    long = replace(manifest, output=OutputContract(horizon=200))
    with pytest.raises(
        PlanError,
        match=r"^model package tiny-test forecasts 200 weeks after 5 weeks of history, but .* no origin has both$",
    ):
        origin_range(layout, read_products(layout), long)


def test_per_node_partitioning_makes_one_balanced_partition_per_task_slot():
    partitions = partition_products(list(range(1, 11)), 4, "per_node", max_products=200)
    assert list(partitions) == ["partition_000", "partition_001", "partition_002", "partition_003"]
    assert sorted(p for products in partitions.values() for p in products) == list(range(1, 11))
    assert sorted(len(products) for products in partitions.values()) == [2, 2, 3, 3]


def test_a_big_catalogue_gets_more_partitions_than_slots_none_above_the_maximum():
    partitions = partition_products(list(range(1, 1001)), 2, "per_node", max_products=200)
    assert len(partitions) == 5
    assert [len(products) for products in partitions.values()] == [200] * 5
    assert sorted(p for products in partitions.values() for p in products) == list(range(1, 1001))
    assert len(partition_products(list(range(1, 202)), 2, "per_node", max_products=200)) == 2


def test_per_product_partitioning_and_more_nodes_than_products():
    assert len(partition_products([1, 2, 3], 2, "per_product", 200)) == 3
    assert len(partition_products([1, 2], 8, "per_node", 200)) == 2
    with pytest.raises(PlanError, match="partitioning must be"):
        partition_products([1], 1, "per_store", 200)


def test_unknown_products_are_named():
    assert select_products([1, 2, 3], None) == [1, 2, 3]
    assert select_products([1, 2, 3], requested_products([3, 1])) == [1, 3]
    assert select_products([1, 2, 3], requested_products("2-3")) == [2, 3]
    with pytest.raises(PlanError, match=r"^unknown products 7, 9; storage has 3 products, 1..3$"):
        select_products([1, 2, 3], requested_products([1, 7, 9]))


def test_a_range_over_a_gap_in_the_catalogue_names_the_missing_number():
    with pytest.raises(PlanError) as refused:
        select_products([1, 3, 4], requested_products("1-4"))
    assert str(refused.value) == (
        "ranges over numbers the catalogue lacks: 1-4 (1 of its numbers, first 2); storage has 3 products, 1..4"
    )


def test_a_huge_typed_range_is_refused_briefly_without_being_built():
    """A range costs what the catalogue costs, not what was typed: the plan never expands it."""
    catalogue = list(range(1, 100_001))
    assert select_products(catalogue, requested_products("99990-100000")) == list(range(99_990, 100_001))
    with pytest.raises(PlanError) as refused:  # expanded, this range alone would take over 36 GB
        select_products(catalogue, requested_products("1-1000000000"))
    assert str(refused.value) == (
        "ranges over numbers the catalogue lacks: 1-1000000000 (999900000 of its numbers, first 100001); "
        "storage has 100000 products, 1..100000"
    )
    with pytest.raises(PlanError) as refused:
        select_products([1, 2, 3], requested_products(list(range(4, 5004))))
    assert str(refused.value) == (
        "unknown products 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 and 4990 more; storage has 3 products, 1..3"
    )


def test_a_reversed_range_is_refused_not_read_as_every_product():
    with pytest.raises(PlanError, match=r"^products: the range '5-1' is reversed; write it as 1-5$"):
        requested_products("5-1")


def test_run_ids_differ_per_run_and_are_safe_in_paths():
    first = storage_run_id("weekly", "scheduled__2026-11-23T06:00:00+00:00")
    second = storage_run_id("weekly", "backfill__2025-12-01T06:00:00+00:00")
    assert first != second
    assert all(c.isalnum() or c in "_-" for c in first)


def test_the_catalogue_reads_planned_series_from_parquet_or_csv(layout):
    futurex = local_path(layout.product_file(1, "futurex"))
    assert read_products(layout).loc[1, "series"] == TEST_STORES * SKUS_PER_PRODUCT
    pd.read_parquet(futurex).to_csv(futurex.with_suffix(".csv"), index=False)
    futurex.unlink()
    build_catalogue(layout)
    catalogue = read_products(layout)
    assert catalogue.loc[1, "series"] == TEST_STORES * SKUS_PER_PRODUCT
    assert "futurex.csv" in json.loads(catalogue.loc[1, "columns"])


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_the_catalogue_names_the_file_without_series_keys(layout, suffix):
    futurex = local_path(layout.product_file(1, "futurex"))
    frame = pd.read_parquet(futurex).drop(columns="store")
    futurex.unlink()
    target = futurex.with_suffix(f".{suffix}")
    if suffix == "parquet":
        frame.to_parquet(target)
    else:
        frame.to_csv(target, index=False)
    build_catalogue(layout)
    problem = read_products(layout).loc[1, "problem"]
    assert re.search(
        rf"product_001/futurex.{suffix}: columns do not match the futurex schema \(missing: \['store'\]", problem
    )


def test_a_run_cannot_be_planned_without_a_catalogue_and_is_told_how_to_write_one(layout):
    local_path(layout.catalogue()).unlink()
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    with pytest.raises(
        PlanError, match=r"data/catalogue.parquet: no product catalogue; write it with `retail-scoring catalogue"
    ):
        plan_run("weekly", "manual__x", date(2026, 11, 23), {}, settings)


def test_the_plan_in_xcom_has_counts_only_and_the_run_manifest_the_partitions(layout):
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test", pool_size=1)
    one = plan_run("weekly", "manual__one", date(2026, 11, 23), {"products": [1]}, settings)
    three = plan_run("weekly", "manual__three", date(2026, 11, 23), {}, settings)
    assert one.to_dict().keys() == three.to_dict().keys()
    assert not any(isinstance(v, list) for v in three.to_dict().values())
    assert (three.product_count, three.partition_count) == (3, 1)
    manifest = json.loads(storage.read_bytes(three.run_manifest))
    assert manifest["partitions"] == {"partition_000": [1, 2, 3]}
    assert manifest["series_per_product"] == {"1": 66, "2": 66, "3": 66}


def test_more_local_workers_than_the_machine_holds_are_refused_saying_its_limit(layout):
    cores = os.cpu_count()
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    with pytest.raises(
        PlanError,
        match=rf"pool_size {cores + 1} is more local workers than this machine can run at once: at most \d+ "
        rf"\({cores} cores; [\d.]+ GB memory available at 1200 MB per worker",
    ):
        plan_run("weekly", "manual__x", date(2026, 11, 23), {"pool_size": cores + 1}, settings)
    greedy = ForecastSettings(storage_root=layout.root, model_version="tiny-test", worker_memory_mb=10**9)
    with pytest.raises(
        PlanError, match=r"pool_size 1 is more local workers than this machine can run at once: at most 0"
    ):
        plan_run("weekly", "manual__x", date(2026, 11, 23), {"pool_size": 1}, greedy)
    assert plan_run("weekly", "manual__x", date(2026, 11, 23), {"pool_size": cores}, settings).pool_size == cores


def test_more_task_slots_than_a_batch_vm_size_has_cores_are_refused(layout):
    settings = ForecastSettings(storage_root="abfs://forecasts", model_version="tiny-test")
    check = {"vm_size": "Standard_D2s_v3", "spot_nodes": 0}

    def task_slots(**node) -> int:
        return backend_for_run("azure_batch", settings, {**check, **node}).task_slots(4, settings)

    with pytest.raises(
        ComputeError,
        match=r"task_slots_per_node 3 is more scoring tasks than a Standard_D2s_v3 node can run at once "
        r"\(2 cores, 8 GB",
    ):
        task_slots(task_slots_per_node=3)
    assert task_slots(task_slots_per_node=2) == 8
    assert task_slots(vm_size="Standard_X", task_slots_per_node=3) == 12


def test_an_origin_outside_the_data_names_the_range_the_data_allows(layout, small_reference):
    """The range is computed from the data: every series needs 5 weeks of sales up to the origin,
    and the 13 weeks after it must be planned (the futurex weeks end at 120)."""
    first_origin = int(small_reference.groupby(["sku", "store"])["week"].min().max()) + 5 - 1
    assert origin_range(layout, read_products(layout), package_manifest(layout, "tiny-test")[0]) == (first_origin, 107)
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    for origin in (first_origin - 1, 108):
        with pytest.raises(PlanError, match=rf"origin week {origin} is outside the data: origins {first_origin}..107 "):
            plan_run("weekly", "manual__x", date(2026, 11, 23), {"origin_week": origin}, settings)
    assert plan_run("weekly", "manual__x", date(2026, 11, 23), {"origin_week": first_origin}, settings).origin == (
        first_origin
    )


def test_run_ids_that_fold_to_the_same_characters_stay_apart(layout):
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    colons, dashes = "manual__2026-11-23T06:00:00+00:00", "manual__2026-11-23T06-00-00-00-00"
    first = plan_run("weekly", colons, date(2026, 11, 23), {"products": [1]}, settings)
    second = plan_run("weekly", dashes, date(2026, 11, 23), {"products": [2]}, settings)
    assert first.run_id != second.run_id and first.pool_id != second.pool_id
    assert storage_run_id("weekly", dashes).startswith(f"weekly__{dashes}-"), "readable, then the hash"
    # A run named after another run's folder gets its own: every id carries the hash of the original.
    named_like_first = first.run_id.removeprefix("weekly__")
    assert storage_run_id("weekly", named_like_first) not in (first.run_id, second.run_id)
    for plan, products in ((first, [1]), (second, [2])):
        assert json.loads(storage.read_bytes(layout.run_manifest(plan.run_id)))["partitions"] == {
            "partition_000": products
        }


def test_teardown_matches_exactly_the_runs_own_job_ids():
    job_id, is_job_of_run = ComputeBackend.job_id, ComputeBackend.is_job_of_run
    assert is_job_of_run(job_id("x", 1), "x") and is_job_of_run(job_id("x", 12), "x")
    assert not is_job_of_run(job_id("x-try2", 1), "x"), "run x must not take the jobs of run x-try2"
    assert not is_job_of_run(job_id("x", 1) + "0-other", "x")
    long_run = "weekly_sales_forecast__" + "a" * 80
    assert is_job_of_run(job_id(long_run, 3), long_run) and len(job_id(long_run, 3)) <= 64


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"products": [1.0]}, r"products item must be a whole number, got 1.0"),
        ({"pool_size": 2.0}, r"pool_size must be a whole number, got 2.0"),
        ({"origin_week": "107"}, r"origin_week must be a whole number, got '107'"),
        ({"model_version": "../../data"}, r"model_version '../../data' is not allowed"),
        ({"model_version": "/etc"}, r"model_version '/etc' is not allowed"),
        ({"model_version": "v1/../../data"}, r"model_version 'v1/../../data' is not allowed"),
    ],
    ids=[
        "float-product",
        "float-pool-size",
        "string-origin",
        "traversal-version",
        "absolute-version",
        "inner-traversal",
    ],
)
def test_params_that_do_not_fit_are_refused_at_plan_time_naming_the_value(layout, params, message):
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    with pytest.raises(PlanError, match=message):
        plan_run("weekly", "manual__x", date(2026, 11, 23), {"origin_week": 107, **params}, settings)
    assert not storage.exists(layout.run_manifest(storage_run_id("weekly", "manual__x")))


@pytest.mark.parametrize(
    "file_name", ["/etc/passwd", "../../data/products/product_001/history.parquet", "x/../../../latest.json", ".hidden"]
)
def test_a_manifest_naming_a_file_outside_its_model_set_is_refused_at_plan_time(layout, file_name):
    manifest_path = local_path(layout.model_file("tiny-test", "manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    manifest["models"][3]["file"] = file_name
    manifest_path.write_text(json.dumps(manifest))
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    with pytest.raises(
        PlanError, match=rf"model file name of {manifest['models'][3]['name']} '{re.escape(file_name)}'"
    ):
        plan_run("weekly", "manual__x", date(2026, 11, 23), {}, settings)


def test_a_stray_folder_is_ignored_and_a_product_without_plans_does_not_stop_the_others(layout, caplog):
    local_path(f"{layout.products_dir()}/product_002.bak").mkdir()
    local_path(layout.product_file(3, "futurex")).unlink()
    build_catalogue(layout)
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    plan = plan_run("weekly", "manual__x", date(2026, 11, 23), {}, settings)
    manifest = json.loads(storage.read_bytes(plan.run_manifest))
    assert sorted(p for products in manifest["partitions"].values() for p in products) == [1, 2, 3]
    assert manifest["series_per_product"] == {"1": 66, "2": 66, "3": None}
    assert "product_002.bak: not a product folder (product_NNN); ignored" in caplog.text
    assert "product_003: " in caplog.text and "futurex.parquet: file not found" in caplog.text


def test_a_sku_planned_by_two_products_is_refused_naming_both(layout):
    futurex = local_path(layout.product_file(2, "futurex"))
    shutil.copy(local_path(layout.product_file(1, "futurex")), futurex)
    build_catalogue(layout)
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    with pytest.raises(PlanError, match=r"SKU 1 is planned by both product_001 and product_002"):
        plan_run("weekly", "manual__x", date(2026, 11, 23), {}, settings)


def test_a_param_of_zero_or_false_is_given_not_replaced_by_the_default():
    assert param({"spot_nodes": 0}, "spot_nodes", 2) == 0
    assert param({"spot_nodes": None}, "spot_nodes", 2) == 2
    assert param({}, "force", True) is True


@pytest.mark.parametrize(
    ("typed", "products"),
    [
        ("3, 17", [3, 17]),
        ("[1, 2]", [1, 2]),
        ("40-42 7", [40, 41, 42, 7]),
        (["3, 4", "9"], [3, 4, 9]),  # a form's text area, one string per line
        ("", None),
        (None, None),
        ([], None),
        ([5, 6], [5, 6]),
    ],
)
def test_products_can_be_typed_as_numbers_and_ranges(typed, products):
    available = list(range(1, 50))
    selected = select_products(available, requested_products(typed))
    assert selected == (available if products is None else sorted(products))


def test_a_typed_product_that_is_not_a_number_is_named():
    with pytest.raises(PlanError, match=r"products: 'x7' is neither a number nor a range like 40-45"):
        requested_products("3, x7")


def test_the_main_jobs_origin_is_the_newest_the_data_allows(layout, forecast_env):
    from scoring_airflow.cli import latest_origin

    assert latest_origin(ForecastSettings()) == 107


def test_the_engine_is_planned_with_threads_that_share_the_nodes_cores(layout):
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    plan = plan_run("weekly", "manual__x", date(2026, 11, 23), {"pool_size": 1, "engine": "r"}, settings)
    assert (plan.engine, plan.engine_threads) == ("r", os.cpu_count())
    batch = ForecastSettings(storage_root="abfs://forecasts", model_version="tiny-test")

    def threads(**node) -> int:
        node = {"vm_size": "Standard_D2s_v3", "spot_nodes": 0, **node}
        return backend_for_run("azure_batch", batch, node).engine_threads(3, batch)

    assert threads(task_slots_per_node=1) == 2
    assert threads(task_slots_per_node=2) == 1
    assert threads(vm_size="Standard_X", task_slots_per_node=1) == 1


def test_the_compiled_engine_is_refused_at_plan_time_for_a_package_without_one(layout):
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test")
    with pytest.raises(PlanError, match="model package tiny-test has no compiled engine; run with engine auto or r"):
        plan_run("weekly", "manual__x", date(2026, 11, 23), {"engine": "compiled"}, settings)
    with pytest.raises(PlanError, match="engine must be one of auto, r, compiled, got 'fast'"):
        plan_run("weekly", "manual__x", date(2026, 11, 23), {"engine": "fast"}, settings)


def recorded_calibration(
    layout, backtest_id: str, learned_through: int, quantiles=(0.05, 0.25, 0.5, 0.75, 0.95), change=None
):
    """A calibration file as a backtest writes it, recorded in the backtest's accuracy record;
    `change` edits the file's document first, and the record is signed with what it then holds
    (what anyone who can write `backtests/` can do)."""
    from retail_scoring.run.calibration import GRID_STEP, Calibration

    shifts = {str(step): {f"q{round(q * 100)}": 0 for q in quantiles} for step in range(1, 14)}
    origins = [61, learned_through]
    calibration = Calibration(
        "tiny-test", "sha", backtest_id, "test", None, origins, 100, 13, list(quantiles), GRID_STEP, shifts
    )
    document = json.loads(calibration.to_json())
    if change:
        change(document)
    data = json.dumps(document).encode()
    url = layout.calibration_file(backtest_id, "tiny-test")
    storage.write_bytes_atomic(url, data)
    recorded = {"url": url, "sha256": storage.sha256_hex(data), "learned_from": origins}
    record = {"origins": origins, "calibrations": {"tiny-test": recorded}}
    storage.write_bytes_atomic(layout.backtest_accuracy(backtest_id), json.dumps(record).encode())
    return url


def test_a_calibration_is_pinned_in_the_plan_and_refused_for_earlier_origins(layout):
    url = recorded_calibration(layout, "bt", learned_through=94)
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test", pool_size=1)
    plan = plan_run("weekly", "manual__c", date(2026, 11, 23), {"calibration": "bt", "origin_week": 107}, settings)
    assert plan.calibration_url == url
    assert plan.calibration_sha256 == storage.sha256_hex(storage.read_bytes(url))
    with pytest.raises(
        PlanError,
        match=rf"^{url}: learned from origins up to 94, whose forecasts reach week 107; a forecast from origin 106 "
        r"may not use sales it could not have seen: calibrate origins 107 and later only$",
    ):
        plan_run("weekly", "manual__d", date(2026, 11, 23), {"calibration": "bt", "origin_week": 106}, settings)
    uncalibrated = plan_run("weekly", "manual__e", date(2026, 11, 23), {"origin_week": 100}, settings)
    assert uncalibrated.calibration_url is None and uncalibrated.calibration_sha256 is None


def test_a_calibration_changed_since_its_backtest_or_unfit_for_the_package_is_refused(layout):
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test", pool_size=1)
    params = {"calibration": "bt", "origin_week": 107}
    with pytest.raises(PlanError, match="no backtest bt has finished"):
        plan_run("weekly", "manual__c", date(2026, 11, 23), params, settings)
    url = recorded_calibration(layout, "bt", learned_through=90)
    storage.write_bytes_atomic(url, storage.read_bytes(url).replace(b'"rows": 100', b'"rows": 101'))
    with pytest.raises(PlanError, match=rf"^{url}: content \w+ is not the calibration the run pinned"):
        plan_run("weekly", "manual__c", date(2026, 11, 23), params, settings)
    recorded_calibration(layout, "bt", learned_through=90, quantiles=(0.1, 0.5, 0.9))
    with pytest.raises(PlanError, match=r"learned for 13 weeks at quantiles \[0.1, 0.5, 0.9\], but model package"):
        plan_run("weekly", "manual__c", date(2026, 11, 23), params, settings)
    with pytest.raises(PlanError, match="backtest bt has no calibration for model package 'other'"):
        plan_run("weekly", "manual__c", date(2026, 11, 23), {**params, "calibration": "bt:other"}, settings)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: d["shifts"]["1"].update(q50=-2000),
            r"step 1 shifts \{'q50': -2000\} beyond what calibration learns",
        ),
        (
            lambda d: d["shifts"]["1"].update(q50="3"),
            r"field shifts is .*, not of type dict\[str, dict\[str, int\]\]",
        ),
        (lambda d: d["shifts"].update({"14": d["shifts"]["1"]}), r"shifts for steps .*'14'.*, not steps 1\.\.13"),
        (lambda d: d["shifts"]["2"].pop("q95"), r"step 2 shifts columns \['q25', 'q5', 'q50', 'q75'\], not"),
        (
            lambda d: d.update(origins=[40]),
            r"claims to be learned from origins \[40\], but backtest bt recorded \[61, 80\]",
        ),
        (lambda d: d.update(horizon="13"), r"field horizon is '13', not of type int"),
    ],
    ids=[
        "shift-beyond-learner",
        "shift-text",
        "step-beyond-horizon",
        "column-missing",
        "origins-edited",
        "horizon-text",
    ],
)
def test_a_re_signed_calibration_file_is_checked_like_a_manifest(layout, change, message):
    """The record's checksum matches (re-signed), yet the file is refused at planning, naming it."""
    url = recorded_calibration(layout, "bt", learned_through=80, change=change)
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test", pool_size=1)
    with pytest.raises(PlanError, match=rf"^{url}: {message}"):
        plan_run("weekly", "manual__c", date(2026, 11, 23), {"calibration": "bt", "origin_week": 107}, settings)


def test_a_calibration_is_read_where_the_layout_puts_it_whatever_the_record_says(layout):
    url = recorded_calibration(layout, "bt", learned_through=80)
    record = storage.read_json(layout.backtest_accuracy("bt"))
    record["calibrations"]["tiny-test"]["url"] = "file:///etc/passwd"
    storage.write_bytes_atomic(layout.backtest_accuracy("bt"), json.dumps(record).encode())
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test", pool_size=1)
    plan = plan_run("weekly", "manual__c", date(2026, 11, 23), {"calibration": "bt", "origin_week": 107}, settings)
    assert plan.calibration_url == url


def test_a_backtest_without_a_usable_origin_says_why_it_has_no_calibration(layout):
    record = {"origins": [62, 66], "calibrations": {}, "packages": {"tiny-test": {"in_sample_origins": [62, 66]}}}
    storage.write_bytes_atomic(layout.backtest_accuracy("bt"), json.dumps(record).encode())
    settings = ForecastSettings(storage_root=layout.root, model_version="tiny-test", pool_size=1)
    with pytest.raises(
        PlanError,
        match=r"^backtest bt has no calibration for model package 'tiny-test': none of its origins \[62, 66\] was "
        r"out of sample for tiny-test with every forecast week's sales \(in sample: \[62, 66\]\)$",
    ):
        plan_run("weekly", "manual__c", date(2026, 11, 23), {"calibration": "bt", "origin_week": 107}, settings)
