"""The compiled gbm engine: packaged behind a parity gate, scoring bit-identical to R's predict,
chosen by `engine` (auto | r | compiled), refusing what it cannot score exactly."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retail_scoring import storage
from retail_scoring.cli import main
from retail_scoring.errors import InputDataError, ModelPackageError
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import load_package, parse_manifest, seal_package, upload_package
from retail_scoring.packages.gbm.compiled import (
    CompiledModel,
    check_parity,
    check_self,
    differing_rows,
    export_trees,
    parity_rows,
)
from retail_scoring.packages.gbm.kind import load_r_models, manifest_entries
from retail_scoring.run.scoring import ScoringJob, score_partition
from tests.conftest import TINY_MODELS, write_plan

MODELS = Path(__file__).resolve().parents[2] / "include" / "models"


@pytest.fixture(scope="session")
def compiled_tiny(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model package packaged with its compiled engine, as `retail-scoring package --compile` does."""
    folder = tmp_path_factory.mktemp("compiled") / TINY_MODELS
    shutil.copytree(tiny_model_dir, folder)
    assert main(["package", "--source", str(folder), "--compile"]) == 0
    return folder


def manifest_of(folder: Path):
    return parse_manifest(json.loads((folder / "manifest.json").read_text()), str(folder / "manifest.json"))


def test_packaging_compiles_every_model_and_seals_the_libraries(compiled_tiny):
    manifest = manifest_of(compiled_tiny)
    section = manifest.raw["compiled_engine"]
    assert set(section["models"]) == {entry.name for entry in manifest_entries(manifest.raw, "")}
    for library in section["models"].values():
        assert library in manifest.files, "every library carries its sha256"
    assert section["parity_rows_checked"] > 2000
    assert section["compiled_from"]["gbm_t1_q5"] == manifest.files["gbm_t1_q5.rds"]


def test_the_compiled_engine_writes_the_same_forecast_bytes_as_r(layout, compiled_tiny):
    upload_package(compiled_tiny, layout, replace=True)
    for run_id, engine in (("with-r", "r"), ("compiled", "compiled")):
        score_partition(ScoringJob(layout, [1, 2, 3], 107, TINY_MODELS, run_id, engine=engine))
    for product in (1, 2, 3):
        r_bytes = storage.read_bytes(layout.forecast_file("with-r", product))
        assert storage.read_bytes(layout.forecast_file("compiled", product)) == r_bytes
    score_partition(ScoringJob(layout, [1], 60, TINY_MODELS, "old-r", engine="r"))  # an older origin: other rows
    score_partition(ScoringJob(layout, [1], 60, TINY_MODELS, "old-compiled", engine="compiled"))
    old_r = storage.read_bytes(layout.forecast_file("old-r", 1))
    assert storage.read_bytes(layout.forecast_file("old-compiled", 1)) == old_r


def test_auto_takes_the_compiled_engine_where_packaged_and_r_elsewhere(layout, compiled_tiny):
    with load_package(layout, TINY_MODELS, engine="auto") as package:
        assert package.engine == "r", "the uploaded tiny set has no compiled engine"
    with pytest.raises(ModelPackageError, match=f"model package {TINY_MODELS} has no compiled engine"):
        with load_package(layout, TINY_MODELS, engine="compiled"):
            pass
    upload_package(compiled_tiny, layout, replace=True)
    with load_package(layout, TINY_MODELS, engine="auto") as package:
        assert package.engine == "compiled"
    with load_package(layout, TINY_MODELS, engine="r") as package:
        assert package.engine == "r"


