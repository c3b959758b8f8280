"""Benchmark: this checkout's score_partition.py against an earlier commit's, alternating in one run
(the machine is shared and noisy: compare the ratio of the minimums and medians). Each side runs its
own benchmark script, worker library and committed model set from its own tree.

  .venv/bin/python benchmarks/score_partition_vs.py --baseline <git ref> [--products 45] [--repeats 3]
      [--model-version gbm-1250x6-v1] [--engine r|compiled] [--threads 1]

`--engine compiled` compares the compiled engines of the two commits (each scoring its own committed
package's engine); "R predict" is then the compiled engine's predict time.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
FIGURES = {
    "wall": r"wall ([\d.]+) s",
    "R predict": r"R predict seconds:\s+([\d.]+)",
    "features": r"feature seconds:\s+([\d.]+)",
    "conversion": r"pandas-to-R seconds:\s+([\d.]+)",
    "write": r"write seconds:\s+([\d.]+)",
}


def run(tree: Path, products: int, model_version: str, engine: str, threads: int) -> dict[str, float]:
    """One benchmark run of `tree`'s script with `tree`'s library; its figures."""
    result = subprocess.run(
        [sys.executable, str(tree / "benchmarks" / "score_partition.py"), "--products", str(products),
         "--model-version", model_version, "--models-dir", str(tree / "include" / "models"),
         "--engine", engine, "--threads", str(threads)],
        env={"PYTHONPATH": f"{tree / 'worker_image'}", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {name: float(re.search(pattern, result.stdout)[1]) for name, pattern in FIGURES.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="git ref of the baseline")
    parser.add_argument("--products", type=int, default=45)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-version", default="gbm-1250x6-v1")
    parser.add_argument("--engine", default="r", choices=["r", "compiled"])
    parser.add_argument("--threads", type=int, default=1, help="threads of the compiled engine")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        baseline = Path(scratch) / "baseline"
        subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(baseline), args.baseline],
                       check=True, capture_output=True)  # fmt: skip
        try:
            runs: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
            for repeat in range(args.repeats):
                for side, tree in (("baseline", baseline), ("current", PROJECT)):
                    runs[side].append(run(tree, args.products, args.model_version, args.engine, args.threads))
                    print(
                        f"repeat {repeat + 1} {side:8s}: "
                        + ", ".join(f"{k} {v:.2f}s" for k, v in runs[side][-1].items())
                    )
        finally:
            subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(baseline)], check=False)
    print(
        f"\n{args.products} products of {args.model_version}, engine {args.engine}, {args.repeats} runs each; "
        "min / median seconds"
    )
    print(f"{'figure':12s} {'baseline':>17s} {'current':>17s} {'ratio of min':>13s}")
    for name in FIGURES:
        base = [r[name] for r in runs["baseline"]]
        current = [r[name] for r in runs["current"]]
        print(
            f"{name:12s} {min(base):8.2f} /{statistics.median(base):7.2f} {min(current):8.2f} /"
            f"{statistics.median(current):7.2f} {min(current) / min(base):13.3f}"
        )


if __name__ == "__main__":
    main()
