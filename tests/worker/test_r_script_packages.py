"""Model packages of kind r-script: the package's own R code scores stacked products; whatever it
returns is checked against its output contract, and its failures name the package, the function,
R's message and the R calls. Uses tests/packages/naive-quantiles, broken on purpose per test."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retail_scoring import storage
from retail_scoring.data.catalogue import build_catalogue
from retail_scoring.data.tables import read_forecast, read_product_table
from retail_scoring.errors import EXIT_BAD_INPUT, ModelPackageError, ScoringError
from retail_scoring.packages.base import seal_package, upload_package
from retail_scoring.run.scoring import ScoringJob, score_partition
from tests.conftest import local_path
from tests.worker.test_cli_errors import score

PACKAGE = Path(__file__).parents[1] / "packages" / "naive-quantiles"
VERSION = "naive-quantiles-test"
ORIGIN = 107


def naive_package(layout, tmp_path, edit=None, manifest_change=None) -> str:
    """The test package, its script edited and its manifest changed, sealed and uploaded."""
    folder = tmp_path / "naive-quantiles"
    shutil.copytree(PACKAGE, folder)
    if edit:
        script = folder / "score.R"
        edited = edit(script.read_text())
        assert edited != script.read_text(), "the edit must change the script"
        script.write_text(edited)
    if manifest_change:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest_change(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest))
    seal_package(folder)
    return upload_package(folder, layout, replace=True)


def replace(old: str, new: str):
    return lambda script: script.replace(old, new)


def expected_naive_quantiles(layout, product: int) -> pd.DataFrame:
    """The package's forecast computed independently: numpy's default quantile is R's type 7."""
    history = read_product_table(layout, product, "history")
    recent = history[(history["week"] > ORIGIN - 13) & (history["week"] <= ORIGIN)]
    levels = recent.groupby(["sku", "store"])["sales"].quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack()
    levels.columns = ["q5", "q25", "q50", "q75", "q95"]
    return levels


def test_an_r_script_package_scores_stacked_products_with_one_call_per_chunk(layout, tmp_path):
    version = naive_package(layout, tmp_path)
    timings = score_partition(ScoringJob(layout, [1, 2, 3], ORIGIN, version, "naive"))
    assert timings.predict_calls == 1, "one score() call for the chunk's three products"
    for product in (1, 2, 3):
        forecast = read_forecast(layout.forecast_file("naive", product))
        assert len(forecast) == 66 * 13 and set(forecast["week"]) == set(range(108, 121))
        assert (forecast["model_version"] == VERSION).all() and (forecast["forecast_origin"] == ORIGIN).all()
        expected = expected_naive_quantiles(layout, product)
        got = forecast.set_index(["sku", "store"])[expected.columns]
        assert np.allclose(got.to_numpy(), expected.reindex(got.index).to_numpy(), rtol=1e-12)


def test_per_product_packages_get_one_call_per_product_and_the_same_forecasts(layout, tmp_path):
    naive_package(layout, tmp_path)
    score_partition(ScoringJob(layout, [1, 2, 3], ORIGIN, VERSION, "stacked"))
    naive_package(layout, tmp_path / "p", manifest_change=lambda m: m.update(per_product=True))
    assert score_partition(ScoringJob(layout, [1, 2, 3], ORIGIN, VERSION, "per-product")).predict_calls == 3
    for product in (1, 2, 3):
        stacked = storage.read_bytes(layout.forecast_file("stacked", product))
        assert storage.read_bytes(layout.forecast_file("per-product", product)) == stacked


def test_an_r_error_in_score_exits_2_naming_package_function_message_and_calls(layout, tmp_path):
    edit = replace(
        "  recent <- history", '  if (origin > 100) stop("no price list for store ", 3)\n  recent <- history'
    )
    naive_package(layout, tmp_path, edit)
    result = score(layout, "1,2", model_version=VERSION)
    assert result.returncode == 2
    assert f"model package {VERSION}: score.R: score() failed: no price list for store 3" in result.stderr
    assert "R calls:" in result.stderr and "recent_quantiles(history, origin, models)" in result.stderr
    assert "withCallingHandlers" not in result.stderr, "the worker's own R plumbing is left out"
    assert not storage.exists(layout.forecast_file("run-1", 1))


