"""The general package kind `r-script`: the package's own R file defines

    load_models(model_dir)                     called once per task, returns whatever `score` needs
    score(models, history, future, origin)     returns a data.frame: sku, store, week, one column per quantile

and the worker calls `score` once per chunk of stacked products (once per product with
`"per_product": true`). An R error in either names the package, the function, R's message and the
R calls that led to it."""

import time
from pathlib import Path

import pandas as pd

from retail_scoring.data.schema import SERIES_KEY
from retail_scoring.data.tables import first_key
from retail_scoring.errors import ModelPackageError
from retail_scoring.layout import product_label
from retail_scoring.packages.base import ChunkScores, ModelPackage, PackageManifest, ProductInput

# Calls `f(...)`; on an R error returns its message and the calls on the stack when it happened,
# without the frames of this wrapper and R's condition handling.
_CALL_WITH_TRACE = """
function(f, ...) {
  calls <- NULL
  value <- tryCatch(
    withCallingHandlers(f(...), error = function(e) calls <<- sys.calls()),
    error = function(e) e
  )
  if (!inherits(value, "error")) return(list(value = value))
  text <- vapply(calls, function(call) paste(deparse(call, nlines = 1L, width.cutoff = 120L), collapse = " "), "")
  plumbing <- "^(withCallingHandlers|tryCatch|tryCatchList|tryCatchOne|doTryCatch|\\\\.handleSimpleError|h)\\\\("
  inner <- !grepl(plumbing, text)
  list(error = conditionMessage(value), trace = text[inner])
}
"""


class PackageCodeError(ModelPackageError):
    """The package's own R code failed: running again cannot help."""


# The environment package code runs in: R's own, except that `source()` and `sys.source()` read only
# the package's listed files (only those are in its folder), saying so by name for any other, and
# `quit()`/`q()` fail saying what they are instead of ending the worker as if it had succeeded.
# It stops mistakes, not hostile code: `base::quit()` reaches R itself (docs/reliability-and-security.md).
_SOURCE_GUARD = """
function(allowed, where) {
  guard <- new.env(parent = globalenv())
  check <- function(file) {
    if (!(basename(file) %in% allowed) || !file.exists(file))
      stop(sprintf(paste0("%s: the code sources '%s', which is not among the package's files (%s): a package ",
                          "sources only the files its manifest lists"),
                   where, basename(file), paste(allowed, collapse = ", ")), call. = FALSE)
  }
  guard$source <- function(file, local = FALSE, ...) {
    if (isTRUE(local)) local <- parent.frame()
    check(file)
    base::source(file, local = local, ...)
  }
  guard$sys.source <- function(file, ...) {
    check(file)
    base::sys.source(file, ...)
  }
  guard$quit <- guard$q <- function(...) {
    stop(sprintf("%s: the code calls quit(), which would end the worker: a package returns its forecast", where),
         call. = FALSE)
  }
  guard
}
"""


def source_functions(script: Path, names: tuple[str, ...], where: str, files: list[str]) -> dict:
    """Source an R file into its own environment and return the functions `names` it defines; an
    error names `where` (the package) and what is wrong with the script. The code may source
    `files` (the package's own) and no other."""
    from retail_scoring import rsession

    guard = rsession.r_function(_SOURCE_GUARD)(rsession.ro.StrVector(sorted(files)), where)
    try:
        with rsession.running(f"{where}: {script.name}"):
            environment = rsession.r_function(
                "function(path, guard) { e <- new.env(parent = guard); sys.source(path, envir = e); e }"
            )(str(script), guard)
    except Exception as error:  # rpy2's RRuntimeError: the script does not parse or run
        raise PackageCodeError(f"{where}: {script.name} cannot be sourced: {error}") from error
    lookup = rsession.r_function(
        "function(e, name) if (exists(name, envir = e, inherits = FALSE)) get(name, envir = e)"
    )
    functions = {name: lookup(environment, name) for name in names}
    for name, function in functions.items():
        if not rsession.r_function("is.function")(function)[0]:
            raise PackageCodeError(f"{where}: {script.name} does not define the function {name}()")
    return functions


def call_package_function(function, *args, what: str):
    """`function(*args)` in R; on an R error, PackageCodeError saying `what` failed, with R's message
    and the R calls that led to it."""
    from retail_scoring import rsession

    with rsession.running(what):
        result = rsession.r_function(_CALL_WITH_TRACE)(function, *args)
    if "error" not in list(result.names):
        return result.rx2("value")
    trace = "\n".join(f"  {i}: {call}" for i, call in enumerate(result.rx2("trace"), start=1))
    raise PackageCodeError(f"{what} failed: {result.rx2('error')[0]}" + (f"\nR calls:\n{trace}" if trace else ""))


def train_r_package(folder: Path, history: pd.DataFrame) -> dict:
    """Run the package's train.R, `train(history, model_dir)`, which writes its model files into
    the folder; returns what train() returned (shown to the user)."""
    from retail_scoring import rsession

    script = folder / "train.R"
    if not script.is_file():
        raise ModelPackageError(
            f"{script}: not found; a trainable r-script package defines train(history, model_dir) there"
        )
    files = [path.name for path in folder.iterdir() if path.is_file()]
    train = source_functions(script, ("train",), str(folder), files)["train"]
    value = call_package_function(train, rsession.pandas_to_r(history), str(folder), what=f"{script}: train()")
    return {name: list(value.rx2(name)) for name in value.names} if value.names else {}


