"""The rerun skip and validation: a partition counts as done only when its scoring task's summary,
pinned when its job ended, says every product's forecast was written and valid with the run's
package content, and storage still holds each forecast as the task wrote it; not when files merely
exist, have the right size, or a summary says so."""

import io
import json
import os
import shutil
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retail_scoring import storage
from retail_scoring.data.tables import read_forecast, write_table
from retail_scoring.errors import ScoringError
from retail_scoring.run.contract import CONTRACT_VERSION, RunPlan
from retail_scoring.run.scoring import RunChecks, ScoringJob, score_partition
from scoring_airflow.partitions import pin_summaries
from scoring_airflow.publishing import changed_since_published, publish_run
from scoring_airflow.validation import ValidationFailed, validate_run
from tests.airflow.conftest import plan_problems
from tests.conftest import TINY_MODELS, local_path, write_plan

RUN, PARTITION, PRODUCTS = "rerun", "partition_000", [1, 2]


def score(
    layout, checks: RunChecks | None = None, products: list[int] = PRODUCTS, pin: bool = True, **scoring
) -> RunPlan:
    """What the partition's scoring task does (write the forecasts and the summary), and what the
    score task does when its job ends (pin the summary); returns the run's plan."""
    summary_url = layout.partition_summary(RUN, PARTITION)
    try:
        score_partition(
            ScoringJob(layout, products, 107, TINY_MODELS, RUN, checks=checks, summary_url=summary_url, **scoring)
        )
    finally:
        if pin:
            pin_summaries(layout, RUN, [PARTITION])
    return write_plan(layout, RUN, {PARTITION: products})


def problems_of(layout, products: list[int] = PRODUCTS, **plan_fields) -> dict[str, list[str]]:
    return plan_problems(layout, write_plan(layout, RUN, {PARTITION: products}, **plan_fields))[PARTITION]


def is_done(layout, products: list[int] = PRODUCTS) -> bool:
    return not problems_of(layout, products)


def same_size(data: bytes, size: int) -> bytes:
    """A Parquet file padded to `size` bytes before its footer (readers find everything through the
    footer's absolute offsets), so it reads as a valid file of exactly that size."""
    footer_length = int.from_bytes(data[-8:-4], "little")
    footer_start = len(data) - 8 - footer_length
    assert len(data) <= size, "the replacement must not be larger"
    return data[:footer_start] + b"\0" * (size - len(data)) + data[footer_start:]


def test_a_partition_is_done_when_its_task_summarised_every_forecast_as_written_and_valid(layout):
    assert not is_done(layout), "nothing written"
    score(layout)
    assert is_done(layout)
    storage.filesystem(layout.partition_summary(RUN, PARTITION))[0].rm_file(
        local_path(layout.partition_summary(RUN, PARTITION))
    )
    assert not is_done(layout), "files there, but no summary of the task that wrote them"


def test_a_forecast_file_the_task_did_not_write_or_a_missing_one_is_rescored(layout):
    score(layout)
    url = layout.forecast_file(RUN, 2)
    frame = read_forecast(url)
    write_table(url, frame.assign(q50=frame["q50"] * 1.01), "forecast")
    assert not is_done(layout), "a valid-looking file written since: not the task's"
    storage.filesystem(url)[0].rm_file(local_path(url))
    assert not is_done(layout), "a forecast deleted since"
    assert problems_of(layout)["2"] == [f"{url}: missing"]


@pytest.mark.parametrize("replacement", ["infinite-quantiles", "random-bytes"])
def test_a_same_size_replacement_is_never_skipped_validated_or_published(layout, replacement):
    plan = score(layout)
    url = layout.forecast_file(RUN, 2)
    original = storage.read_bytes(url)
    if replacement == "infinite-quantiles":
        table = pq.read_table(io.BytesIO(original))
        infinite = pa.array(np.full(table.num_rows, np.inf))
        for column in ("q5", "q25", "q50", "q75", "q95"):
            table = table.set_column(table.schema.get_field_index(column), column, infinite)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        data = same_size(buffer.getvalue(), len(original))
        assert np.isinf(pq.read_table(io.BytesIO(data)).column("q50").to_numpy()).all(), "a readable, infinite file"
    else:
        data = np.random.default_rng(0).bytes(len(original))
    local_path(url).write_bytes(data)
    assert len(storage.read_bytes(url)) == len(original)
    expected = f"{url}: not the file the partition's scoring task wrote (written again since)"
    assert problems_of(layout) == {"2": [expected]}, "not skipped on a rerun"
    with pytest.raises(ValidationFailed, match="not the file the partition's scoring task wrote"):
        validate_run(plan)
    with pytest.raises(ValidationFailed, match="nothing published"):
        publish_run(plan)
    assert storage.read_json(layout.current_forecast()) is None