def test_the_parity_gate_refuses_an_engine_that_differs_from_r_by_a_bit(compiled_tiny, tmp_path):
    folder = tmp_path / "swapped"
    shutil.copytree(compiled_tiny, folder)
    manifest = manifest_of(folder)
    libraries = dict(manifest.raw["compiled_engine"]["models"])
    libraries["gbm_t1_q5"] = libraries["gbm_t1_q25"]  # another model's library
    entries = manifest_entries(manifest.raw, "")
    r_models = load_r_models(manifest, folder, entries)
    features = {e.name: list(e.features) for e in entries}
    every_feature = sorted({f for names in features.values() for f in names})
    rows = parity_rows([export_trees(model, name) for name, model in r_models.items()], every_feature)
    check_parity(folder, {"gbm_t2_q50": libraries["gbm_t2_q50"]}, r_models, features, rows)  # its own: passes
    with pytest.raises(ModelPackageError, match=r"gbm_t1_q5: the compiled engine differs from R's predict on \d+ of"):
        check_parity(folder, libraries, r_models, features, rows)


def test_the_comparison_behind_both_gates_counts_a_one_ulp_difference():
    expected = np.array([7.25, 0.1, 1e-300, 123456.789])
    found = expected.copy()
    assert not len(differing_rows(expected, found))
    found[2] = np.nextafter(found[2], np.inf)
    assert list(differing_rows(expected, found)) == [2], "one ulp is a difference"
    found[1] = np.nextafter(found[1], -np.inf)
    assert list(differing_rows(expected, found)) == [1, 2]


def test_a_worker_refuses_a_compiled_library_swapped_for_another_models(layout, compiled_tiny, tmp_path):
    """One model's library replaced by another's, with the manifest's checksums updated to match:
    every file passes its sha256, but the library does not reproduce its model's R predictions
    stored at packaging, so the package is refused before it scores anything."""
    folder = tmp_path / "swapped" / TINY_MODELS
    shutil.copytree(compiled_tiny, folder)
    shutil.copy(folder / "gbm_t2_q25.qs.npz", folder / "gbm_t2_q50.qs.npz")
    raw = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(raw))
    seal_package(folder)
    upload_package(folder, layout, replace=True)
    with pytest.raises(
        ModelPackageError, match=r"gbm_t2_q50.qs.npz: the compiled model of gbm_t2_q50 does not predict what R"
    ):
        with load_package(layout, TINY_MODELS, engine="compiled"):
            pass
    upload_package(compiled_tiny, layout, replace=True)
    with load_package(layout, TINY_MODELS, engine="compiled") as package:
        assert package.engine == "compiled", "the package as compiled passes its self-check"


def test_the_self_check_refuses_a_library_off_by_one_ulp(compiled_tiny):
    manifest = manifest_of(compiled_tiny)
    entries = manifest_entries(manifest.raw, "")
    features = {e.name: list(e.features) for e in entries}
    libraries = manifest.raw["compiled_engine"]["models"]
    predictors = {e.name: CompiledModel(compiled_tiny / libraries[e.name], e.name, 1) for e in entries}
    check_self(compiled_tiny, predictors, features)

    class OneUlpHigher(CompiledModel):
        def predict(self, features: np.ndarray) -> np.ndarray:
            predictions = super().predict(features)
            predictions[5] = np.nextafter(predictions[5], np.inf)
            return predictions

    predictors["gbm_t4_q75"] = OneUlpHigher(compiled_tiny / libraries["gbm_t4_q75"], "gbm_t4_q75", 1)
    with pytest.raises(
        ModelPackageError, match=r"gbm_t4_q75 does not predict .* on 1 of 64 self-check rows \(first row 5\)"
    ):
        check_self(compiled_tiny, predictors, features)


def test_a_compiled_engine_left_from_other_model_files_is_refused(compiled_tiny, tmp_path):
    folder = tmp_path / "stale"
    shutil.copytree(compiled_tiny, folder)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["compiled_engine"]["compiled_from"]["gbm_t3_q50"] = "0" * 64  # as if gbm_t3_q50.rds were retrained
    with pytest.raises(ModelPackageError, match=r"not compiled from these model files \(gbm_t3_q50\); package again"):
        parse_manifest(raw, "stale/manifest.json")