class RScriptPackage(ModelPackage):
    """A package whose scoring is its own R code."""

    def __init__(self, manifest: PackageManifest, functions: dict, models):
        super().__init__(manifest)
        self._functions = functions
        self._models = models
        self.per_product = bool(manifest.raw.get("per_product", False))

    @classmethod
    def check(cls, manifest: PackageManifest) -> None:
        script = manifest.raw.get("script")
        if not isinstance(script, str) or script not in manifest.files:
            raise ModelPackageError(
                f"{manifest.source}: kind r-script needs `script`: the name of the R file, among the manifest's "
                "files, that defines load_models(model_dir) and score(models, history, future, origin)"
            )
        if not isinstance(manifest.raw.get("per_product", False), bool):
            raise ModelPackageError(f"{manifest.source}: `per_product` must be true or false")

    @classmethod
    def load(
        cls, manifest: PackageManifest, folder: Path, engine: str = "auto", threads: int | None = None
    ) -> "RScriptPackage":
        """Source the script into its own environment and call its load_models once."""
        if engine == "compiled":
            raise ModelPackageError(f"{manifest.source}: kind r-script has no compiled engine; use engine auto or r")
        functions = source_functions(
            folder / manifest.raw["script"],
            ("load_models", "score"),
            f"model package {manifest.version}",
            list(manifest.files),
        )
        models = call_package_function(
            functions["load_models"], str(folder), what=cls._function_name(manifest, "load_models")
        )
        return cls(manifest, functions, models)

    @staticmethod
    def _function_name(manifest: PackageManifest, name: str) -> str:
        return f"model package {manifest.version}: {manifest.raw['script']}: {name}()"

    def score(self, chunk: list[ProductInput], origin: int, timings) -> ChunkScores:
        scores = ChunkScores()
        for group in [[product] for product in chunk] if self.per_product else [chunk]:
            try:
                self._score_group(group, origin, timings, scores)
            except PackageCodeError as error:
                for product in group:
                    scores.failures[product.product] = f"{product_label(product.product)}: {error}"
        return scores

    def _check_size(self, value, group: list[ProductInput]) -> None:
        """What score() returned is a data.frame of at most the rows and columns the group's
        forecast has, checked in R before any of it is converted: a result of a billion rows is
        refused, not copied into the worker."""
        from retail_scoring import rsession

        if not rsession.r_function("is.data.frame")(value)[0]:
            kind = str(rsession.r_function("function(x) class(x)[1]")(value)[0])
            raise PackageCodeError(f"model package {self.version}: score() returned a {kind}, not a data.frame")
        rows, columns = (int(n) for n in rsession.r_function("dim")(value))
        output = self.manifest.output
        series = sum(len(p.plans[list(SERIES_KEY)].drop_duplicates()) for p in group)
        most_rows, most_columns = series * output.horizon, len(SERIES_KEY) + 1 + len(output.columns)  # + week
        if rows > most_rows or columns > most_columns:
            raise PackageCodeError(
                f"model package {self.version}: score() returned {rows} rows x {columns} columns for {series} series "
                f"x {output.horizon} weeks, at most {most_rows} rows x {most_columns} columns; refused before "
                "reading it"
            )

    def _score_group(self, group: list[ProductInput], origin: int, timings, scores: ChunkScores) -> None:
        """One `score` call for the group's products stacked; its rows are split back by series."""
        from retail_scoring import rsession

        horizon = self.manifest.output.horizon
        started = time.perf_counter()
        history = pd.concat([p.history for p in group], ignore_index=True)
        future = pd.concat([p.plans[p.plans["week"].between(origin + 1, origin + horizon)] for p in group])
        arguments = (rsession.pandas_to_r(history), rsession.pandas_to_r(future.reset_index(drop=True)))
        timings.conversion_s += time.perf_counter() - started
        started = time.perf_counter()
        value = call_package_function(
            self._functions["score"], self._models, *arguments, origin, what=self._function_name(self.manifest, "score")
        )
        timings.predict_s += time.perf_counter() - started
        timings.predict_calls += 1
        started = time.perf_counter()
        self._check_size(value, group)
        result = rsession.r_to_pandas(value).reset_index(drop=True)
        timings.conversion_s += time.perf_counter() - started
        if not set(SERIES_KEY) <= set(result.columns):
            for product in group:  # the whole result is unusable: the worker's check names the columns
                scores.forecasts[product.product] = result
            return
        owner = pd.concat(
            [p.plans[list(SERIES_KEY)].drop_duplicates().assign(product=p.product) for p in group], ignore_index=True
        )
        owned = result.merge(owner, on=list(SERIES_KEY), how="left", validate="many_to_one")
        unknown = owned["product"].isna()
        if unknown.any():
            raise PackageCodeError(
                f"model package {self.version}: score() returned {int(unknown.sum())} rows of series it was not "
                f"given, first {first_key(owned, unknown, SERIES_KEY)}"
            )
        for product in group:
            rows = owned["product"] == product.product
            scores.forecasts[product.product] = result[rows.to_numpy()].reset_index(drop=True)
