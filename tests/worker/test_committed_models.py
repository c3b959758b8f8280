"""The committed model packages: complete, matching their manifests, within the repository's budget."""

import json
from pathlib import Path

import pytest

from retail_scoring.errors import ModelSetError
from retail_scoring.layout import StorageLayout
from retail_scoring.package import load_package, upload_package
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
    with pytest.raises(ModelSetError, match=rf"{changed}: sha256 \w+ does not match the manifest's \w+"):
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
    with pytest.raises(ModelSetError, match=refusal), load_package(layout, version):
        pass
