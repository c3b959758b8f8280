"""An r-table package is loaded from storage only as its manifest pins it, and planning can tell
before any pool exists whether it fits a scenario: its profile, the columns it reads and their
types, the columns it returns."""

import json
import shutil

import pyarrow.compute as pc
import pytest

from retail_scoring.errors import ModelPackageError
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from retail_scoring.scenarios.churn_data import table_manifest
from retail_scoring.scenarios.package import TablePackageManifest, load_table_package, read_table_manifest
from retail_scoring.scenarios.scoring import score_shard
from retail_scoring.scenarios.table import checked_table
from tests.churn import SNAPSHOT
from tests.worker.conftest import shard_rows

VERSION = "glm-churn-v1"


@pytest.fixture
def stored(scenario, glm_package, storage_root, tmp_path) -> StorageLayout:
    folder = tmp_path / VERSION
    shutil.copytree(glm_package, folder)
    (folder / "manifest.json").write_text(json.dumps(table_manifest(scenario, folder, VERSION)))
    layout = StorageLayout(storage_root)
    upload_package(folder, layout, replace=True)
    return layout


def test_a_stored_package_scores_a_shard_and_fits_its_scenario(scenario, stored, storage_root):
    manifest = read_table_manifest(stored, VERSION, None)
    assert manifest.misfit(scenario) == []
    batch = checked_table(shard_rows(scenario, storage_root, "state=NY"), scenario.dataset.columns,
                          scenario.dataset.key, "NY")  # fmt: skip
    with load_table_package(stored, VERSION, manifest.sha256) as model:
        result = score_shard(scenario, model, batch, "state=NY", SNAPSHOT.isoformat())
    assert len(result.output) == len(batch) and pc.all(pc.less_equal(result.output["p_churn"], 1)).as_py()


def test_a_package_changed_since_planning_is_refused(stored):
    with pytest.raises(ModelPackageError, match=f"model package {VERSION} changed since the run was planned"):
        with load_table_package(stored, VERSION, "0" * 64):
            pass


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"profile": "regression"}, "it serves profile regression, the scenario is classification"),
        (
            {"input": {"tenure": "number"}},
            "it reads column 'tenure' (number), which the scenario's dataset does not declare",
        ),
        ({"input": {"state": "string"}}, "it reads column 'state' as string, the scenario declares categorical"),
        ({"output": ["p_churn", "segment"]}, "it returns ['p_churn', 'segment'], the scenario's output is ['p_churn']"),
    ],
)
def test_a_package_that_does_not_fit_the_scenario_is_named_with_how(scenario, glm_package, changes, message):
    manifest = TablePackageManifest.from_dict(table_manifest(scenario, glm_package, VERSION, **changes), "m.json", "")
    assert manifest.misfit(scenario) == [f"m.json: model package {VERSION} does not fit scenario customer_churn: "
                                         f"{message}"]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "r-script"}, r"not a package of kind r-table \(kind r-script\)"),
        ({"script": "predict.R"}, "script 'predict.R' is not among the manifest's files"),
        ({"input": {"state": "factor"}}, "input types must be among integer, number, string, categorical"),
        ({"colour": "blue"}, r"manifest fields missing \[\], unknown \['colour'\]"),
        ({"files": {"../glm.rds": "0"}}, "file name"),
    ],
)
def test_a_manifest_that_cannot_be_read_is_refused_naming_it(scenario, glm_package, changes, message):
    with pytest.raises(ModelPackageError, match=f"^m.json: .*{message}"):
        TablePackageManifest.from_dict(table_manifest(scenario, glm_package, VERSION, **changes), "m.json", "")


def test_a_manifest_that_is_no_json_object_is_refused_naming_it():
    with pytest.raises(ModelPackageError, match=r"^m.json: not a package of kind r-table \(kind none: a JSON list"):
        TablePackageManifest.from_dict(["r-table"], "m.json", "")