def test_an_r_error_in_load_models_is_named(layout, tmp_path):
    naive_package(layout, tmp_path, replace("  list(levels", '  stop("coefficients.csv is missing")\n  list(levels'))
    with pytest.raises(ModelPackageError, match=r"score.R: load_models\(\) failed: coefficients.csv is missing"):
        score_partition(ScoringJob(layout, [1], ORIGIN, VERSION, "load"))


@pytest.mark.parametrize(
    ("edit", "refusal"),
    [
        (
            replace('"q95")', '"p95")'),
            "columns differ from ['sku', 'store', 'week', 'q5', 'q25', 'q50', 'q75', 'q95'] "
            "(missing: ['q95']; unexpected: ['p95'])",
        ),
        (replace("  out\n}", "  out$q50 <- as.character(out$q50)\n  out\n}"), "column 'q50' is not numeric"),
        (replace("  out\n}", "  out$q50[out$store == 2] <- NaN\n  out\n}"), "rows with NaN quantiles"),
        (replace("  out\n}", "  out$q5 <- out$q5 - 1e6\n  out\n}"), "rows with negative quantiles"),
        (replace("  out\n}", "  out[out$week != 110, ]\n}"), "792 rows, expected 66 series x 13 weeks = 858"),
    ],
    ids=["wrong-columns", "text-column", "nan", "negative", "missing-week"],
)
def test_a_result_breaking_the_output_contract_is_refused_for_every_product(layout, tmp_path, edit, refusal):
    naive_package(layout, tmp_path, edit)
    with pytest.raises(ScoringError, match=r"3 of 3 products failed: product_001: model package") as raised:
        score_partition(ScoringJob(layout, [1, 2, 3], ORIGIN, VERSION, "contract"))
    assert refusal in str(raised.value) or pytest.fail(f"{refusal!r} not in {raised.value}")
    assert not any(storage.exists(layout.forecast_file("contract", p)) for p in (1, 2, 3))


def test_only_the_products_whose_rows_are_wrong_are_refused(layout, tmp_path):
    first_sku_of_product_2 = int(read_product_table(layout, 2, "futurex")["sku"].min())
    naive_package(
        layout, tmp_path, replace("  out\n}", f"  out[out$sku != {first_sku_of_product_2} | out$week != 115, ]\n}}")
    )
    with pytest.raises(ScoringError, match=r"1 of 3 products failed: product_002: .* 852 rows, expected 66 series"):
        score_partition(ScoringJob(layout, [1, 2, 3], ORIGIN, VERSION, "partial"))
    assert storage.exists(layout.forecast_file("partial", 1)) and storage.exists(layout.forecast_file("partial", 3))
    assert not storage.exists(layout.forecast_file("partial", 2))


@pytest.mark.parametrize(
    ("edit", "refusal"),
    [
        (
            replace("  out\n}", "  out$sku[1] <- 999\n  out\n}"),
            "score() returned 1 rows of series it was not given, first sku=999 store=",
        ),
        (replace("  out\n}", "  list(out)\n}"), "score() returned a list, not a data.frame"),
        (
            replace("  out\n}", "  out[rep(seq_len(nrow(out)), 1000), ]\n}"),
            "score() returned 1716000 rows x 8 columns for 132 series x 13 weeks, at most 1716 rows x 8 columns; "
            "refused before reading it",
        ),
        (replace("  out\n}", "  cbind(out, extra = 1)\n}"), "returned 1716 rows x 9 columns for 132 series"),
    ],
    ids=["unknown-series", "not-a-data-frame", "too-many-rows", "too-many-columns"],
)
def test_a_result_that_cannot_be_split_by_product_fails_the_chunk(layout, tmp_path, edit, refusal):
    naive_package(layout, tmp_path, edit)
    with pytest.raises(ScoringError, match="2 of 2 products failed") as raised:
        score_partition(ScoringJob(layout, [1, 2], ORIGIN, VERSION, "unsplit"))
    assert refusal in str(raised.value)


@pytest.mark.parametrize(
    "call", ['source(file.path(model_dir, "helpers.R"), local = TRUE)', 'sys.source(file.path(model_dir, "helpers.R"))']
)
def test_a_package_sourcing_a_file_its_manifest_does_not_list_is_refused_naming_it(layout, tmp_path, call):
    (tmp_path / "helpers.R").write_text("weeks_back <- 13L\n")  # beside the package, never in it
    source = f"  {call}\n  list(levels"
    naive_package(layout, tmp_path, replace("  list(levels", source))
    with pytest.raises(ModelPackageError) as refused:
        score_partition(ScoringJob(layout, [1], ORIGIN, VERSION, "unlisted"))
    assert (
        f"model package {VERSION}: the code sources 'helpers.R', which is not among the package's files "
        "(score.R): a package sources only the files its manifest lists"
    ) in str(refused.value)


