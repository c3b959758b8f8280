"""The worker CLI: what a scoring task runs, locally or in the worker image on a Batch node.

Exit codes: 0 done, 2 bad input or model package (message names the culprit), 3 storage unavailable,
1 anything else.
"""

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pandas as pd

from retail_scoring import containment, storage
from retail_scoring.errors import (
    EXIT_BAD_INPUT,
    EXIT_STORAGE_UNAVAILABLE,
    ScoringError,
    StorageUnavailableError,
    UsageError,
)
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import ENGINES
from retail_scoring.run.contract import RunManifest, ScenarioRunManifest

log = logging.getLogger("retail_scoring")


def _int_list(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item]


THROUGH_WEEK_HELP = "train on the history through this week only (for backtests at later origins); default: all of it"


def training_history(history: pd.DataFrame, through_week: int | None) -> pd.DataFrame:
    """The history a package is trained on: through `through_week` when given, so its forecasts
    at later origins are out of sample; the manifest records the weeks it covers."""
    if through_week is None:
        return history
    kept = history[history["week"] <= through_week]
    if kept.empty:
        raise UsageError(f"--through-week {through_week}: the history starts at week {int(history['week'].min())}")
    return kept


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retail-scoring", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser(
        "score",
        help="score one partition of a planned run (--partition: products, origin and model package from the run "
        "manifest), or given products outside a run",
    )
    score.add_argument("--storage", required=True, help="storage root URL (file:///..., abfs://container)")
    score.add_argument("--run-id", required=True, help="the run's id: where its forecasts are written")
    score.add_argument("--partition", help="a partition of the run's manifest; its summary goes to partitions/")
    score.add_argument("--products", type=_int_list, help="without --partition: comma-separated product numbers")
    score.add_argument("--origin", type=int, help="without --partition: the last week of visible history")
    score.add_argument("--model-version", help="without --partition: the model package")
    score.add_argument("--engine", choices=ENGINES, help="without --partition: auto (default), r or compiled")

    score_scenario = commands.add_parser(
        "score-scenario", help="score one partition of a planned scenario run: its shards, from the run manifest"
    )
    score_scenario.add_argument("--storage", required=True, help="storage root URL (file:///..., abfs://container)")
    score_scenario.add_argument("--run-id", required=True)
    score_scenario.add_argument("--partition", required=True, help="a partition of the run's manifest")

    catalogue = commands.add_parser(
        "catalogue", help="write the product catalogue plans read, after product data was written by others"
    )
    catalogue.add_argument("--storage", required=True)

    build = commands.add_parser("build-data", help="write the reference dataset to storage")
    build.add_argument("--storage", required=True)
    build.add_argument("--products", type=int, default=90, help="number of products of 11 SKUs")

    ingest = commands.add_parser(
        "ingest-week", help="land the next held-back week of sales into the history (the demo's nightly ingest)"
    )
    ingest.add_argument("--storage", required=True)

    train = commands.add_parser("train", help="train a model package on one product's history")
    train.add_argument("--storage", required=True, help="storage root holding the data")
    train.add_argument("--product", type=int, default=1)
    train.add_argument("--output", required=True, type=Path, help="local folder for the model package")
    train.add_argument("--model-version", required=True)
    train.add_argument("--n-trees", type=int, default=1250)
    train.add_argument("--interaction-depth", type=int, default=20)
    train.add_argument("--shrinkage", type=float, default=0.05)
    train.add_argument("--n-minobsinnode", type=int, default=10)
    train.add_argument("--jobs", type=int, default=1, help="models fitted at once, one core each")
    train.add_argument(
        "--stores", type=int, help="train on the first N stores only (quick reference-size sets for benchmarks)"
    )
    train.add_argument("--through-week", type=int, help=THROUGH_WEEK_HELP)

    package = commands.add_parser(
        "package", help="fill in a model package's file checksums in its manifest and check the manifest"
    )
    package.add_argument("--source", required=True, type=Path, help="the package folder (manifest.json + files)")
    package.add_argument(
        "--compile",
        action="store_true",
        help="gbm packages: also compile the models (QuickScorer arrays, a gcc-built kernel) and keep the engine "
        "if it passes the parity gate",
    )

    train_package = commands.add_parser(
        "train-package", help="train an r-script package with its train.R on one product's history, then seal it"
    )
    train_package.add_argument("--storage", required=True, help="storage root holding the data")
    train_package.add_argument("--product", type=int, default=1)
    train_package.add_argument("--source", required=True, type=Path, help="the package folder")
    train_package.add_argument("--through-week", type=int, help=THROUGH_WEEK_HELP)

    upload = commands.add_parser(
        "upload-package", aliases=["upload-models"], help="copy a local model package folder to storage"
    )
    upload.set_defaults(command="upload-package")
    upload.add_argument("--storage", required=True)
    upload.add_argument("--source", required=True, type=Path)
    upload.add_argument("--replace", action="store_true", help="replace a stored version that has other content")
    return parser


