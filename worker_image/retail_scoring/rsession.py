"""The embedded R session: conversions between pandas/numpy and R, in one place, and what
happens when R code asks R to quit."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_STARTING_LD_LIBRARY_PATH = os.environ.get("LD_LIBRARY_PATH")
# R collects garbage whenever its heap must grow, and with a model package's ~2 million tree nodes in
# memory every collection is long. Starting R with a larger heap (its own startup variables; the
# environment can still set them) skips most collections: model load 1.4 -> 1.05 s, pandas-to-R
# 0.19 -> 0.04 s for 10 products. Memory is only taken as used.
os.environ.setdefault("R_VSIZE", "512M")
os.environ.setdefault("R_NSIZE", "4M")

import rpy2.robjects as ro  # noqa: E402
from rpy2.rinterface_lib import callbacks  # noqa: E402
from rpy2.robjects import pandas2ri  # noqa: E402
from rpy2.robjects.conversion import localconverter  # noqa: E402

from retail_scoring.containment import end_children  # noqa: E402
from retail_scoring.errors import EXIT_BAD_INPUT  # noqa: E402

# Starting R, rpy2 puts R's library folders first on this process's LD_LIBRARY_PATH. R is loaded by
# now and needs it no more, but a Python started from here (a training worker, a worker CLI) would
# load the system's libpython through it instead of its own: give children the path we started with.
if _STARTING_LD_LIBRARY_PATH is None:
    os.environ.pop("LD_LIBRARY_PATH", None)
else:
    os.environ["LD_LIBRARY_PATH"] = _STARTING_LD_LIBRARY_PATH


_running = ["the worker's own R code"]  # what R is running now, for the message below


@contextmanager
def running(what: str) -> Iterator[None]:
    """R runs `what` (a package's function) until the block ends."""
    _running.append(what)
    try:
        yield
    finally:
        _running.pop()


def _refuse_quit(save: str, status: int, run_last: int) -> None:
    """R's cleanup hook: R code called quit() past the package guard (`base::quit`). After this
    hook R exits with status 0 whatever the code asked, which would end the task as a success."""
    end_children()
    print(
        f"error: {_running[-1]}: called quit(status = {status}), which ends R and the worker with it: a package "
        "returns its forecast; the task stopped",
        file=sys.stderr,
        flush=True,
    )
    os._exit(EXIT_BAD_INPUT)


callbacks.cleanup = _refuse_quit


def r_eval(code: str) -> ro.RObject:
    return ro.r(code)


@cache
def r_function(code: str) -> ro.RObject:
    """An R function defined by `code`, parsed once per process (when first called)."""
    return ro.r(code)


def r_to_pandas(value: ro.RObject) -> pd.DataFrame:
    with localconverter(ro.default_converter + pandas2ri.converter):
        return ro.conversion.rpy2py(value)


INT32_MAX = 2**31 - 1


def pandas_to_r(frame: pd.DataFrame) -> ro.DataFrame:
    """An R data.frame of a pandas frame, column by column from the numpy buffers: whole numbers
    that fit R's integers become integer vectors, other numbers numeric, anything else character.
    (pandas2ri takes ~2.6 s for one product's history; this ~0.01 s.)"""
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind in "iub" and (not len(values) or np.abs(values).max() <= INT32_MAX):
            columns[name] = ro.IntVector(values.astype(np.int32))
        elif values.dtype.kind in "iufb":
            columns[name] = ro.FloatVector(values.astype(np.float64))
        else:
            columns[name] = ro.StrVector(values.astype(str))
    return ro.DataFrame(columns)


def numeric_columns_to_r(columns: dict[str, np.ndarray]) -> ro.DataFrame:
    """An R data.frame of plain numeric vectors, built from numpy buffers: pandas2ri, and numpy2ri
    with its 1-d R arrays, are several times slower for this."""
    return ro.DataFrame({name: ro.FloatVector(np.asarray(values, dtype="float64")) for name, values in columns.items()})


# Builds an R vector from its filled values: NA where `missing` (1-based), then the declared class:
# a factor over `levels`, a Date, or the plain vector.
_DECLARED_VECTOR = """
function(values, missing, levels, kind) {
  values[missing] <- NA
  if (kind == "categorical") return(structure(values, levels = levels, class = "factor"))
  if (kind == "date") return(structure(values, class = "Date"))
  values
}
"""


def declared_table_to_r(table: pa.Table, types: dict[str, tuple[str, tuple[str, ...] | None]]) -> ro.DataFrame:
    """An R data.frame of an Arrow table as its scenario declares it (column -> type, levels):
    integers as integer vectors (numeric past R's integer range), numbers numeric, strings
    character, categoricals factors with exactly the declared levels, booleans logical, dates Date,
    and NA for every null. Column by column from the Arrow buffers."""
    columns = {}
    for name, (kind, levels) in types.items():
        values = table[name]
        missing = ro.IntVector(np.flatnonzero(values.is_null().to_numpy()) + 1)
        if kind == "categorical":
            codes = pc.index_in(values, value_set=pa.array(levels, pa.string())).fill_null(-1).to_numpy() + 1
            vector = ro.IntVector(codes.astype(np.int32))
        elif kind == "date":
            vector = ro.FloatVector(
                values.cast(pa.date32()).cast(pa.int32()).fill_null(0).to_numpy().astype(np.float64)
            )
        elif kind == "integer" and _fits_r_integer(values):
            vector = ro.IntVector(values.fill_null(0).to_numpy().astype(np.int32))
        elif kind in ("integer", "number"):
            vector = ro.FloatVector(values.cast(pa.float64()).fill_null(0).to_numpy())
        elif kind == "boolean":
            vector = ro.BoolVector(values.fill_null(False).to_numpy())
        else:
            vector = ro.StrVector(values.fill_null("").to_numpy().astype(str))
        columns[name] = r_function(_DECLARED_VECTOR)(vector, missing, ro.StrVector(levels or ()), kind)
    return ro.DataFrame(columns)


def _fits_r_integer(values: pa.ChunkedArray) -> bool:
    """R's integers are 32-bit and use the smallest one for NA."""
    bounds = pc.min_max(values).as_py()
    return bounds["min"] is None or (-INT32_MAX <= bounds["min"] and bounds["max"] <= INT32_MAX)


# An R data.frame's columns as plain vectors with their NAs apart: factors as their labels, Dates
# as days since 1970-01-01, so that each converts from its buffer.
_PLAIN_COLUMNS = """
function(frame, names) lapply(frame[names], function(x) {
  kind <- if (is.factor(x)) "string" else if (inherits(x, "Date")) "date" else typeof(x)
  plain <- if (is.factor(x)) as.character(x) else if (kind == "date") as.double(unclass(x)) else as.vector(x)
  missing <- is.na(plain)
  plain[missing] <- if (is.character(plain)) "" else 0
  list(kind = kind, values = plain, missing = missing)
})
"""
_ARROW_OF_R = {
    "double": pa.float64(),
    "integer": pa.int32(),
    "logical": pa.bool_(),
    "character": pa.string(),
    "string": pa.string(),
    "date": pa.date32(),
}


def r_columns_to_arrow(frame: ro.RObject, names: list[str]) -> dict[str, pa.Array]:
    """The columns `names` of an R data.frame as Arrow arrays, NA as null; a column of another R
    type (a list, a complex number) as None, for the caller to refuse naming it."""
    arrays = {}
    for name, column in zip(names, r_function(_PLAIN_COLUMNS)(frame, ro.StrVector(names)), strict=True):
        kind = str(column.rx2("kind")[0])
        if kind not in _ARROW_OF_R:
            arrays[name] = None
            continue
        missing = np.array(column.rx2("missing"), dtype=bool)
        values = np.array(column.rx2("values"), dtype=object if kind in ("character", "string") else None)
        if kind == "date":
            values = values.astype("int32")
        elif kind == "logical":
            values = values.astype(bool)
        arrays[name] = pa.array(values, type=_ARROW_OF_R[kind], mask=missing)
    return arrays


def r_vector_to_numpy(value: ro.RObject) -> np.ndarray:
    """A copy: a view of the R vector's memory outlives its protection, and R's garbage collector
    reuses it (kept predictions of a first model came back as another's numbers)."""
    return np.array(value, dtype="float64", copy=True)


def installed_packages(packages) -> dict[str, str]:
    """Version of each of `packages` this R can load (loading its namespace), for those it can."""
    names = sorted(packages)
    if not names:
        return {}
    versions = ro.r(
        "function(p) vapply(p, function(x) if (suppressWarnings(requireNamespace(x, quietly = TRUE)))"
        " as.character(packageVersion(x)) else NA_character_, '')"
    )(ro.StrVector(names))
    return {name: str(version) for name, version in zip(names, versions, strict=True) if version is not ro.NA_Character}


def package_version(package: str) -> str:
    return str(ro.r(f'as.character(packageVersion("{package}"))')[0])


def r_version() -> str:
    return str(ro.r("R.version.string")[0])
