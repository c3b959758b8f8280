"""The compiled engine of `gbm-lag-quantiles` packages: each gbm's trees exported from the R object
as QuickScorer's arrays (`quickscorer.c`: per feature, every split sorted by threshold with its
tree and the bit mask of the leaves it rules out), scored by a kernel compiled with gcc at
packaging time, without R and bit for bit as R's `predict.gbm`.

Bit-identity rests on three things gbm's own C code does: a row goes left when `x < split`, a
leaf adds its `SplitCodePred`, and the sum starts at `initF` and adds the trees in order, in
double precision; the kernel does each. gbm sends a missing value down a third, "missing" branch:
the engine refuses rows with NaN (the worker rejects NaN features before scoring anyway).
Categorical splits are not supported: packaging says so, and the package keeps its R engine.

Why not treelite + tl2cgen, which this engine used before: on the committed package their
generated if-else code spent about 4 ns per tree and row, QuickScorer well under half of that
(`benchmarks/score_partition_vs.py --baseline` with a commit before this engine compares them),
and tl2cgen's generated missing-value test misreads some doubles (its Entry is a union) and had to
be cut out of its C code.

Packaging compiles every model and keeps the engine only when parity rows (values at, just below
and just above every split of every tree, and random rows in between) give exactly R's
predictions, every bit; the manifest records how many rows were checked."""

import ctypes
import functools
import logging
import os
import platform
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retail_scoring.errors import InputDataError, ModelPackageError

log = logging.getLogger(__name__)

RANDOM_PARITY_ROWS = 2000
# Rows per model, with R's predictions, that a worker's compiled model must reproduce at load.
SELF_CHECK_ROWS = 64
SELF_CHECK_FILE = "compiled_self_check.npz"
# The reference the engine must equal, and the R engine's own call: every tree of the model.
R_PREDICT_GBM = "function(m, d) predict(m, d, n.trees = m$n.trees)"
TREE_FIELDS = ("split_var", "split_code", "left", "right")


def engine_platform() -> str:
    """What a compiled package runs on: a package compiled elsewhere falls back to R here."""
    return f"{platform.system().lower()}-{platform.machine()}"


def available_cores() -> int:
    """Cores this process may use: the engine's threads when the run's plan does not share them."""
    return len(os.sched_getaffinity(0))


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


@dataclass(frozen=True)
class QuickScorerModel:
    """A gbm's trees as QuickScorer's arrays: the splits of feature f are
    `feature_start[f]:feature_start[f+1]`, sorted by threshold, each with its tree and the mask that
    clears the leaves of its left subtree; tree t's leaves (left to right) are
    `leaf_values[leaf_start[t]:leaf_start[t+1]]`."""

    init_f: float
    n_features: int
    feature_start: np.ndarray
    thresholds: np.ndarray
    split_tree: np.ndarray
    split_mask: np.ndarray
    leaf_start: np.ndarray
    leaf_values: np.ndarray

    @property
    def n_trees(self) -> int:
        return len(self.leaf_start) - 1

    def save(self, path: Path) -> None:
        """An .npz numpy reads, byte for byte the same for the same trees (no timestamps), so a
        package compiled again from the same models has the same checksums."""
        arrays = {"init_f": np.float64(self.init_f), "n_features": np.int64(self.n_features)}
        arrays |= {name: getattr(self, name) for name in QUICKSCORER_ARRAYS}
        with zipfile.ZipFile(path, "w") as archive:
            for name, array in arrays.items():
                with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> "QuickScorerModel":
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: np.ascontiguousarray(stored[name], dtype=kind) for name, kind in QUICKSCORER_ARRAYS.items()}
            return cls(float(stored["init_f"]), int(stored["n_features"]), **arrays)


QUICKSCORER_ARRAYS = {
    "feature_start": np.int64,
    "thresholds": np.float64,
    "split_tree": np.int32,
    "split_mask": np.uint64,
    "leaf_start": np.int64,
    "leaf_values": np.float64,
}
MAX_LEAVES = 64  # a tree's leaves are the bits of one uint64
ALL_LEAVES = (1 << MAX_LEAVES) - 1


