"""The rerun skip: a partition counts as done only when its scoring task's summary says every
product's forecast was written and valid, and those files are in storage as it wrote them, not
when files merely exist."""

import json

import pytest

from retail_scoring import storage
from retail_scoring.errors import ScoringError
from retail_scoring.scoring import RunChecks, score_partition
from retail_scoring.tables import read_forecast, write_table
from scoring_airflow.operators import partition_is_done
from scoring_airflow.partitions import forecast_sizes, partition_problems, read_summary
from tests.conftest import TINY_MODELS

RUN, PARTITION, PRODUCTS = "rerun", "partition_000", [1, 2]


def score(layout, checks: RunChecks | None = None, products: list[int] = PRODUCTS) -> None:
    """What the partition's scoring task does: write the forecasts and the summary."""
    summary_url = layout.partition_summary(RUN, PARTITION)
    score_partition(layout, products, 107, TINY_MODELS, RUN, checks=checks, summary_url=summary_url)


def problems_of(layout, products: list[int]) -> dict[str, list[str]]:
    summary = read_summary(layout, RUN, PARTITION)
    return partition_problems(layout, RUN, PARTITION, products, summary, forecast_sizes(layout, RUN))


def is_done(layout) -> bool:
    return partition_is_done(layout, RUN, PARTITION, PRODUCTS, forecast_sizes(layout, RUN))


def test_a_partition_is_done_when_its_task_summarised_every_forecast_as_written_and_valid(layout):
    assert not is_done(layout), "nothing written"
    score(layout)
    assert is_done(layout)
    storage.filesystem(layout.partition_summary(RUN, PARTITION))[0].rm_file(
        storage.filesystem(layout.partition_summary(RUN, PARTITION))[1]
    )
    assert not is_done(layout), "files there, but no summary of the task that wrote them"


def test_a_forecast_file_the_task_did_not_write_or_a_missing_one_is_rescored(layout):
    score(layout)
    url = layout.forecast_file(RUN, 2)
    before = len(storage.read_bytes(url))
    frame = read_forecast(url)
    assert write_table(url, frame.assign(q50=frame["q50"] * 1.01), "forecast") != before
    assert not is_done(layout), "a valid-looking file of another size: not the task's"
    storage.filesystem(url)[0].rm_file(storage.filesystem(url)[1])
    assert not is_done(layout), "a forecast deleted since"
    assert problems_of(layout, PRODUCTS)["2"] == [f"{url}: missing"]


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
    assert not partition_is_done(layout, RUN, PARTITION, [1, 2, 9], forecast_sizes(layout, RUN))
    assert problems_of(layout, [1, 2, 9])["summary"] == summary["failures"], "validation names the failure"