def infinite_copy(data: bytes) -> bytes:
    """A readable forecast file of the same size as `data`, every quantile infinite."""
    table = pq.read_table(io.BytesIO(data))
    for column in ("q5", "q25", "q50", "q75", "q95"):
        table = table.set_column(
            table.schema.get_field_index(column), column, pa.array(np.full(table.num_rows, np.inf))
        )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return same_size(buffer.getvalue(), len(data))


def test_an_in_place_rewrite_with_its_times_put_back_is_never_skipped(layout):
    """What `cp -p` or `rsync -t --inplace` onto the file do: same inode, size and mtime."""
    plan = score(layout)
    url = layout.forecast_file(RUN, 2)
    path = local_path(url)
    before, replacement = path.stat(), infinite_copy(path.read_bytes())
    with open(path, "r+b") as forecast:
        forecast.write(replacement)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert problems_of(layout) == {
        "2": [f"{url}: not the file the partition's scoring task wrote (written again since)"]
    }
    with pytest.raises(ValidationFailed, match="not the file the partition's scoring task wrote"):
        validate_run(plan)


def test_storage_restored_from_a_copy_is_recognised_by_content(layout):
    """A backup restored with `cp -a` (new inodes and change times, same content): every partition
    still done, validated and published, and what was published still is; a changed file is not."""
    plan = score(layout)
    publish_run(plan)
    root = local_path(layout.root)
    backup = root.with_name("backup")
    shutil.copytree(root, backup, copy_function=shutil.copy2)
    shutil.rmtree(root)
    shutil.copytree(backup, root, copy_function=shutil.copy2)
    assert (
        storage.identity(layout.forecast_file(RUN, 1))
        != storage.read_json(layout.current_forecast())["products"]["1"]["identity"]
    )
    assert is_done(layout)
    validate_run(plan)
    assert changed_since_published(layout, storage.read_json(layout.current_forecast())["products"]) == []
    url = layout.forecast_file(RUN, 2)
    local_path(url).write_bytes(infinite_copy(local_path(url).read_bytes()))
    assert problems_of(layout) == {
        "2": [f"{url}: not the file the partition's scoring task wrote (written again since)"]
    }
    assert changed_since_published(layout, storage.read_json(layout.current_forecast())["products"]) == [url]


def test_a_forged_summary_vouching_for_a_replaced_forecast_is_refused(layout):
    """Someone who can write storage replaces a forecast and edits the summary to describe the new
    file exactly (size, checksum, stored identity): the summary is no longer the one pinned when
    its job ended, so it is trusted by nothing."""
    plan = score(layout)
    validate_run(plan)
    url = layout.forecast_file(RUN, 2)
    foreign = read_forecast(url).assign(sku=999, q50=1e12)
    summary_url = layout.partition_summary(RUN, PARTITION)
    summary = storage.read_json(summary_url)
    summary["forecasts"]["2"] = asdict(write_table(url, foreign, "forecast"))
    storage.write_bytes_atomic(summary_url, json.dumps(summary).encode())
    assert problems_of(layout) == {
        "summary": [f"{summary_url}: written again after its scoring job ended; not trusted"]
    }
    with pytest.raises(ValidationFailed, match="written again after its scoring job ended"):
        validate_run(plan)
    with pytest.raises(ValidationFailed, match="nothing published"):
        publish_run(plan)


def test_a_summary_for_other_products_than_the_plan_gives_the_partition_is_rescored(layout):
    """The plan was made again over fewer products: the task's summary, though every forecast it
    lists is as written, vouches for a partition that no longer is the plan's."""
    score(layout, products=[1, 2])
    summary_url = layout.partition_summary(RUN, PARTITION)
    assert problems_of(layout, products=[1]) == {
        "summary": [f"{summary_url}: written for other products than the run's plan gives the partition"]
    }