def tree_leaves_and_splits(trees: GbmTrees, tree: int, start: int) -> tuple[list[float], list[tuple]]:
    """One tree's leaf values, left to right, and its splits as (feature, threshold, tree, mask of
    the leaves outside its left subtree); gbm's missing branches left out (no row reaches them)."""
    leaves: list[float] = []
    splits: list[tuple[int, float, int, int]] = []

    def walk(node: int) -> int:
        """The bits of the leaves under `node`."""
        at = start + node
        if trees.split_var[at] < 0:
            leaves.append(float(trees.split_code[at]))
            return 1 << (len(leaves) - 1)
        left = walk(int(trees.left[at]))
        right = walk(int(trees.right[at]))
        splits.append((int(trees.split_var[at]), float(trees.split_code[at]), tree, ALL_LEAVES & ~left))
        return left | right

    walk(0)
    return leaves, splits


def quickscorer_model(trees: GbmTrees, name: str) -> QuickScorerModel:
    """The trees' splits and leaves as QuickScorer reads them."""
    splits: list[tuple[int, float, int, int]] = []
    leaf_values: list[float] = []
    leaf_start = [0]
    for tree, start in enumerate(np.r_[0, np.cumsum(trees.tree_sizes)[:-1]]):
        leaves, tree_splits = tree_leaves_and_splits(trees, tree, int(start))
        if len(leaves) > MAX_LEAVES:
            raise ModelPackageError(
                f"{name}: tree {tree + 1} has {len(leaves)} leaves; the compiled engine scores trees of at most "
                f"{MAX_LEAVES}; package without --compile to score it with R"
            )
        splits += tree_splits
        leaf_values += leaves
        leaf_start.append(len(leaf_values))
    splits.sort(key=lambda split: (split[0], split[1]))
    features = np.array([split[0] for split in splits], dtype=np.int64)
    return QuickScorerModel(
        init_f=trees.init_f,
        n_features=trees.n_features,
        feature_start=np.searchsorted(features, np.arange(trees.n_features + 1)).astype(np.int64),
        thresholds=np.array([split[1] for split in splits], dtype=np.float64),
        split_tree=np.array([split[2] for split in splits], dtype=np.int32),
        split_mask=np.array([split[3] for split in splits], dtype=np.uint64),
        leaf_start=np.array(leaf_start, dtype=np.int64),
        leaf_values=np.array(leaf_values, dtype=np.float64),
    )


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


KERNEL_FILE = "quickscorer.so"
KERNEL_SOURCE = Path(__file__).with_name("quickscorer.c")


@functools.cache
def load_kernel(path: Path) -> ctypes.CDLL:
    """The compiled QuickScorer kernel of a package, loaded once per process."""
    try:
        kernel = ctypes.CDLL(str(path))
    except OSError as error:
        raise ModelPackageError(f"{path}: the compiled engine's kernel cannot be loaded ({error})") from error
    array = np.ctypeslib.ndpointer
    kernel.quickscorer_predict.restype = ctypes.c_int
    kernel.quickscorer_predict.argtypes = [
        ctypes.c_int64,
        ctypes.c_int64,
        array(np.float64, flags="C_CONTIGUOUS"),
        ctypes.c_int64,
        ctypes.c_double,
        *(array(dtype, flags="C_CONTIGUOUS") for dtype in QUICKSCORER_ARRAYS.values()),
        ctypes.c_int,
        array(np.float64, flags="C_CONTIGUOUS"),
    ]
    return kernel


