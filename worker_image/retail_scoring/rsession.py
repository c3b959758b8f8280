"""The embedded R session: conversions between pandas/numpy and R, in one place."""

import os

import numpy as np
import pandas as pd

_STARTING_LD_LIBRARY_PATH = os.environ.get("LD_LIBRARY_PATH")

import rpy2.robjects as ro  # noqa: E402
from rpy2.robjects import pandas2ri  # noqa: E402
from rpy2.robjects.conversion import localconverter  # noqa: E402

# Starting R, rpy2 puts R's library folders first on this process's LD_LIBRARY_PATH. R is loaded by
# now and needs it no more, but a Python started from here (a training worker, a worker CLI) would
# load the system's libpython through it instead of its own: give children the path we started with.
if _STARTING_LD_LIBRARY_PATH is None:
    os.environ.pop("LD_LIBRARY_PATH", None)
else:
    os.environ["LD_LIBRARY_PATH"] = _STARTING_LD_LIBRARY_PATH


def r_eval(code: str) -> ro.RObject:
    return ro.r(code)


def r_to_pandas(value: ro.RObject) -> pd.DataFrame:
    with localconverter(ro.default_converter + pandas2ri.converter):
        return ro.conversion.rpy2py(value)


def numeric_frame_to_r(frame: pd.DataFrame, row_mask: np.ndarray | None = None) -> ro.DataFrame:
    """Build an R data.frame of plain numeric vectors from the frame's rows where `row_mask` is
    true (all rows without it), column by column from numpy buffers: pandas2ri, and numpy2ri with
    its 1-d R arrays, are several times slower for this."""
    selected = slice(None) if row_mask is None else row_mask
    return ro.DataFrame(
        {name: ro.FloatVector(frame[name].to_numpy(dtype="float64")[selected]) for name in frame.columns}
    )


def r_vector_to_numpy(value: ro.RObject) -> np.ndarray:
    return np.asarray(value, dtype="float64")


def package_version(package: str) -> str:
    return str(ro.r(f'as.character(packageVersion("{package}"))')[0])


def r_version() -> str:
    return str(ro.r("R.version.string")[0])
