"""The compiled engine of `gbm-lag-quantiles` packages: each gbm's trees exported from the R object,
rebuilt with treelite's model builder and compiled to a shared library by tl2cgen, scored without
R and bit for bit as R's `predict.gbm`.

Bit-identity rests on three things gbm's own C code does: a row goes left when `x < split`, a
leaf adds its `SplitCodePred`, and the sum starts at `initF` and adds the trees in order. The
engine builds `initF` as a first one-leaf tree, so tl2cgen's sum (in double precision, trees in
order) is gbm's. gbm sends a missing value down a third, "missing" branch, which treelite cannot
express: the engine refuses rows with NaN (the worker rejects NaN features before scoring anyway).
Categorical splits are not supported: packaging says so, and the package keeps its R engine.

Packaging compiles every model and keeps the engine only when parity rows (values at, just below
and just above every split of every tree, and random rows in between) give exactly R's
predictions, every bit; the manifest records how many rows were checked."""

import logging
import os
import platform
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retail_scoring.errors import InputDataError, ModelPackageError

log = logging.getLogger(__name__)

RANDOM_PARITY_ROWS = 2000
# Rows per model, with R's predictions, that a worker's compiled library must reproduce at load.
SELF_CHECK_ROWS = 64
SELF_CHECK_FILE = "compiled_self_check.npz"
# The reference the engine must equal, and the R engine's own call: every tree of the model.
R_PREDICT_GBM = "function(m, d) predict(m, d, n.trees = m$n.trees)"
TREE_FIELDS = ("split_var", "split_code", "left", "right")


def engine_platform() -> str:
    """What a compiled library runs on: a package compiled elsewhere falls back to R here."""
    return f"{platform.system().lower()}-{platform.machine()}"


