"""Benchmark: how the DAG's own tasks and a worker scale with the number of products.

For each N (default 90, 900, 9,000) builds N products (replicas of the reference data, from the
first `--stores` stores each, so that 9,000 fit this machine's disk and time), a tiny gbm model
set (35 models, 20 trees of depth 3), and runs the real DAG on the local backend (pool of 2).
Prints per-task seconds, plan + collect_logs + validate + publish + report together, and the peak
memory of the process that ran the DAG's tasks. With `--baseline REF` the same runs are made with
that commit's code too, alternating, in one run (the baseline skips N above `--baseline-max`:
its report task holds every forecast in memory). `--worker-products` also scores one partition
of that many products in one worker process and prints its peak memory. Ends with a projection
for 100,000 products on Azure Batch from the measured costs.

`--keep DIR` keeps the last measured run (storage and Airflow's database); `--rerun DIR` runs
that DAG run again, as a manual rerun does (every partition is already valid, so nothing is
scored; plan, collect_logs, validate, publish and report run in full), with this tree's code and,
alternating, `--baseline`'s: the light tasks of 100,000 products, timed in minutes, not an hour.

  .venv/bin/python benchmarks/scale.py [--products 90 900 9000] [--stores 2] [--baseline REF]
      [--baseline-max 900] [--worker-products 2000] [--keep DIR]
  .venv/bin/python benchmarks/scale.py --rerun DIR [--baseline REF] [--repeats 3]
"""

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
LATEST_WEEK = datetime(2026, 11, 23, 6, tzinfo=UTC)
LIGHT_TASKS = ("plan", "collect_logs", "validate", "publish", "report")
MODEL_VERSION = "tiny-scale"
RUNS_AFTER = "runs_after.json"  # in a kept run: when its two DAG runs ran, which names them
POOL_SIZE = 2


def child_env(tree: Path, scratch: Path) -> dict[str, str]:
    """The environment a run of `tree`'s code gets: its DAG, plugins and worker library."""
    return {
        **os.environ,
        "PYTHONPATH": f"{tree / 'plugins'}:{tree / 'worker_image'}",
        "AIRFLOW_HOME": str(scratch / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tree / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "FORECAST_STORAGE_ROOT": f"file://{scratch}/storage",
        "FORECAST_LOCAL_POOL_DIR": str(scratch / "pools"),
        "FORECAST_MODEL_VERSION": MODEL_VERSION,
        "FORECAST_POOL_SIZE": str(POOL_SIZE),
        "FORECAST_POLL_INTERVAL_S": "1",
    }


def prepare(tree: Path, scratch: Path, data: Path, models: Path) -> dict[str, str]:
    """A storage root sharing the built data, with the model set uploaded and Airflow's database."""
    env = child_env(tree, scratch)
    (scratch / "storage").mkdir(parents=True)
    (scratch / "storage" / "data").symlink_to(data)
    worker = [sys.executable, "-m", "retail_scoring.cli"]
    storage = env["FORECAST_STORAGE_ROOT"]
    subprocess.run([*worker, "upload-models", "--storage", storage, "--source", str(models)], env=env, check=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    return env


def run_dag_child(runs_after: list[str] | None) -> None:
    """In a fresh process with the tree's environment: a 2-product warm-up run (Airflow's start-up,
    not counted), then the measured run; prints one JSON line. `runs_after` (the two runs' times
    as a kept run recorded them) makes them the same DAG runs again, so nothing is scored again."""
    warm_up_after, measured_after = (
        [datetime.fromisoformat(when) for when in runs_after] if runs_after else [datetime.now(UTC), None]
    )
    from airflow.dag_processing.dagbag import DagBag

    def weekly_dag():
        return DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["weekly_sales_forecast"]

    warm_up = weekly_dag().test(
        logical_date=LATEST_WEEK - timedelta(weeks=1), run_after=warm_up_after, run_conf={"products": [1, 2]}
    )
    if warm_up.state != "success":
        sys.exit(f"the warm-up run ended {warm_up.state}")
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    measured_after = measured_after or datetime.now(UTC)
    dag_run = weekly_dag().test(logical_date=LATEST_WEEK, run_after=measured_after)
    wall = time.perf_counter() - started
    if dag_run.state != "success":
        sys.exit(f"the run ended {dag_run.state}")
    tasks = {ti.task_id: ti.duration for ti in dag_run.get_task_instances()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs_after = [warm_up_after.isoformat(), measured_after.isoformat()]
    print(json.dumps({"wall_s": wall, "tasks": tasks, "rss_before_mb": rss_before_mb, "peak_rss_mb": peak_mb,
                      "runs_after": runs_after}))  # fmt: skip


def run_worker_child(products: int) -> None:
    """One worker process scoring a partition of `products`; prints its peak memory as JSON."""
    storage = os.environ["FORECAST_STORAGE_ROOT"]
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "retail_scoring.cli", "score", "--storage", storage, "--run-id", "worker-bench",
         "--products", ",".join(map(str, range(1, products + 1))), "--origin", "107", "--model-version", MODEL_VERSION],
        check=True, capture_output=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"products": products, "wall_s": wall, "peak_rss_mb": peak_mb}))