@pytest.mark.parametrize("scored_with, pinned", [(None, "c" * 64), ("b" * 64, "c" * 64), ("b" * 64, None)])
def test_partitions_calibrated_otherwise_than_the_run_pins_are_all_scored_again(layout, scored_with, pinned):
    """The backtest behind a run's calibration ran again between a failed try and Clear: the new
    plan pins the new calibration, and no partition moved by the old one counts as done."""
    score(layout, calibration_sha256=scored_with)
    summary_url = layout.partition_summary(RUN, PARTITION)
    calibration = {"calibration_url": f"{layout.root}/c.json", "calibration_sha256": pinned} if pinned else {}
    described = {
        None: "no calibration",
        "b" * 64: "calibration content bbbbbbbbbbbb",
        "c" * 64: "calibration content cccccccccccc",
    }
    assert problems_of(layout, **calibration) == {
        "summary": [
            f"{summary_url}: calibrated with {described[scored_with]}, but the run pins {described[pinned]} "
            "(the calibration changed since): every partition is scored again"
        ]
    }
    same = {"calibration_url": f"{layout.root}/c.json", "calibration_sha256": scored_with} if scored_with else {}
    assert not problems_of(layout, **same), "the calibration it was scored with: done"


def test_a_summary_whose_job_end_was_not_seen_is_not_trusted(layout):
    score(layout, pin=False)
    summary_url = layout.partition_summary(RUN, PARTITION)
    assert problems_of(layout) == {"summary": [f"{summary_url}: its scoring job's end was not seen; not trusted"]}


def test_partitions_scored_with_another_package_content_are_all_scored_again(layout):
    """The package was replaced under the same version between a failed try and Clear: the new
    plan pins the new content, and no partition scored with the old one counts as done."""
    score(layout)
    summary_url = layout.partition_summary(RUN, PARTITION)
    old = storage.read_json(summary_url)["package_sha256"]
    problems = problems_of(layout, model_manifest_sha256="0" * 64)
    assert problems == {
        "summary": [
            f"{summary_url}: scored with model package content {old[:12]}, but the run pins {'0' * 12} (the "
            "package was replaced since): every partition is scored again"
        ]
    }


def test_a_partition_whose_forecasts_broke_the_run_checks_is_rescored(layout):
    score(layout, RunChecks(TINY_MODELS, max_forecast_ratio=1e-9))
    summary = json.loads(storage.read_bytes(layout.partition_summary(RUN, PARTITION)))
    assert "forecast more than 1e-09x their series' highest weekly sales" in summary["problems"]["1"][0]
    assert not is_done(layout)
    score(layout, RunChecks("another-version"))
    summary = json.loads(storage.read_bytes(layout.partition_summary(RUN, PARTITION)))
    assert "model_version differs from the run's another-version" in summary["problems"]["2"][0]
    assert not is_done(layout)


def test_a_summary_of_other_products_or_with_failed_products_is_not_done(layout):
    score(layout, products=[1])
    assert not is_done(layout), "the summary covers product 1 only"
    with pytest.raises(ScoringError, match="product_009"):
        score(layout, products=[1, 2, 9])
    summary = json.loads(storage.read_bytes(layout.partition_summary(RUN, PARTITION)))
    assert summary["products_scored"] == [1, 2] and "product_009" in summary["failures"][0]
    assert not is_done(layout, [1, 2, 9])
    assert problems_of(layout, [1, 2, 9])["summary"] == summary["failures"], "validation names the failure"


def test_a_summary_of_another_contract_version_is_scored_again(layout):
    """A run failed before an upgrade and cleared after it: its old summaries are not trusted and
    their partitions are scored again, never a crash."""
    score(layout)
    summary_url = layout.partition_summary(RUN, PARTITION)
    summary = storage.read_json(summary_url)
    del summary["package_sha256"], summary["forecasts"]
    storage.write_bytes_atomic(summary_url, json.dumps({**summary, "contract_version": 0}).encode())
    pin_summaries(layout, RUN, [PARTITION])
    assert problems_of(layout) == {
        "summary": [
            f"{summary_url}: run contract version 0, but this release reads version {CONTRACT_VERSION}: Airflow's "
            "plugins and the worker image must be of the same release; plan the run again"
        ]
    }
