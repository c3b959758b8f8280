"""Atomic writes, proven by failing the write itself: a reader sees the old file or the whole new
one, and no temporary file is left behind, whichever step fails."""

import pandas as pd
import pytest
from fsspec.implementations.local import LocalFileSystem

from retail_scoring import storage
from retail_scoring.data.tables import read_forecast, write_table
from retail_scoring.errors import ContentChangedError
from tests.conftest import local_path


class DiskGaveOut(OSError):
    pass


def crash_mid_write(self, path, value, **kwargs):
    """What a killed process or a full disk leaves: the first half of the bytes, then an error."""
    with open(path, "wb") as file:
        file.write(value[: len(value) // 2])
    raise DiskGaveOut(f"{path}: write interrupted")


def fail_rename(self, path1, path2, **kwargs):
    raise DiskGaveOut(f"{path1} -> {path2}: rename failed")


@pytest.mark.parametrize("fault", [crash_mid_write, fail_rename], ids=["crash-mid-write", "rename-fails"])
def test_an_interrupted_write_leaves_the_old_file_whole_and_no_temporary(tmp_path, monkeypatch, fault):
    url = f"file://{tmp_path}/runs/r/latest.json"
    storage.write_bytes_atomic(url, b'{"run_id": "old"}')
    monkeypatch.setattr(LocalFileSystem, "pipe_file" if fault is crash_mid_write else "mv", fault)
    with pytest.raises(DiskGaveOut):
        storage.write_bytes_atomic(url, b'{"run_id": "new", "padding": "' + b"x" * 1000 + b'"}')
    assert local_path(url).read_bytes() == b'{"run_id": "old"}'
    assert [p.name for p in local_path(url).parent.iterdir()] == ["latest.json"]


def test_an_interrupted_forecast_write_keeps_the_earlier_forecast(tmp_path, monkeypatch):
    url = f"file://{tmp_path}/runs/r/forecasts/product_001.parquet"
    earlier = pd.DataFrame(
        {"sku": [1, 1], "store": [2, 2], "week": [108, 109], "q5": [1.0, 1.0], "q25": [2.0, 2.0],
         "q50": [3.0, 3.0], "q75": [4.0, 4.0], "q95": [5.0, 5.0], "forecast_origin": [107, 107],
         "model_version": ["m", "m"]}
    )  # fmt: skip
    write_table(url, earlier, "forecast")
    monkeypatch.setattr(LocalFileSystem, "pipe_file", crash_mid_write)
    with pytest.raises(DiskGaveOut):
        write_table(url, earlier.assign(q50=99.0), "forecast")
    pd.testing.assert_frame_equal(read_forecast(url), earlier)
    assert [p.name for p in local_path(url).parent.iterdir()] == ["product_001.parquet"]


def test_a_pinned_read_gives_the_recorded_content_and_refuses_any_other(tmp_path):
    url = f"file://{tmp_path}/output.parquet"
    recorded = storage.write_recorded(url, b"as scored")
    assert storage.read_pinned(url, recorded.sha256, "by its task") == b"as scored"
    storage.write_bytes_atomic(url, b"as edited")
    refused = rf"^{url}: its content \(sha256 \w{{12}}\) is not what was recorded by its task"
    with pytest.raises(ContentChangedError, match=refused):
        storage.read_pinned(url, recorded.sha256, "by its task")