def measure(tree: Path, data: Path, models: Path, mode: list[str], keep: Path | None = None) -> dict:
    """One measured child run in a scratch storage, removed afterwards unless `keep` names a
    folder to move it to (its runs, summaries and Airflow database, for profiling the light
    tasks again without scoring again)."""
    scratch = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        result = run_child(tree, prepare(tree, scratch, data, models), mode)
        if keep:
            (scratch / RUNS_AFTER).write_text(json.dumps(result["runs_after"]))
        return result
    finally:
        if keep:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.move(scratch, keep)
            (keep / "airflow" / "airflow.cfg").unlink()  # it names the scratch folder; written afresh
        shutil.rmtree(scratch, ignore_errors=True)


def run_child(tree: Path, env: dict[str, str], mode: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, *mode], env=env, capture_output=True, text=True)
    if result.returncode:
        output = result.stdout[-6000:] + result.stderr[-3000:]
        sys.exit(f"{tree}: the measured run failed (exit {result.returncode}):\n{output}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def build(products: int, stores: int, cache: Path) -> tuple[Path, Path]:
    """The products' data folder and the tiny model set, built once with this checkout's code."""
    from retail_scoring.data.dataset import load_orange_juice, prepare_reference_series, write_products
    from retail_scoring.layout import StorageLayout
    from retail_scoring.packages.gbm.train import Hyperparameters, train_model_set

    reference = prepare_reference_series(load_orange_juice())
    reference = reference[reference["store"] <= stores].reset_index(drop=True)
    models = cache / "models" / MODEL_VERSION
    if not models.exists():
        history = reference[reference["week"] <= reference["week"].max() - 13]
        train_model_set(history, models, MODEL_VERSION, Hyperparameters(n_trees=20, interaction_depth=3))
    root = cache / f"data-{products}x{stores}"
    if not (root / "data" / "catalogue.parquet").exists():
        write_products(StorageLayout(f"file://{root}"), reference, products)
    return root / "data", models


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, nargs="+", default=[90, 900, 9000])
    parser.add_argument("--stores", type=int, default=2, help="stores per product (11 SKUs each)")
    parser.add_argument("--baseline", help="git ref to compare with, run alternately")
    parser.add_argument("--baseline-max", type=int, default=900, help="largest N the baseline runs")
    parser.add_argument("--worker-products", type=int, default=2000, help="0: no worker measurement")
    parser.add_argument("--gbm-seconds-per-product", type=float, default=1.45,
                        help="for the projection: one product's scoring with gbm-1250x6-v1 "
                        "(benchmarks/score_partition.py, 45 products: 65.5 s)")  # fmt: skip
    parser.add_argument("--cache", type=Path, default=PROJECT / ".local" / "scale-bench")
    parser.add_argument("--keep", type=Path, help="keep the current tree's last measured run's storage here")
    parser.add_argument("--rerun", type=Path, help="a run kept by --keep: its light tasks again, nothing scored")
    parser.add_argument("--repeats", type=int, default=3, help="--rerun: runs per tree, alternating")
    parser.add_argument("--child", choices=["dag", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--child-products", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--runs-after", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "dag":
        return run_dag_child(args.runs_after)
    if args.child == "worker":
        return run_worker_child(args.child_products)

    trees = {"current": PROJECT}
    scratch = Path(tempfile.mkdtemp(prefix="scale-baseline-"))
    if args.baseline:
        trees = {"baseline": scratch / "baseline", **trees}
        subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(trees["baseline"]),
                        args.baseline], check=True, capture_output=True)  # fmt: skip
    results: dict[tuple[str, int], dict] = {}
    try:
        if args.rerun:
            return rerun(trees, args.rerun.resolve(), args.repeats)
        for products in args.products:
            data, models = build(products, args.stores, args.cache)
            for side, tree in trees.items():
                if side == "baseline" and products > args.baseline_max:
                    continue
                keep = args.keep if side == "current" else None
                results[(side, products)] = result = measure(tree, data, models, ["--child", "dag"], keep)
                light = sum(result["tasks"][task] for task in LIGHT_TASKS)
                score_s = result["tasks"]["score"]
                print(f"{side:8s} N={products:6d}: light tasks {light:6.2f} s, score {score_s:7.1f} s, "
                      f"peak {result['peak_rss_mb']:6.0f} MB", flush=True)  # fmt: skip
        worker = {}
        if args.worker_products:
            data, models = build(max(*args.products, args.worker_products), args.stores, args.cache)
            for side, tree in trees.items():
                worker[side] = measure(
                    tree, data, models, ["--child", "worker", "--child-products", str(args.worker_products)]
                )
    finally:
        if args.baseline:
            subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(trees["baseline"])],
                           check=False)  # fmt: skip
        shutil.rmtree(scratch, ignore_errors=True)
    report(results, worker, args)