def test_categorical_splits_make_packaging_say_the_model_is_not_supported():
    from retail_scoring import rsession

    model = rsession.r_eval(
        "suppressMessages(library(gbm)); set.seed(1);"
        " d <- data.frame(y = rnorm(200), f = factor(sample(c('a', 'b', 'c'), 200, TRUE)), x = runif(200));"
        " d$y <- d$y + (d$f == 'b') * 3;"
        " gbm(y ~ f + x, data = d, distribution = 'gaussian', n.trees = 20, interaction.depth = 2, bag.fraction = 1)"
    )
    with pytest.raises(ModelPackageError, match=r"toy: splits on categorical features \['f'\] are not supported"):
        export_trees(model, "toy")


def test_the_compiled_engine_refuses_rows_with_missing_values(compiled_tiny):
    section = manifest_of(compiled_tiny).raw["compiled_engine"]
    model = CompiledModel(compiled_tiny / section["models"]["gbm_t1_q50"], "gbm_t1_q50", threads=1)
    rows = np.ones((3, 19))
    assert model.predict(rows).shape == (3,)
    rows[1, 4] = np.nan
    with pytest.raises(InputDataError, match="gbm_t1_q50: the compiled engine refuses rows with missing values"):
        model.predict(rows)


def test_an_r_script_package_has_no_compiled_engine(tmp_path):
    layout = StorageLayout(f"file://{tmp_path}/storage")
    upload_package(MODELS / "ranger-qrf-v1", layout)
    with pytest.raises(ModelPackageError, match="kind r-script has no compiled engine; use engine auto or r"):
        with load_package(layout, "ranger-qrf-v1", engine="compiled"):
            pass


def test_a_partition_scores_with_the_runs_engine_and_threads(layout, compiled_tiny):
    upload_package(compiled_tiny, layout, replace=True)
    write_plan(layout, "threads", {"partition_000": [1]}, engine="compiled", engine_threads=2)
    result = subprocess.run(
        [sys.executable, "-m", "retail_scoring.cli", "score", "--storage", layout.root, "--run-id", "threads",
         "--partition", "partition_000"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"model package {TINY_MODELS}: compiled engine, 2 threads" in result.stdout


def test_a_partition_scored_by_the_compiled_engine_starts_no_r(layout, compiled_tiny):
    """The R dependency check is for packages that run R: a compiled run never loads rpy2 (nor R)."""
    upload_package(compiled_tiny, layout, replace=True)
    score = (
        "import sys; from retail_scoring.layout import StorageLayout; "
        "from retail_scoring.run.scoring import ScoringJob, score_partition; "
        f"score_partition(ScoringJob(StorageLayout({layout.root!r}), [1, 2], 107, {TINY_MODELS!r}, 'lean', "
        "engine='{}')); "
        "print(sorted(m for m in sys.modules if m.startswith('rpy2')))"
    )
    compiled = subprocess.run([sys.executable, "-c", score.format("compiled")], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    assert compiled.stdout.strip().splitlines()[-1] == "[]"
    with_r = subprocess.run([sys.executable, "-c", score.format("r")], capture_output=True, text=True)
    assert "'rpy2.robjects'" in with_r.stdout.strip().splitlines()[-1], "the R engine does load it: the check can fail"


def test_an_engine_of_an_older_release_is_refused_and_compiling_again_replaces_it(compiled_tiny, tmp_path):
    folder = tmp_path / "older" / TINY_MODELS
    shutil.copytree(compiled_tiny, folder)
    raw = json.loads((folder / "manifest.json").read_text())
    del raw["compiled_engine"]["kernel"]  # as packaged when the engine was tl2cgen's
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelPackageError, match=r"the compiled engine has no kernel \(packaged by an older release\)"):
        parse_manifest(raw, str(folder / "manifest.json"))
    (folder / "gbm_t1_q5.qs.npz").write_bytes(b"left by the older engine")
    assert main(["package", "--source", str(folder), "--compile"]) == 0
    assert manifest_of(folder).raw["compiled_engine"] == manifest_of(compiled_tiny).raw["compiled_engine"]
    assert (folder / "gbm_t1_q5.qs.npz").read_bytes() == (compiled_tiny / "gbm_t1_q5.qs.npz").read_bytes()
