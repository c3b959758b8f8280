"""The worker CLI on bad input: exit code 2, a message naming the culprit, earlier outputs intact."""

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from retail_scoring import storage
from retail_scoring.data.catalogue import build_catalogue
from retail_scoring.errors import ModelPackageError, WriteNotAllowedError
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import read_manifest, upload_package
from retail_scoring.storage import sha256_hex
from tests.conftest import TINY_MODELS, local_path, write_plan


def score(
    layout: StorageLayout, products: str, run_id: str = "run-1", origin: int = 107, model_version: str = TINY_MODELS
):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "retail_scoring.cli",
            "score",
            "--storage",
            layout.root,
            "--products",
            products,
            "--origin",
            str(origin),
            "--model-version",
            model_version,
            "--run-id",
            run_id,
        ],
        capture_output=True,
        text=True,
    )


def rewrite_history(layout: StorageLayout, product: int, change) -> str:
    path = local_path(layout.product_file(product, "history"))
    frame = change(pd.read_parquet(path))
    frame.to_parquet(path, index=False)
    build_catalogue(layout)  # as every writer of product data does
    return str(path)


def test_score_prints_one_progress_line_per_product(layout):
    result = score(layout, "1,2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("rows scored") == 2
    assert "product_001: 858 rows scored" in result.stdout
    assert "predict_calls=35" in result.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.drop(columns="price4"), r"missing: \['price4'\]"),
        (lambda f: f.assign(sales=f["sales"].where(f.index != 5, -1.0)), r"column 'sales' must be positive"),
        (lambda f: f.assign(sales=f["sales"].where(f.index != 5, 0.0)), r"column 'sales' must be positive"),
        (lambda f: f.assign(sales=f["sales"].where(f.index != 7)), r"column 'sales' has missing values"),
        (lambda f: f.assign(price2=f["price2"].where(f.index != 7)), r"column 'price2' has missing values"),
    ],
    ids=["missing-column", "negative-sales", "zero-sales", "missing-sales", "nan-price"],
)
def test_bad_product_fails_naming_file_and_keeps_good_products(layout, change, expected):
    bad_file = rewrite_history(layout, 2, change)
    result = score(layout, "1,2,3")
    assert result.returncode == 2
    assert bad_file in result.stderr
    assert pd.Series([result.stderr]).str.contains(expected).all(), result.stderr
    for good in (1, 3):
        assert storage.exists(layout.forecast_file("run-1", good))
    assert not storage.exists(layout.forecast_file("run-1", 2))


def test_missing_product_file_is_named(layout):
    result = score(layout, "1,7")
    assert result.returncode == 2
    assert "product_007/history.parquet: file not found" in result.stderr


def test_csv_product_file_is_accepted(layout):
    parquet = local_path(layout.product_file(3, "history"))
    pd.read_parquet(parquet).to_csv(parquet.with_suffix(".csv"), index=False, float_format="%.17g")
    parquet.unlink()
    build_catalogue(layout)
    result = score(layout, "3")
    assert result.returncode == 0, result.stderr


def test_failed_rerun_leaves_earlier_forecast_untouched(layout):
    assert score(layout, "1").returncode == 0
    forecast = local_path(layout.forecast_file("run-1", 1))
    before = forecast.read_bytes()
    rewrite_history(layout, 1, lambda f: f.assign(sales=-f["sales"]))
    assert score(layout, "1").returncode == 2
    assert forecast.read_bytes() == before
    assert [p.name for p in forecast.parent.iterdir()] == [forecast.name], "no temporary file left behind"


def model_dir(layout: StorageLayout):
    return local_path(layout.package_dir(TINY_MODELS))


def test_missing_model_file_is_named(layout):
    (model_dir(layout) / "gbm_t3_q50.rds").unlink()
    result = score(layout, "1")
    assert result.returncode == 2
    assert f"gbm_t3_q50.rds: file of model package {TINY_MODELS} not found" in result.stderr


def test_model_file_differing_from_manifest_is_named(layout):
    path = model_dir(layout) / "gbm_t2_q5.rds"
    path.write_bytes(path.read_bytes() + b"\0")
    result = score(layout, "1")
    assert result.returncode == 2
    assert "gbm_t2_q5.rds: sha256" in result.stderr and "does not match the manifest" in result.stderr


def _replace_model(layout: StorageLayout, name: str, data: bytes) -> None:
    from retail_scoring.storage import sha256_hex

    (model_dir(layout) / f"{name}.rds").write_bytes(data)
    manifest_path = model_dir(layout) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][f"{name}.rds"] = sha256_hex(data)
    manifest_path.write_text(json.dumps(manifest))


def test_corrupt_model_file_is_named(layout):
    _replace_model(layout, "gbm_t7_q95", b"not an RDS file")
    result = score(layout, "1")
    assert result.returncode == 2
    assert "gbm_t7_q95.rds: cannot be read as an R object" in result.stderr


def test_model_of_another_class_is_named(layout, tmp_path):
    other = tmp_path / "lm.rds"
    subprocess.run(["Rscript", "-e", f"saveRDS(lm(dist ~ speed, cars), '{other}')"], check=True)
    _replace_model(layout, "gbm_t1_q25", other.read_bytes())
    result = score(layout, "1")
    assert result.returncode == 2
    assert "gbm_t1_q25 is an R object of class 'lm', expected 'gbm'" in result.stderr


def test_manifest_missing_a_step_quantile_is_named(layout):
    manifest_path = model_dir(layout) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["models"] = [m for m in manifest["models"] if m["name"] != "gbm_t4_q75"]
    manifest_path.write_text(json.dumps(manifest))
    result = score(layout, "1")
    assert result.returncode == 2
    assert "manifest has no model for gbm_t4_q75 (step 4, quantile 0.75)" in result.stderr


