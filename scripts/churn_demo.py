"""The churn scenario end to end at scale, on this machine: two monthly snapshots of 2,000,000
customers each (modeldata's real mlc_churn, replicated; hive Parquet by state), a base-R glm
champion and a ranger challenger, each run by the scenario's own DAG on the local backend
through dag.test(). Prints each run's state and time, the current result per customer and the
report's side-by-side metrics against the held-out labels.

    source scripts/env.sh && python scripts/churn_demo.py [--customers 2000000] [--pool-size 2]
        [--home .local/churn-demo] [--dags dags]

Everything lives under `--home` (storage, Airflow's database, pools), made afresh. `--dags` is the
DAG folder the scenario DAG is read from (scripts/install_test.sh: one outside this repository)."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SCENARIO_FILE = PROJECT / "include" / "scenarios" / "customer_churn.json"
SNAPSHOTS = (date(2026, 10, 31), date(2026, 11, 30))


def prepare(home: Path, customers: int, pool_size: int) -> str:
    shutil.rmtree(home, ignore_errors=True)
    root = f"file://{home}/storage"
    os.environ.update(
        AIRFLOW_HOME=str(home / "airflow"),
        FORECAST_STORAGE_ROOT=root,
        FORECAST_LOCAL_POOL_DIR=str(home / "pools"),
        FORECAST_POOL_SIZE=str(pool_size),
        FORECAST_POLL_INTERVAL_S="2",
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "scoring_airflow.cli", "create-pools"], check=True, capture_output=True)

    from retail_scoring import storage
    from retail_scoring.layout import StorageLayout
    from retail_scoring.packages.base import upload_package
    from retail_scoring.scenarios import churn_data
    from retail_scoring.scenarios.document import Scenario

    scenario = Scenario.from_json(SCENARIO_FILE.read_bytes(), str(SCENARIO_FILE))
    base = churn_data.load_mlc_churn()
    for shift, snapshot in enumerate(SNAPSHOTS):
        started = time.perf_counter()
        url = scenario.for_run(root, snapshot.isoformat()).dataset.url
        churn_data.write_by_state(churn_data.snapshot_customers(base, customers, snapshot, shift), url)
        storage.write_bytes_atomic(f"{url}/_READY", b"")
        print(f"landed {customers:,} customers as of {snapshot} in {time.perf_counter() - started:.1f} s: {url}")
    layout = StorageLayout(root)
    for version, train in (("glm-churn-v1", churn_data.train_glm), ("ranger-churn-v1", churn_data.train_ranger)):
        upload_package(churn_data.seal(scenario, train(home / "packages" / version), version), layout)
    return root


def run(dags: Path, day: date, **conf) -> tuple[str, str, float]:
    """A DAG run on `day` (it scores the day before unless conf's as_of says otherwise): its
    state, its storage run id and its seconds."""
    from airflow.dag_processing.dagbag import DagBag

    from scoring_airflow.planning import storage_run_id

    bag = DagBag(str(dags))
    if bag.import_errors:
        sys.exit(f"the DAG folder {dags} does not import: {bag.import_errors}")
    dag = bag.dags["scenario_customer_churn"]
    logical = datetime.combine(day, datetime.min.time(), UTC)
    started = time.perf_counter()
    dag_run = dag.test(logical_date=logical, run_after=logical, run_conf=conf)
    return dag_run.state, storage_run_id(dag_run.dag_id, dag_run.run_id), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2_000_000)
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--home", type=Path, default=PROJECT / ".local" / "churn-demo")
    parser.add_argument("--dags", type=Path, default=PROJECT / "dags")
    args = parser.parse_args()
    root = prepare(args.home.resolve(), args.customers, args.pool_size)

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from retail_scoring import storage
    from retail_scoring.layout import StorageLayout

    layout = StorageLayout(root)
    challenger = {"as_of": SNAPSHOTS[1].isoformat(), "model_version": "ranger-churn-v1", "publish": False}
    runs = [  # each month's scheduled run, then the challenger a day later on November's rows
        (SNAPSHOTS[0] + timedelta(days=1), {}),
        (SNAPSHOTS[1] + timedelta(days=1), {}),
        (SNAPSHOTS[1] + timedelta(days=2), challenger),
    ]
    for day, conf in runs:
        state, run_id, seconds = run(args.dags, day, **conf)
        print(f"run {run_id} {conf or '(champion)'}: {state} in {seconds:.1f} s")
        if state != "success":
            sys.exit(f"the run ended {state}; its task logs are under {args.home / 'airflow' / 'logs'}")
    pointer = json.loads(storage.read_bytes(layout.scenario_current("customer_churn")))
    current = pq.read_table(pa.BufferReader(storage.read_bytes(pointer["table"])))
    newest = pc.value_counts(current["snapshot"]).to_pylist()
    print(f"current result: {pointer['rows']:,} customers in {pointer['table']}, by snapshot: "
          + ", ".join(f"{c['values']}: {c['counts']:,}" for c in newest))  # fmt: skip
    report = storage.read_bytes(layout.report_file(run_id, "report.md")).decode()
    print(report[report.index("## Metrics") :])


if __name__ == "__main__":
    main()