class CompiledModel:
    """One compiled gbm, loaded: predictions on the link scale, as R's predict.gbm gives them.
    `path` is its QuickScorer arrays; the package's kernel (KERNEL_FILE) is beside them."""

    def __init__(self, path: Path, name: str, threads: int):
        self.name = name
        self.arrays_file = path
        self.threads = threads
        try:
            self.model = QuickScorerModel.load(path)
        except (OSError, ValueError, KeyError) as error:
            raise ModelPackageError(f"{path}: compiled engine of {name} cannot be loaded ({error})") from error
        self._kernel = load_kernel(path.with_name(KERNEL_FILE))

    def predict(self, features: np.ndarray) -> np.ndarray:
        if np.isnan(features).any():
            raise InputDataError(f"{self.name}: the compiled engine refuses rows with missing values")
        rows = np.ascontiguousarray(features, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.model.n_features:
            raise ModelPackageError(f"{self.name}: {rows.shape} features given, the model has {self.model.n_features}")
        out = np.empty(len(rows))
        model = self.model
        arrays = [getattr(model, name) for name in QUICKSCORER_ARRAYS]
        failed = self._kernel.quickscorer_predict(
            len(rows), model.n_features, rows, model.n_trees, model.init_f, *arrays, self.threads, out
        )
        if failed:
            raise MemoryError(f"{self.name}: the compiled engine could not allocate its leaf bits")
        return out


def differing_rows(expected: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Rows whose predictions differ in any bit (no tolerance: one ulp is a difference)."""
    return np.flatnonzero(expected.view(np.uint64) != np.asarray(found, dtype=np.float64).view(np.uint64))


def check_self(folder: Path, predictors: dict[str, "CompiledModel"], features: dict[str, list[str]]) -> None:
    """Each loaded compiled model reproduces, bit for bit, R's predictions of its own model on the
    rows packaging stored with them (SELF_CHECK_FILE): arrays swapped for another model's, or a
    kernel built differently, are refused before they score anything."""
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
                    f"{predictor.arrays_file.name}: the compiled model of {name} does not predict what R predicted for "
                    f"it at packaging on {len(differs)} of {len(rows)} self-check rows (first row {differs[0]}); "
                    "refused: these arrays or this kernel are not the ones packaged with this model"
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
    worker checks its compiled models with. Returns the manifest's `compiled_engine` section; on any
    difference (or failure) removes what it wrote and raises."""
    written: list[Path] = [folder / SELF_CHECK_FILE, folder / KERNEL_FILE]
    try:
        compile_kernel(folder / KERNEL_FILE)
        exported = {name: export_trees(model, name) for name, model in r_models.items()}
        model_files = {}
        for name, trees in exported.items():
            path = folder / f"{name}{MODEL_SUFFIX}"
            written.append(path)
            quickscorer_model(trees, name).save(path)
            model_files[name] = path.name
            log.info("%s: %d trees exported to %s", name, len(trees.tree_sizes), path.name)
        every_feature = sorted({f for names in features.values() for f in names})
        rows = parity_rows(list(exported.values()), every_feature)
        check_parity(folder, model_files, r_models, features, rows)
        return {
            "library": f"QuickScorer ({KERNEL_SOURCE.name}, {compiler_version()})",
            "kernel": KERNEL_FILE,
            "platform": engine_platform(),
            "models": model_files,
            "parity_rows_checked": len(rows),
            "self_check": write_self_check(folder, r_models, features, rows),
        }
    except Exception:
        for path in written:
            path.unlink(missing_ok=True)
        raise


MODEL_SUFFIX = ".qs.npz"
# No -ffast-math or -march: the sums stay in gbm's order and IEEE double, on any x86-64 node.
GCC_FLAGS = ["-O3", "-fopenmp", "-fPIC", "-shared", "-ffp-contract=off"]


def compiler_version() -> str:
    return subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True, check=True).stdout.strip()


def compile_kernel(kernel: Path) -> None:
    """The QuickScorer kernel, built by gcc into `kernel`."""
    built = subprocess.run(["gcc", *GCC_FLAGS, str(KERNEL_SOURCE), "-o", str(kernel)], capture_output=True, text=True)
    if built.returncode:
        raise ModelPackageError(f"{KERNEL_SOURCE}: gcc could not build the compiled engine: {built.stderr[-600:]}")


def check_parity(
    folder: Path, model_files: dict[str, str], r_models: dict, features: dict[str, list[str]], rows: pd.DataFrame
) -> None:
    """The parity gate: every compiled model (name -> its arrays file in `folder`) predicts `rows` exactly
    as R does, every bit."""
    from retail_scoring import rsession

    r_predict = rsession.r_eval(R_PREDICT_GBM)
    for name, model_file in model_files.items():
        columns = {feature: rows[feature].to_numpy() for feature in features[name]}
        expected = rsession.r_vector_to_numpy(r_predict(r_models[name], rsession.numeric_columns_to_r(columns)))
        found = CompiledModel(folder / model_file, name, threads=1).predict(np.column_stack(list(columns.values())))
        differs = differing_rows(expected, found)
        if len(differs):
            row = differs[0]
            raise ModelPackageError(
                f"{name}: the compiled engine differs from R's predict on {len(differs)} of {len(rows)} "
                f"parity rows, first row {row}: R {expected[row]!r}, compiled {found[row]!r}; not packaged"
            )
    log.info("parity gate: %d compiled models equal R's predictions on %d rows, every bit", len(model_files), len(rows))
