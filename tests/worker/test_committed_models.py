"""The committed model packages: complete, matching their manifests, within the repository's budget."""

import json
from pathlib import Path

import pytest

from retail_scoring import storage
from retail_scoring.data.dataset import write_products
from retail_scoring.errors import ModelPackageError
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import load_package, parse_manifest, upload_package
from retail_scoring.run.scoring import ScoringJob, score_partition
from scoring_airflow.settings import ForecastSettings
from tests.conftest import local_path

MODELS = Path(__file__).resolve().parents[2] / "include" / "models"
BUDGET_BYTES = 40 * 2**20


def test_committed_models_fit_the_size_budget():
    assert sum(path.stat().st_size for path in MODELS.rglob("*") if path.is_file()) < BUDGET_BYTES


def test_the_default_model_version_is_committed():
    assert (MODELS / ForecastSettings().model_version / "manifest.json").is_file()


PACKAGES = sorted(MODELS.iterdir())
GBM_PACKAGES = [
    path for path in PACKAGES if json.loads((path / "manifest.json").read_text())["kind"] == "gbm-lag-quantiles"
]


@pytest.mark.parametrize("model_dir", PACKAGES, ids=lambda path: path.name)
def test_committed_package_loads_with_every_checksum_verified(tmp_path, model_dir):
    layout = StorageLayout(f"file://{tmp_path}")
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {p.name for p in model_dir.iterdir()} - {"manifest.json"}, "sealed"
    with load_package(layout, upload_package(model_dir, layout)) as package:
        assert package.version == model_dir.name
        if manifest["kind"] == "gbm-lag-quantiles":
            assert len(package.entries) == 35, "a model for every step group and quantile"


@pytest.mark.parametrize("model_dir", PACKAGES, ids=lambda path: path.name)
def test_a_changed_file_is_refused_by_its_checksum(tmp_path, model_dir):
    layout = StorageLayout(f"file://{tmp_path}")
    version = upload_package(model_dir, layout)
    changed = sorted(json.loads((model_dir / "manifest.json").read_text())["files"])[0]
    path = local_path(layout.model_file(version, changed))
    path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(ModelPackageError, match=rf"{changed}: sha256 \w+ does not match the manifest's \w+"):
        with load_package(layout, version):
            pass


@pytest.mark.parametrize("model_dir", GBM_PACKAGES, ids=lambda path: path.name)
def test_a_swapped_model_file_is_refused_by_its_checksum(tmp_path, model_dir):
    """Another valid gbm of the same set in a model's place: same class, same features; only the
    checksum tells them apart."""
    layout = StorageLayout(f"file://{tmp_path}")
    version = upload_package(model_dir, layout)
    swapped = local_path(layout.model_file(version, "gbm_t1_q25.rds"))
    swapped.write_bytes(local_path(layout.model_file(version, "gbm_t1_q5.rds")).read_bytes())
    refusal = r"gbm_t1_q25.rds: sha256 \w+ does not match the manifest's \w+"
    with pytest.raises(ModelPackageError, match=refusal), load_package(layout, version):
        pass


def test_the_committed_gbm_packages_compiled_engine_scores_the_reference_run_bit_identical_to_r(
    tmp_path, reference_series
):
    """The whole 90-product reference run at origin 107, once with R's predict and once with the
    compiled engine: every forecast file byte for byte the same (about two minutes of R)."""
    layout = StorageLayout(f"file://{tmp_path}")
    write_products(layout, reference_series, 90)
    version = upload_package(MODELS / "gbm-1250x6-v1", layout)
    products = list(range(1, 91))
    score_partition(ScoringJob(layout, products, 107, version, "engine-r", engine="r"))
    score_partition(ScoringJob(layout, products, 107, version, "engine-compiled", engine="compiled"))
    differing = [
        product
        for product in products
        if storage.read_bytes(layout.forecast_file("engine-r", product))
        != storage.read_bytes(layout.forecast_file("engine-compiled", product))
    ]
    assert differing == []


def test_the_committed_gbm_package_states_the_weeks_it_was_trained_on():
    manifest = json.loads((MODELS / ForecastSettings().model_version / "manifest.json").read_text())
    assert parse_manifest(manifest, "committed").training_weeks == (0, 107)


@pytest.mark.parametrize("weeks", [[60, 0], [0], "0..60", [0.5, 60]])
def test_a_training_window_that_is_not_two_ascending_weeks_is_refused_naming_the_field(weeks):
    manifest = json.loads((MODELS / ForecastSettings().model_version / "manifest.json").read_text())
    manifest["training_data"]["weeks"] = weeks
    with pytest.raises(ModelPackageError, match=r"^m\.json: training_data\.weeks must be \[first week, last week\]"):
        parse_manifest(manifest, "m.json")