def run(args: argparse.Namespace) -> None:
    if args.command == "package":
        from retail_scoring.packages.base import seal_package
        from retail_scoring.packages.gbm.kind import compile_package, remove_compiled_engine

        if args.compile:
            remove_compiled_engine(args.source)  # compiled afresh, whichever release compiled it
        manifest = seal_package(args.source)
        if args.compile:
            compile_package(args.source, manifest)
            manifest = seal_package(args.source)
        print(f"{manifest.source}: {manifest.kind} package {manifest.version}, {len(manifest.files)} files sealed")
        return
    layout = StorageLayout(args.storage)
    if args.command == "score":
        score(layout, args)
    elif args.command == "score-scenario":
        score_scenario(layout, args.run_id, args.partition)
    elif args.command == "catalogue":
        from retail_scoring.data.catalogue import build_catalogue

        print(f"{layout.catalogue()}: {build_catalogue(layout)} products")
    elif args.command == "build-data":
        from retail_scoring.data.dataset import build_dataset

        build_dataset(layout, args.products)
    elif args.command == "ingest-week":
        from retail_scoring.data.dataset import ingest_next_week

        print(f"sales of week {ingest_next_week(layout)} landed")
    elif args.command == "train":
        from retail_scoring.data.tables import read_product_table
        from retail_scoring.packages.gbm.train import Hyperparameters, train_model_set

        params = Hyperparameters(args.n_trees, args.interaction_depth, args.shrinkage, args.n_minobsinnode)
        history = training_history(read_product_table(layout, args.product, "history"), args.through_week)
        if args.stores:
            history = history[history["store"].isin(sorted(history["store"].unique())[: args.stores])]
        train_model_set(history, args.output, args.model_version, params, args.jobs)
    elif args.command == "train-package":
        from retail_scoring.data.tables import read_product_table
        from retail_scoring.packages.base import seal_package
        from retail_scoring.packages.rscript import train_r_package

        history = training_history(read_product_table(layout, args.product, "history"), args.through_week)
        trained = train_r_package(args.source, history)
        manifest = seal_package(args.source, (int(history["week"].min()), int(history["week"].max())))
        print(f"{manifest.source}: trained ({trained}) and sealed, {len(manifest.files)} files")
    elif args.command == "upload-package":
        from retail_scoring.packages.base import upload_package

        upload_package(args.source, layout, replace=args.replace)


def score(layout: StorageLayout, args: argparse.Namespace) -> None:
    """Score a partition of a planned run as its manifest says (and write its summary), or the
    products given on the command line."""
    from retail_scoring.run.scoring import ScoringJob, score_partition

    if args.partition is None:
        missing = [f"--{name}" for name in ("products", "origin", "model_version") if getattr(args, name) is None]
        if missing:
            raise UsageError(f"score without --partition needs {', '.join(m.replace('_', '-') for m in missing)}")
        engine = args.engine or "auto"
        score_partition(ScoringJob(layout, args.products, args.origin, args.model_version, args.run_id, engine=engine))
        return
    manifest = read_run_manifest(layout, args.run_id)
    plan = manifest.plan
    if args.partition not in manifest.partitions:
        raise UsageError(f"{layout.run_manifest(args.run_id)}: the run has no partition {args.partition}")
    products = manifest.partitions[args.partition]
    calibrated = plan.calibration_url is not None
    storage.allow_writes_only(layout.scoring_task_writes(args.run_id, args.partition, products, calibrated))
    job = ScoringJob.for_partition(layout, args.run_id, manifest, args.partition)
    with containment.MemoryWatch(
        plan.worker_memory_mb, f"run {args.run_id}, {args.partition}, model package {plan.model_version}"
    ):
        score_partition(job, progress_reporter(layout, args.run_id, args.partition))


def score_scenario(layout: StorageLayout, run_id: str, partition: str) -> None:
    """Score a partition of a planned scenario run, writing only what the layout gives its task."""
    from retail_scoring.scenarios.task import score_scenario_partition

    manifest = read_run_manifest(layout, run_id, ScenarioRunManifest)
    if partition not in manifest.partitions:
        raise UsageError(f"{layout.run_manifest(run_id)}: the run has no partition {partition}")
    storage.allow_writes_only(layout.scenario_task_writes(run_id, partition, manifest.partitions[partition]))
    plan = manifest.plan
    with containment.MemoryWatch(
        plan.worker_memory_mb, f"run {run_id}, {partition}, model package {plan.model_version}"
    ):
        score_scenario_partition(layout, manifest, partition, progress_reporter(layout, run_id, partition))


def progress_reporter(layout: StorageLayout, run_id: str, partition: str) -> Callable[[int, int], None]:
    def report_progress(done: int, total: int) -> None:
        """The run's progress file for this partition, which the scoring job's waiter reads."""
        url = layout.task_progress(run_id, partition)
        storage.write_bytes_atomic(url, json.dumps({"done": done, "total": total}).encode())

    return report_progress


Manifest = TypeVar("Manifest", RunManifest, ScenarioRunManifest)


def read_run_manifest(layout: StorageLayout, run_id: str, kind: type[Manifest] = RunManifest) -> Manifest:
    url = layout.run_manifest(run_id)
    try:  # read, not exists() first: adlfs' exists() answers False when storage does not answer
        return kind.from_json(storage.read_bytes(url), url)
    except FileNotFoundError as error:
        raise UsageError(f"{url}: no run manifest; plan the run first") from error


def _exit_on_terminate(signum: int, _frame) -> None:
    """A terminated worker (timeout, teardown, a container stopped) exits through its cleanup:
    Python's default for SIGTERM skips every `finally`, leaving the package copy behind."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for chatty in ("rpy2", "azure"):  # rpy2's start-up lines, the Azure SDK's per-request lines
        logging.getLogger(chatty).setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    containment.contain_processes()
    try:
        run(args)
    except StorageUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_STORAGE_UNAVAILABLE
    except OSError as error:
        if error.errno not in storage.UNAVAILABLE_ERRNOS:
            raise
        print(f"error: {error.filename or 'local disk'}: storage unavailable ({error.strerror})", file=sys.stderr)
        return EXIT_STORAGE_UNAVAILABLE
    except ScoringError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if left := containment.end_children():
            log.warning("ended %d processes the worker's R code left running: %s", len(left), ", ".join(left))
    return 0


if __name__ == "__main__":
    sys.exit(main())
