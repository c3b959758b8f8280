"""Benchmark: score one partition of N products with a committed model package and print where the
time goes. Seeds a scratch storage first (data + package), so it runs on a fresh checkout.

With one `--engine` it prints that run's breakdown (the format score_partition_vs.py reads); with
several (`--engine r compiled`) it scores the same partition with each, alternating `--repeats`
times in one run, and prints them side by side (min / median) with the ratio to the first.
`--threads` is the compiled engine's (1: the one-thread comparison).

  .venv/bin/python benchmarks/score_partition.py [--products 10] [--model-version gbm-1250x6-v1]
      [--models-dir include/models] [--engine r [compiled]] [--repeats 3] [--threads 1]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from retail_scoring import storage
from retail_scoring.data.dataset import load_orange_juice, prepare_reference_series, write_products
from retail_scoring.layout import StorageLayout
from retail_scoring.packages.base import upload_package
from retail_scoring.run.contract import PartitionSummary
from retail_scoring.run.scoring import ScoringJob, score_partition

MODELS_DIR = Path(__file__).resolve().parents[1] / "include" / "models"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--model-version", default="gbm-1250x6-v1")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="folder holding the model set")
    parser.add_argument("--engine", nargs="+", default=["r"], choices=["auto", "r", "compiled"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="threads of the compiled engine")
    args = parser.parse_args()
    products = list(range(1, args.products + 1))
    runs: dict[str, list[tuple[float, PartitionSummary]]] = {engine: [] for engine in args.engine}
    with tempfile.TemporaryDirectory() as scratch:
        layout = StorageLayout(f"file://{scratch}")
        write_products(layout, prepare_reference_series(load_orange_juice()), args.products)
        upload_package(args.models_dir / args.model_version, layout)
        for repeat in range(args.repeats):
            for engine in args.engine:
                run_id = f"bench-{engine}-{repeat}"
                started = time.perf_counter()
                summary = score_partition(
                    ScoringJob(
                        layout, products, 107, args.model_version, run_id, engine=engine, engine_threads=args.threads
                    )
                )
                runs[engine].append((time.perf_counter() - started, summary))
        identical = all(
            storage.read_bytes(layout.forecast_file(f"bench-{engine}-0", p))
            == storage.read_bytes(layout.forecast_file(f"bench-{args.engine[0]}-0", p))
            for engine in args.engine
            for p in products
        )
    if len(args.engine) == 1:
        print_breakdown(args.products, *runs[args.engine[0]][-1])
    else:
        print_side_by_side(args, runs, identical)


def print_breakdown(products: int, wall: float, timings: PartitionSummary) -> None:
    overhead = timings.features_s + timings.conversion_s + timings.write_s
    print(f"products:                   {products}")
    print(f"model load seconds:         {timings.model_load_s:.3f}")
    print(f"feature seconds:            {timings.features_s:.3f}")
    print(f"pandas-to-R seconds:        {timings.conversion_s:.3f}")
    print(f"R predict seconds:          {timings.predict_s:.3f}")
    print(f"write seconds:              {timings.write_s:.3f}")
    print(f"R predict calls:            {timings.predict_calls}")
    print(f"scoring operations:         {timings.scoring_operations}")
    print(f"scoring operations/second:  {timings.scoring_operations / wall:.0f} (wall {wall:.2f} s)")
    print(f"features+conversion+write:  {100 * overhead / timings.predict_s:.1f}% of R predict time (target < 10%)")
    print("  (for an r-script package, R predict seconds are its own score() calls, feature seconds reading and")
    print("   checking the tables, write seconds checking its results and writing them: the worker's overhead)")


def print_side_by_side(args: argparse.Namespace, runs: dict, identical: bool) -> None:
    figures = {
        "scoring s (all but model load)": lambda wall, s: wall - s.model_load_s,
        "predict s": lambda wall, s: s.predict_s,
        "features s": lambda wall, s: s.features_s,
        "conversion s": lambda wall, s: s.conversion_s,
        "check + write s": lambda wall, s: s.write_s,
        "model load s": lambda wall, s: s.model_load_s,
    }
    first = args.engine[0]
    print(f"\n{args.products} products of {args.model_version}, origin 107, {args.repeats} alternating runs each,")
    print(f"compiled engine threads: {args.threads}; min / median seconds, ratio = {first} min / engine min")
    print(f"{'figure':32s}" + "".join(f"{engine:>20s}{'ratio':>8s}" for engine in args.engine))
    for name, figure in figures.items():
        line = f"{name:32s}"
        base = min(figure(*run) for run in runs[first])
        for engine in args.engine:
            values = [figure(*run) for run in runs[engine]]
            ratio = base / min(values) if min(values) else float("inf")
            line += f"{min(values):10.2f} /{statistics.median(values):7.2f}{ratio:8.2f}"
        print(line)
    print(f"forecast files byte-identical across engines (every product, first run): {identical}")


if __name__ == "__main__":
    main()