def test_a_package_calling_quit_fails_saying_so_instead_of_ending_the_worker(layout, tmp_path):
    """In a worker process: R's quit(status = 0) there would end it as if it had succeeded."""
    naive_package(layout, tmp_path, replace("  out\n}", "  quit(status = 0)\n}"))
    result = score(layout, "1", run_id="quitting", origin=ORIGIN, model_version=VERSION)
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert f"model package {VERSION}: the code calls quit(), which would end the worker" in result.stderr


def test_a_package_sources_its_own_listed_files(layout, tmp_path):
    def with_helper(manifest: dict) -> None:
        (tmp_path / "naive-quantiles" / "helpers.R").write_text("weeks_back <- 13L\n")

    source = '  source(file.path(model_dir, "helpers.R"), local = TRUE)\n  list(levels'
    naive_package(layout, tmp_path, replace("  list(levels", source), manifest_change=with_helper)
    score_partition(ScoringJob(layout, [1], ORIGIN, VERSION, "listed"))
    assert storage.read_bytes(layout.forecast_file("listed", 1))


def test_a_script_without_a_required_function_is_refused(layout, tmp_path):
    naive_package(layout, tmp_path, replace("load_models <- function", "load_the_models <- function"))
    with pytest.raises(ModelPackageError, match=r"score.R does not define the function load_models\(\)"):
        score_partition(ScoringJob(layout, [1], ORIGIN, VERSION, "nofunction"))


def test_a_missing_r_dependency_is_named_by_the_worker(layout, tmp_path):
    naive_package(layout, tmp_path, manifest_change=lambda m: m.update(r_dependencies={"gbm": "", "forecastX": "1.0"}))
    with pytest.raises(
        ModelPackageError, match=f"cannot run model package {VERSION}: R package 'forecastX' is not installed"
    ):
        score_partition(ScoringJob(layout, [1], ORIGIN, VERSION, "nodependency"))


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (lambda m: m.pop("script"), "kind r-script needs `script`"),
        (
            lambda m: m.update(kind="python-pickle"),
            "unknown package kind 'python-pickle'; known kinds: gbm-lag-quantiles, r-script",
        ),
        (
            lambda m: m.update(output={"horizon": 13, "quantiles": [0.5, 0.05]}),
            "output quantiles must be distinct, ascending",
        ),
        (lambda m: m.pop("output"), "manifest lacks field 'output'"),
        (lambda m: m.update(per_product="yes"), "`per_product` must be true or false"),
    ],
    ids=["no-script", "unknown-kind", "unsorted-quantiles", "no-output", "per-product-text"],
)
def test_packaging_refuses_a_bad_manifest_naming_the_field(tmp_path, change, refusal):
    folder = tmp_path / "naive-quantiles"
    shutil.copytree(PACKAGE, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match=None) as raised:
        seal_package(folder)
    assert str(folder / "manifest.json") in str(raised.value) and refusal in str(raised.value)


def with_column(layout, products, name: str, values) -> None:
    """Add an exogenous column to the products' history and futurex, as a retailer's tables would."""
    for product in products:
        for table in ("history", "futurex"):
            path = local_path(layout.product_file(product, table))
            frame = pd.read_parquet(path)
            frame.assign(**{name: values(frame)}).to_parquet(path, index=False)
    build_catalogue(layout)


def needs(**exogenous):
    return lambda manifest: manifest["input"]["exogenous"].update(exogenous)


def test_an_extra_column_of_the_retailers_tables_reaches_the_package_that_declares_it(layout, tmp_path):
    with_column(layout, [1, 2], "promo_depth", lambda frame: (frame["week"] % 4 == 0) * 0.25)
    uses_it = replace(
        "  out\n}", "  stopifnot(is.numeric(future$promo_depth), max(future$promo_depth) == 0.25)\n  out\n}"
    )
    naive_package(layout, tmp_path, uses_it, needs(promo_depth="number"))
    assert score_partition(ScoringJob(layout, [1, 2], ORIGIN, VERSION, "promo")).products_scored == [1, 2]


