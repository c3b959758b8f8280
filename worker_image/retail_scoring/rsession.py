"""The embedded R session: conversions between pandas/numpy and R, in one place."""

import numpy as np
import pandas as pd
import rpy2.robjects as ro
from rpy2.robjects import numpy2ri, pandas2ri
from rpy2.robjects.conversion import localconverter


def r_eval(code: str) -> ro.RObject:
    return ro.r(code)


def r_to_pandas(value: ro.RObject) -> pd.DataFrame:
    with localconverter(ro.default_converter + pandas2ri.converter):
        return ro.conversion.rpy2py(value)


def numeric_frame_to_r(frame: pd.DataFrame) -> ro.DataFrame:
    """Build an R data.frame column by column from numpy buffers (pandas2ri is slower for this)."""
    with localconverter(ro.default_converter + numpy2ri.converter):
        columns = {
            name: ro.conversion.py2rpy(np.ascontiguousarray(frame[name].to_numpy(dtype="float64")))
            for name in frame.columns
        }
    return ro.DataFrame(columns)


def r_vector_to_numpy(value: ro.RObject) -> np.ndarray:
    return np.asarray(value, dtype="float64")


def package_version(package: str) -> str:
    return str(ro.r(f'as.character(packageVersion("{package}"))')[0])


def r_version() -> str:
    return str(ro.r("R.version.string")[0])