def engine_threads() -> int:
    """Cores this process may use (FORECAST_ENGINE_THREADS when the node runs several tasks)."""
    return int(os.environ.get("FORECAST_ENGINE_THREADS") or len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class GbmTrees:
    """A gbm's trees as flat arrays (gbm's own node numbering within each tree)."""

    init_f: float
    n_features: int
    tree_sizes: np.ndarray
    split_var: np.ndarray  # -1 at a leaf
    split_code: np.ndarray  # the split value, or the leaf's value
    left: np.ndarray
    right: np.ndarray


def export_trees(r_model, name: str) -> GbmTrees:
    """The trees of an R gbm object; categorical splits refused naming the model and feature."""
    from retail_scoring import rsession

    export = rsession.r_eval(
        "function(m) { t <- m$trees[seq_len(m$n.trees)]; list(initF = m$initF, var_type = m$var.type,"
        " var_names = m$var.names, sizes = vapply(t, function(x) length(x[[1]]), 1L),"
        " split_var = unlist(lapply(t, `[[`, 1)), split_code = unlist(lapply(t, `[[`, 2)),"
        " left = unlist(lapply(t, `[[`, 3)), right = unlist(lapply(t, `[[`, 4))) }"
    )(r_model)
    fields = {key: rsession.r_vector_to_numpy(export.rx2(key)) for key in ("sizes", *TREE_FIELDS)}
    var_type = rsession.r_vector_to_numpy(export.rx2("var_type"))
    var_names = [str(v) for v in export.rx2("var_names")]
    split_var = fields["split_var"].astype(np.int64)
    used = np.unique(split_var[split_var >= 0])
    categorical = [var_names[i] for i in used if var_type[i] != 0]
    if categorical:
        raise ModelPackageError(
            f"{name}: splits on categorical features {categorical} are not supported by the compiled engine; "
            "package without --compile to score it with R"
        )
    return GbmTrees(
        init_f=float(rsession.r_vector_to_numpy(export.rx2("initF"))[0]),
        n_features=len(var_names),
        tree_sizes=fields["sizes"].astype(np.int64),
        split_var=split_var,
        split_code=fields["split_code"].astype(np.float64),
        left=fields["left"].astype(np.int64),
        right=fields["right"].astype(np.int64),
    )


def treelite_model(trees: GbmTrees):
    """The trees as a treelite model: initF first, as a one-leaf tree, then gbm's trees in order,
    each test `x < split` (True: left) in double precision."""
    from treelite.model_builder import Metadata, ModelBuilder, PostProcessorFunc, TreeAnnotation

    n_trees = len(trees.tree_sizes) + 1
    builder = ModelBuilder(
        threshold_type="float64",
        leaf_output_type="float64",
        metadata=Metadata(
            num_feature=trees.n_features,
            task_type="kRegressor",
            average_tree_output=False,
            num_target=1,
            num_class=[1],
            leaf_vector_shape=(1, 1),
        ),
        tree_annotation=TreeAnnotation(num_tree=n_trees, target_id=[0] * n_trees, class_id=[0] * n_trees),
        postprocessor=PostProcessorFunc(name="identity"),
        base_scores=[0.0],
    )
    builder.start_tree()
    builder.start_node(0)
    builder.leaf(trees.init_f)
    builder.end_node()
    builder.end_tree()
    starts = np.r_[0, np.cumsum(trees.tree_sizes)[:-1]]
    for start in starts:
        builder.start_tree()
        pending = [0]
        while pending:  # only nodes reachable through left/right: gbm's missing branches are left out
            node = pending.pop()
            at = start + node
            builder.start_node(node)
            if trees.split_var[at] < 0:
                builder.leaf(float(trees.split_code[at]))
            else:
                left, right = int(trees.left[at]), int(trees.right[at])
                builder.numerical_test(
                    int(trees.split_var[at]),
                    float(trees.split_code[at]),
                    default_left=True,
                    opname="<",
                    left_child_key=left,
                    right_child_key=right,
                )
                pending += [left, right]
            builder.end_node()
        builder.end_tree()
    return builder.commit()


def parity_rows(all_trees: list[GbmTrees], features: list[str], seed: int = 0) -> pd.DataFrame:
    """Rows that exercise every split of every tree at its boundary: per feature, each split value,
    the doubles just below and above it, and random rows between the feature's smallest and
    largest split."""
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    for index in range(len(features)):
        splits = np.unique(np.concatenate([t.split_code[(t.split_var == index)] for t in all_trees] or [np.zeros(0)]))
        if not len(splits):
            splits = np.zeros(1)
        values.append(np.unique(np.concatenate([splits, np.nextafter(splits, -np.inf), np.nextafter(splits, np.inf)])))
    n_rows = max(max(len(v) for v in values), RANDOM_PARITY_ROWS)
    columns = {}
    for name, candidates in zip(features, values, strict=True):
        boundary = np.resize(rng.permutation(candidates), n_rows)  # every boundary value at least once
        spread = rng.uniform(candidates.min(), candidates.max(), RANDOM_PARITY_ROWS)
        columns[name] = np.concatenate([boundary, spread])
    return pd.DataFrame(columns)


class CompiledModel:
    """One compiled gbm, loaded: predictions on the link scale, as R's predict.gbm gives them."""

    def __init__(self, library: Path, name: str, threads: int):
        import tl2cgen

        self.name = name
        self.library = library
        try:
            self._predictor = tl2cgen.Predictor(str(library), nthread=threads)
        except Exception as error:  # tl2cgen raises its own error for a library it cannot load
            raise ModelPackageError(f"{library}: compiled engine of {name} cannot be loaded ({error})") from error

    def predict(self, features: np.ndarray) -> np.ndarray:
        import tl2cgen

        if np.isnan(features).any():
            raise InputDataError(f"{self.name}: the compiled engine refuses rows with missing values")
        matrix = tl2cgen.DMatrix(np.ascontiguousarray(features, dtype=np.float64), dtype="float64")
        return self._predictor.predict(matrix).reshape(-1)


def differing_rows(expected: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Rows whose predictions differ in any bit (no tolerance: one ulp is a difference)."""
    return np.flatnonzero(expected.view(np.uint64) != np.asarray(found, dtype=np.float64).view(np.uint64))


def check_self(folder: Path, predictors: dict[str, "CompiledModel"], features: dict[str, list[str]]) -> None:
    """Each loaded library reproduces, bit for bit, R's predictions of its own model on the rows
    packaging stored with them (SELF_CHECK_FILE): a library swapped for another's, or rebuilt
    differently, is refused before it scores anything."""
    with np.load(folder / SELF_CHECK_FILE, allow_pickle=False) as stored:
        for name, predictor in predictors.items():
            if f"{name}.rows" not in stored:
                raise ModelPackageError(f"{folder / SELF_CHECK_FILE}: no self-check rows for {name}; package again")
            rows, expected = stored[f"{name}.rows"], stored[f"{name}.predictions"]
            if rows.shape[1] != len(features[name]):
                raise ModelPackageError(
                    f"{SELF_CHECK_FILE}: {name}'s rows have {rows.shape[1]} features, not {len(features[name])}"
                )
            differs = differing_rows(expected, predictor.predict(rows))
            if len(differs):
                raise ModelPackageError(
                    f"{predictor.library.name}: the compiled library of {name} does not predict what R predicted for "
                    f"it at packaging on {len(differs)} of {len(rows)} self-check rows (first row {differs[0]}); "
                    "refused: the library is not the one packaged with this model"
                )


def write_self_check(folder: Path, r_models: dict, features: dict[str, list[str]], rows: pd.DataFrame) -> str:
    """Store SELF_CHECK_ROWS of the parity rows per model with R's predictions of them."""
    from retail_scoring import rsession

    r_predict = rsession.r_eval(R_PREDICT_GBM)
    picked = rows.iloc[np.linspace(0, len(rows) - 1, SELF_CHECK_ROWS).astype(int)]
    arrays = {}
    for name, model in r_models.items():
        columns = {feature: picked[feature].to_numpy() for feature in features[name]}
        arrays[f"{name}.rows"] = np.column_stack(list(columns.values()))
        arrays[f"{name}.predictions"] = rsession.r_vector_to_numpy(
            r_predict(model, rsession.numeric_columns_to_r(columns))
        )
    np.savez(folder / SELF_CHECK_FILE, **arrays)
    return SELF_CHECK_FILE


def compile_models(folder: Path, r_models: dict, features: dict[str, list[str]]) -> dict:
    """Compile each of `r_models` (model name -> R gbm) into `folder`, write the parity rows and
    check the compiled predictions against R's, bit for bit; store the self-check rows every
    worker checks its libraries with. Returns the manifest's `compiled_engine` section; on any
    difference (or failure) removes what it wrote and raises."""
    import tl2cgen

    written: list[Path] = [folder / SELF_CHECK_FILE]
    try:
        exported = {name: export_trees(model, name) for name, model in r_models.items()}
        libraries = {}
        for name, trees in exported.items():
            library = folder / f"{name}.so"
            written.append(library)
            compile_library(treelite_model(trees), library)
            libraries[name] = library.name
            log.info("%s: %d trees compiled to %s", name, len(trees.tree_sizes), library.name)
        every_feature = sorted({f for names in features.values() for f in names})
        rows = parity_rows(list(exported.values()), every_feature)
        check_parity(folder, libraries, r_models, features, rows)
        return {
            "library": f"tl2cgen {tl2cgen.__version__}",
            "platform": engine_platform(),
            "models": libraries,
            "parity_rows_checked": len(rows),
            "self_check": write_self_check(folder, r_models, features, rows),
        }
    except Exception:
        for path in written:
            path.unlink(missing_ok=True)
        raise


# tl2cgen tests `!(data[i].missing != -1) || data[i].fvalue < t`: its Entry is a union, so a double
# whose low 32 bits are all ones (nextafter(0.5, 0), say) reads as missing and goes left whatever
# its value. The engine never gets missing values (it refuses NaN rows), so the compiled code tests
# the value only, as gbm does.
MISSING_TEST = re.compile(r"!\(data\[(\d+)\]\.missing != -1\) \|\| ")


def compile_library(model, library: Path) -> None:
    """C code for `model` from tl2cgen, with its missing-value tests taken out, built by gcc into
    `library` (the source split in files compiled in parallel)."""
    import tl2cgen

    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="tl2cgen-") as source:
        tl2cgen.generate_c_code(model, dirpath=source, params={"parallel_comp": 4 * cores})
        for path in Path(source).glob("*.c"):
            code = path.read_text()
            path.write_text(MISSING_TEST.sub("", code))
        built = tl2cgen.create_shared("gcc", source, nthread=cores, long_build_time_warning=False)
        shutil.move(built, library)


def check_parity(
    folder: Path, libraries: dict[str, str], r_models: dict, features: dict[str, list[str]], rows: pd.DataFrame
) -> None:
    """The parity gate: every compiled model (name -> library in `folder`) predicts `rows` exactly
    as R does, every bit."""
    from retail_scoring import rsession

    r_predict = rsession.r_eval(R_PREDICT_GBM)
    for name, library in libraries.items():
        columns = {feature: rows[feature].to_numpy() for feature in features[name]}
        expected = rsession.r_vector_to_numpy(r_predict(r_models[name], rsession.numeric_columns_to_r(columns)))
        found = CompiledModel(folder / library, name, threads=1).predict(np.column_stack(list(columns.values())))
        differs = differing_rows(expected, found)
        if len(differs):
            row = differs[0]
            raise ModelPackageError(
                f"{name}: the compiled engine differs from R's predict on {len(differs)} of {len(rows)} "
                f"parity rows, first row {row}: R {expected[row]!r}, compiled {found[row]!r}; not packaged"
            )
    log.info("parity gate: %d compiled models equal R's predictions on %d rows, every bit", len(libraries), len(rows))