def rerun(trees: dict[str, Path], kept: Path, repeats: int) -> None:
    """The kept DAG run again with each tree's code, alternating; min and median of each light task."""
    runs: dict[str, list[dict]] = {side: [] for side in trees}
    mode = ["--child", "dag", "--runs-after", *json.loads((kept / RUNS_AFTER).read_text())]
    for _ in range(repeats):
        for side, tree in trees.items():
            runs[side].append(result := run_child(tree, child_env(tree, kept), mode))
            light = sum(result["tasks"][task] for task in LIGHT_TASKS)
            print(f"{side:8s}: light tasks {light:6.2f} s, peak {result['peak_rss_mb']:6.0f} MB", flush=True)
    print(f"\nthe run kept in {kept} run again ({repeats} times per side, alternating); seconds, min / median")
    print(f"{'side':8s} " + " ".join(f"{t:>15s}" for t in (*LIGHT_TASKS, "light sum")) + f" {'peak RSS MB':>15s}")
    for side, results in runs.items():
        columns = [[r["tasks"][task] for r in results] for task in LIGHT_TASKS]
        columns.append([sum(r["tasks"][task] for task in LIGHT_TASKS) for r in results])
        peaks = [r["peak_rss_mb"] for r in results]
        print(f"{side:8s} " + " ".join(f"{min(c):7.2f} /{statistics.median(c):6.2f}" for c in columns)
              + f" {min(peaks):7.0f} /{statistics.median(peaks):6.0f}")  # fmt: skip


def report(results: dict[tuple[str, int], dict], worker: dict[str, dict], args: argparse.Namespace) -> None:
    print(f"\nlocal backend, pool of {POOL_SIZE}, tiny gbm set, {args.stores} stores x 11 SKUs per product; seconds")
    header = f"{'side':8s} {'N':>6s} " + " ".join(f"{t:>12s}" for t in (*LIGHT_TASKS, "light sum", "score"))
    print(header + f" {'peak RSS MB':>12s} {'RSS before':>11s}")
    for (side, products), result in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        tasks = result["tasks"]
        light = sum(tasks[task] for task in LIGHT_TASKS)
        print(
            f"{side:8s} {products:6d} " + " ".join(f"{tasks[t]:12.2f}" for t in LIGHT_TASKS)
            + f" {light:12.2f} {tasks['score']:12.1f} {result['peak_rss_mb']:12.0f} {result['rss_before_mb']:11.0f}"
        )  # fmt: skip
    for side, figures in worker.items():
        print(f"worker ({side}): {figures['products']} products in one partition: {figures['wall_s']:.1f} s, "
              f"peak RSS {figures['peak_rss_mb']:.0f} MB")  # fmt: skip
    largest = max(n for side, n in results if side == "current")
    current = results[("current", largest)]
    per_product_s = current["tasks"]["score"] * POOL_SIZE / largest
    partitions = math.ceil(100_000 / 200)
    node_hours = 100_000 * args.gbm_seconds_per_product / 3600
    print(
        f"\nprojection, 100,000 products on Azure Batch: {partitions} partitions of 200 products; scoring with "
        f"gbm-1250x6-v1 at {args.gbm_seconds_per_product} s per product = {node_hours:.1f} task-hours (on 50 "
        f"Standard_D2s_v3 nodes with 2 slots: {node_hours / 100 * 60:.0f} min, ~{node_hours / 2 * 0.096:.2f} USD); "
        f"the tiny set measured {per_product_s * 1000:.0f} ms per product and slot here (reading, features, checks, "
        f"writes: the floor for any model). Airflow's own tasks read {partitions} summaries and one listing."
    )


if __name__ == "__main__":
    main()
