"""A partition is scored chunk by chunk: the forecasts do not depend on the chunking, progress is
reported after each chunk, and a bad product in one chunk does not stop the next."""

import pytest

from retail_scoring import storage
from retail_scoring.errors import ScoringError
from retail_scoring.packages.base import ModelPackage
from retail_scoring.run import scoring
from retail_scoring.run.contract import PartitionSummary
from tests.conftest import TINY_MODELS, local_path


def score_with_chunks(layout, monkeypatch, products_per_chunk: int, run_id: str) -> tuple[list, PartitionSummary]:
    monkeypatch.setattr(ModelPackage, "products_per_chunk", products_per_chunk)
    progress: list[tuple[int, int]] = []
    summary = scoring.score_partition(
        scoring.ScoringJob(layout, [1, 2, 3], 107, TINY_MODELS, run_id), on_progress=lambda *p: progress.append(p)
    )
    return progress, summary


def test_a_partition_larger_than_a_chunk_writes_the_same_forecasts_and_summary(layout, monkeypatch):
    chunked_progress, chunked = score_with_chunks(layout, monkeypatch, 2, "chunked")
    stacked_progress, stacked = score_with_chunks(layout, monkeypatch, 3, "stacked")
    assert (chunked_progress, stacked_progress) == ([(2, 3), (3, 3)], [(3, 3)]), "progress after each chunk"
    for product in (1, 2, 3):
        chunked_bytes = storage.read_bytes(layout.forecast_file("chunked", product))
        assert chunked_bytes == storage.read_bytes(layout.forecast_file("stacked", product))
    for figure in ("products_scored", "rows", "package_sha256", "problems", "failures", "accuracy"):
        assert getattr(chunked, figure) == getattr(stacked, figure), figure
    checksums = [{p: f.sha256 for p, f in summary.forecasts.items()} for summary in (chunked, stacked)]
    assert checksums[0] == checksums[1] and len(checksums[0]) == 3, "each forecast's recorded checksum"
    assert chunked.accuracy["rows"] == chunked.accuracy["forecast_rows"] == 3 * 858, "held-back actuals"


def test_a_bad_product_in_one_chunk_does_not_stop_the_next(layout, monkeypatch):
    local_path(layout.product_file(1, "futurex")).unlink()
    monkeypatch.setattr(ModelPackage, "products_per_chunk", 1)
    progress: list[tuple[int, int]] = []
    with pytest.raises(ScoringError, match=r"1 of 3 products failed: .*product_001/futurex.parquet: file not found"):
        scoring.score_partition(
            scoring.ScoringJob(layout, [1, 2, 3], 107, TINY_MODELS, "bad"), on_progress=lambda *p: progress.append(p)
        )
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert not storage.exists(layout.forecast_file("bad", 1))
    assert all(storage.exists(layout.forecast_file("bad", product)) for product in (2, 3))


def test_only_a_run_that_asks_for_it_writes_the_residual_profile_into_its_summary(layout):
    """A backtest's runs need the profile to calibrate; a weekly run's tasks read every summary, so
    its summaries stay free of the profile's megabytes."""
    summaries = {}
    for profiled in (False, True):
        job = scoring.ScoringJob(layout, [1, 2], 107, TINY_MODELS, f"profiled-{profiled}", profile_residuals=profiled)
        written = scoring.score_partition(job).to_json()
        summaries[profiled] = PartitionSummary.from_json(written, "summary")
    assert summaries[False].residuals == {} and summaries[True].residuals, "a profile only where asked"
    assert summaries[False].accuracy == summaries[True].accuracy, "accuracy either way"
