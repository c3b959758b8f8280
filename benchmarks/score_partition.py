"""Benchmark: score one partition of N products with a committed model package and print where the
time goes. Seeds a scratch storage first (data + package), so it runs on a fresh checkout.

  .venv/bin/python benchmarks/score_partition.py [--products 10] [--model-version gbm-1250x6-v1]
      [--models-dir include/models]
"""

import argparse
import tempfile
import time
from pathlib import Path

from retail_scoring.dataset import load_orange_juice, prepare_reference_series, write_products
from retail_scoring.layout import StorageLayout
from retail_scoring.package import upload_package
from retail_scoring.scoring import score_partition

MODELS_DIR = Path(__file__).resolve().parents[1] / "include" / "models"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--model-version", default="gbm-1250x6-v1")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="folder holding the model set")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        layout = StorageLayout(f"file://{scratch}")
        write_products(layout, prepare_reference_series(load_orange_juice()), args.products)
        upload_package(args.models_dir / args.model_version, layout)
        started = time.perf_counter()
        timings = score_partition(layout, list(range(1, args.products + 1)), 107, args.model_version, "bench")
        wall = time.perf_counter() - started
    overhead = timings.features_s + timings.conversion_s + timings.write_s
    print(f"products:                   {args.products}")
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


if __name__ == "__main__":
    main()