@pytest.mark.parametrize(
    ("exogenous", "refusal"),
    [
        (
            {"promo_depth": "number"},
            "column 'promo_depth' (number) that model package naive-quantiles-test needs is missing",
        ),
        ({"price1": "integer"}, "column 'price1': model package naive-quantiles-test expects integer, found float"),
    ],
    ids=["missing-column", "wrong-type"],
)
def test_tables_that_break_the_input_contract_are_refused_naming_file_and_column(layout, tmp_path, exogenous, refusal):
    naive_package(layout, tmp_path, manifest_change=needs(**exogenous))
    with pytest.raises(ScoringError, match="1 of 1 products failed: ") as raised:
        score_partition(ScoringJob(layout, [1], ORIGIN, VERSION, "contract-in"))
    assert "product_001/history.parquet: " + refusal in str(raised.value)


def test_the_weeks_of_history_a_package_needs_are_checked_per_series(layout, tmp_path):
    history = local_path(layout.product_file(2, "history"))
    frame = pd.read_parquet(history)
    frame[~((frame["store"] == 3) & (frame["week"] < 100))].to_parquet(history, index=False)
    build_catalogue(layout)
    naive_package(layout, tmp_path)
    with pytest.raises(
        ScoringError,
        match=r"1 of 2 products failed: .*product_002/history.parquet \(origin week 107\): "
        r"series sku=\d+ store=3 lacks the 13 weeks of sales up to origin week 107 that model package "
        r"naive-quantiles-test needs",
    ):
        score_partition(ScoringJob(layout, [1, 2], ORIGIN, VERSION, "weeks"))
    assert storage.exists(layout.forecast_file("weeks", 1))


def test_crossing_quantiles_from_a_package_are_sorted_so_they_never_cross(layout, tmp_path):
    naive_package(layout, tmp_path, replace('"q75", "q95")', '"q95", "q75")'))  # q75 and q95 swapped
    score_partition(ScoringJob(layout, [1], ORIGIN, VERSION, "crossing"))
    forecast = read_forecast(layout.forecast_file("crossing", 1))
    expected = expected_naive_quantiles(layout, 1).reindex(pd.MultiIndex.from_frame(forecast[["sku", "store"]]))
    assert np.allclose(forecast[["q75", "q95"]].to_numpy(), expected[["q75", "q95"]].to_numpy(), rtol=1e-12)


def train_package(layout, folder: Path, *options: str) -> subprocess.CompletedProcess:
    command = ["train-package", "--storage", layout.root, "--product", "1", "--source", str(folder), *options]
    return subprocess.run([sys.executable, "-m", "retail_scoring.cli", *command], capture_output=True, text=True)


def test_train_package_runs_the_packages_train_r_and_seals_what_it_wrote(layout, tmp_path):
    folder = tmp_path / "naive-quantiles"
    shutil.copytree(PACKAGE, folder)
    (folder / "train.R").write_text(
        'train <- function(history, model_dir) {\n  saveRDS(list(weeks = 13L), file.path(model_dir, "settings.rds"))\n'
        "  list(rows = nrow(history))\n}\n"
    )
    result = train_package(layout, folder)
    assert result.returncode == 0, result.stderr
    rows = len(read_product_table(layout, 1, "history"))
    assert f"trained ({{'rows': [{rows}]}}) and sealed, 3 files" in result.stdout
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"score.R", "train.R", "settings.rds"}
    history = read_product_table(layout, 1, "history")
    assert manifest["training_data"]["weeks"] == [int(history["week"].min()), int(history["week"].max())]

    through = train_package(layout, folder, "--through-week", "60")
    assert through.returncode == 0, through.stderr
    cut = int((history["week"] <= 60).sum())
    assert f"trained ({{'rows': [{cut}]}})" in through.stdout, "train() saw the history through week 60 only"
    assert json.loads((folder / "manifest.json").read_text())["training_data"]["weeks"] == [
        int(history["week"].min()),
        60,
    ]
    too_early = train_package(layout, folder, "--through-week", "-1")
    assert (
        too_early.returncode == 2
        and f"--through-week -1: the history starts at week {int(history['week'].min())}" in (too_early.stderr)
    )

    (folder / "train.R").write_text('train <- function(history, model_dir) stop("too few weeks to train on")\n')
    failed = train_package(layout, folder)
    assert failed.returncode == 2 and "train.R: train() failed: too few weeks to train on" in failed.stderr
    (folder / "train.R").unlink()
    assert "train.R: not found" in train_package(layout, folder).stderr