def score_partition_of_run(layout: StorageLayout, run_id: str, partition: str = "partition_000"):
    return subprocess.run(
        [sys.executable, "-m", "retail_scoring.cli", "score", "--storage", layout.root, "--run-id", run_id,
         "--partition", partition],
        capture_output=True, text=True,
    )  # fmt: skip


def test_a_model_set_changed_since_the_run_was_planned_is_refused(layout):
    """The run manifest pins the model package's manifest: a retry never scores with a re-uploaded set."""
    write_plan(layout, "run-1", {"partition_000": [1]}, model_manifest_sha256="0" * 64)
    result = score_partition_of_run(layout, "run-1")
    assert result.returncode == 2
    assert f"model package {TINY_MODELS} changed since the run was planned" in result.stderr
    assert f"the run recorded {'0' * 64}" in result.stderr
    assert not storage.exists(layout.forecast_file("run-1", 1))
    summary = json.loads(storage.read_bytes(layout.partition_summary("run-1", "partition_000")))
    assert "changed since the run was planned" in summary["failures"][0], "the failure is summarised too"


def test_a_partition_reads_its_products_from_the_run_manifest(layout):
    write_plan(layout, "run-2", {"partition_000": [2], "partition_001": [1, 3]})
    result = score_partition_of_run(layout, "run-2", "partition_001")
    assert result.returncode == 0, result.stderr
    assert [storage.exists(layout.forecast_file("run-2", p)) for p in (1, 2, 3)] == [True, False, True]


def test_a_partition_the_run_lacks_or_a_run_without_manifest_is_refused(layout):
    write_plan(layout, "run-3", {"partition_000": [1]})
    result = score_partition_of_run(layout, "run-3", "partition_007")
    assert result.returncode == 2
    assert f"{layout.run_manifest('run-3')}: the run has no partition partition_007" in result.stderr
    result = score_partition_of_run(layout, "never-planned")
    assert result.returncode == 2
    assert f"{layout.run_manifest('never-planned')}: no run manifest; plan the run first" in result.stderr


def test_scoring_outside_a_run_needs_products_origin_and_model_version(layout):
    result = subprocess.run(
        [sys.executable, "-m", "retail_scoring.cli", "score", "--storage", layout.root, "--run-id", "x",
         "--products", "1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "score without --partition needs --origin, --model-version" in result.stderr


@pytest.mark.parametrize("file_name", ["/tmp/evil.rds", "../../x.rds"])
def test_a_manifest_naming_a_file_outside_its_set_is_refused_by_the_worker(layout, file_name):
    manifest_path = model_dir(layout) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["models"][0]["file"] = file_name
    manifest_path.write_text(json.dumps(manifest))
    result = score(layout, "1")
    assert result.returncode == 2
    assert f"model file name of {manifest['models'][0]['name']} '{file_name}' is not allowed" in result.stderr


@pytest.mark.parametrize("file_name", ["/tmp/evil.R", "../../x.rds", ".hidden"])
def test_a_manifest_listing_a_file_outside_its_package_is_refused_by_the_worker(layout, file_name):
    manifest_path = model_dir(layout) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][file_name] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    result = score(layout, "1")
    assert result.returncode == 2
    assert f"file name '{file_name}' is not allowed" in result.stderr


def test_a_stored_model_set_is_replaced_only_when_asked(layout, tiny_model_dir, tmp_path):
    changed = tmp_path / TINY_MODELS
    shutil.copytree(tiny_model_dir, changed)
    manifest = json.loads((changed / "manifest.json").read_text())
    (changed / "manifest.json").write_text(json.dumps({**manifest, "note": "retrained"}))
    before = storage.read_bytes(layout.model_file(TINY_MODELS, "manifest.json"))
    with pytest.raises(ModelPackageError, match=f"model package {TINY_MODELS} exists with other content"):
        upload_package(changed, layout)
    assert storage.read_bytes(layout.model_file(TINY_MODELS, "manifest.json")) == before
    assert upload_package(tiny_model_dir, layout) == TINY_MODELS, "the same content again is fine"
    upload_package(changed, layout, replace=True)
    assert read_manifest(layout, TINY_MODELS)[1] != sha256_hex(before), "a replaced set has a new content hash"


def test_upload_package_keeps_its_old_name_as_an_alias(tmp_path, tiny_model_dir):
    from retail_scoring.cli import main

    for command in ("upload-package", "upload-models"):
        layout = StorageLayout(f"file://{tmp_path}/{command}")
        assert main([command, "--storage", layout.root, "--source", str(tiny_model_dir)]) == 0
        assert read_manifest(layout, TINY_MODELS)[1], command


def test_a_scoring_task_writes_only_what_the_layout_lists(layout, monkeypatch):
    """The one list of a task's writes (its Batch grants come from it): a calibrated run's list
    holds the package's own output too, and a write outside the list fails on any backend."""
    monkeypatch.setattr(storage, "_allowed_writes", None)
    plain = layout.scoring_task_writes("run-w", "partition_000", [1, 2], calibrated=False)
    calibrated = layout.scoring_task_writes("run-w", "partition_000", [1, 2], calibrated=True)
    assert set(calibrated) - set(plain) == {layout.model_output_file("run-w", 1), layout.model_output_file("run-w", 2)}
    assert layout.partition_summary("run-w", "partition_000") in plain
    assert layout.task_progress("run-w", "partition_000") in plain
    storage.allow_writes_only(calibrated)
    storage.write_bytes_atomic(layout.model_output_file("run-w", 1), b"listed")
    with pytest.raises(WriteNotAllowedError, match="not one of them"):
        storage.write_bytes_atomic(layout.forecast_file("run-w", 3), b"another partition's")
    assert not storage.exists(layout.forecast_file("run-w", 3))
