"""Benchmark: the full weekly workload (90 products, committed models) through the real DAG on the
local backend. Prints wall seconds, the R predict seconds summed over the scoring tasks, and
wall / (predict seconds / cores): how close orchestration + I/O + features get to pure scoring.

A process's first `dag.test` task also starts Airflow itself (the in-process execution API, the
ORM: ~4-5 s here), which a deployed Airflow has done before any weekly run. So a warm-up run of
2 products for the week before comes first; its seconds are printed, not counted. `--cold`
skips it, to measure a run that pays Airflow's start-up too (as `airflow dags test` does).

With `--engine r compiled` the same run is made with each engine (`--repeats` times, alternating)
and the wall times are printed side by side.

  .venv/bin/python benchmarks/dag_full_workload.py [--products 90] [--model-version gbm-1250x6-v1]
      [--models-dir include/models] [--cold] [--engine auto|r|compiled ...] [--repeats 1]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
LATEST_WEEK = datetime(2026, 11, 23, 6, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=90)
    parser.add_argument("--model-version", default="gbm-1250x6-v1")
    parser.add_argument("--models-dir", type=Path, default=PROJECT / "include" / "models", help="folder of model sets")
    parser.add_argument("--cold", action="store_true", help="no warm-up run: count Airflow's start-up")
    parser.add_argument("--engine", nargs="+", default=["auto"], choices=["auto", "r", "compiled"])
    parser.add_argument("--repeats", type=int, default=1, help="runs per engine, alternating")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    scratch = Path(tempfile.mkdtemp(prefix="dag-bench-"))
    os.environ.update(
        AIRFLOW_HOME=str(PROJECT / ".local" / "airflow-bench"),
        AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        FORECAST_STORAGE_ROOT=f"file://{scratch}/storage",
        FORECAST_LOCAL_POOL_DIR=str(scratch / "pools"),
        FORECAST_MODEL_VERSION=args.model_version,
        FORECAST_POOL_SIZE=str(cores),
        FORECAST_POLL_INTERVAL_S="1",
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "retail_scoring.cli",
            "build-data",
            "--storage",
            os.environ["FORECAST_STORAGE_ROOT"],
            "--products",
            str(args.products),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "retail_scoring.cli",
            "upload-models",
            "--storage",
            os.environ["FORECAST_STORAGE_ROOT"],
            "--source",
            str(args.models_dir / args.model_version),
        ],
        check=True,
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)

    from airflow.dag_processing.dagbag import DagBag

    from retail_scoring.layout import StorageLayout
    from scoring_airflow.planning import storage_run_id

    def weekly_dag():
        # Parsed afresh for each run: a run's conf stays in the parsed DAG's params in this process.
        return DagBag(str(PROJECT / "dags")).dags["weekly_sales_forecast"]

    warm_up_s = None
    if not args.cold:
        started = time.perf_counter()
        warm_up = weekly_dag().test(
            logical_date=LATEST_WEEK - timedelta(weeks=1), run_after=datetime.now(UTC), run_conf={"products": [1, 2]}
        )
        if warm_up.state != "success":
            sys.exit(f"the warm-up run ended {warm_up.state}")
        warm_up_s = time.perf_counter() - started
    layout = StorageLayout(os.environ["FORECAST_STORAGE_ROOT"])
    results: dict[str, list[tuple[float, float, str]]] = {engine: [] for engine in args.engine}
    for repeat in range(args.repeats):
        for index, engine in enumerate(args.engine):
            logical_date = LATEST_WEEK + timedelta(hours=repeat * len(args.engine) + index)  # one run per date
            dag = weekly_dag()
            started = time.perf_counter()
            dag_run = dag.test(
                logical_date=logical_date, run_after=datetime.now(UTC), run_conf={"origin_week": 107, "engine": engine}
            )
            wall = time.perf_counter() - started
            if dag_run.state != "success":
                sys.exit(f"the run with engine {engine} ended {dag_run.state}")
            run_id = storage_run_id(dag_run.dag_id, dag_run.run_id)
            predict_s = sum(summary["predict_s"] for summary in summaries(layout, run_id))
            peak_mb = max(summary["peak_rss_mb"] for summary in summaries(layout, run_id))
            tasks = ", ".join(f"{ti.task_id} {ti.duration:.1f}" for ti in dag_run.get_task_instances())
            results[engine].append((wall, predict_s, tasks))
            print(
                f"engine {engine}, run {repeat + 1}: wall {wall:.1f} s, predict {predict_s:.1f} s, "
                f"worker peak RSS {peak_mb:.0f} MB ({tasks})",
                flush=True,
            )
    if warm_up_s is not None:
        print(f"warm-up run (Airflow start-up + 2 products, not counted): {warm_up_s:.1f} s")
    print(f"products: {args.products}, cores (pool slots): {cores}; wall seconds of the whole DAG run"
          f"{', Airflow start-up included' if args.cold else ''}, min / median")  # fmt: skip
    first = min(wall for wall, _, _ in results[args.engine[0]])
    for engine, runs in results.items():
        walls = [wall for wall, _, _ in runs]
        predict = min(predict_s for _, predict_s, _ in runs)
        print(
            f"  {engine:9s} wall {min(walls):6.1f} / {statistics.median(walls):6.1f}   predict seconds (sum over "
            f"tasks) {predict:6.1f}   wall / (predict / cores) {min(walls) / (predict / cores):5.2f}   "
            f"{args.engine[0]} min / this min {first / min(walls):5.2f}"
        )


def summaries(layout, run_id: str) -> list[dict]:
    from retail_scoring import storage

    folder = f"{layout.run_dir(run_id)}/partitions"
    return [json.loads(storage.read_bytes(f"{folder}/{name}")) for name in storage.list_names(folder)]


if __name__ == "__main__":
    main()
