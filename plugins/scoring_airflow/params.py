"""The compute params every scoring DAG offers (the weekly run, the backtest, a scenario's), and
the engine param of the DAGs that score gbm packages, defined once."""

from airflow.sdk import Param

from retail_scoring.packages.base import ENGINES
from scoring_airflow.compute import BACKENDS
from scoring_airflow.settings import MAX_POOL_SIZE, ForecastSettings


def engine_param(settings: ForecastSettings) -> dict[str, Param]:
    """How a gbm package scores (the forecast DAGs': scenarios' r-table packages are R only)."""
    return {
        "engine": Param(
            settings.engine,
            enum=list(ENGINES),
            section="Compute",
            description="How gbm model packages are scored: `auto` uses a package's compiled engine (bit-identical "
            "to R, several times faster) where it was packaged with one, else R; `r` always R's predict; "
            "`compiled` refuses packages without one.",
        )
    }


def compute_params(settings: ForecastSettings) -> dict[str, Param]:
    """Where and how a run scores: sections Compute and Azure Batch of the trigger form."""
    return {
        "compute_backend": Param(
            settings.compute_backend,
            enum=list(BACKENDS),
            section="Compute",
            description="`local`: worker processes on the Airflow machine; `azure_batch`: a Batch pool per run.",
        ),
        "pool_size": Param(
            settings.pool_size,
            type="integer",
            minimum=1,
            maximum=MAX_POOL_SIZE,
            section="Compute",
            description="Local: worker processes at once, at most what this machine's cores and memory hold (the "
            "plan says the limit). Azure Batch: nodes of the pool.",
        ),
        "partitioning": Param(
            "per_node",
            enum=["per_node", "per_product"],
            section="Compute",
            description="`per_node`: one scoring task per task slot of the pool, models loaded once per task (the "
            "reference's advice), and more tasks of at most FORECAST_MAX_PRODUCTS_PER_PARTITION products or a "
            "scenario's shards (200) for big inputs, which the pool works through in turn; `per_product`: one task "
            "per product (a scenario's: per shard).",
        ),
        "task_slots_per_node": Param(
            settings.task_slots_per_node,
            type="integer",
            minimum=1,
            maximum=256,
            section="Compute",
            description="Scoring tasks one Batch node runs at once.",
        ),
        "vm_size": Param(
            settings.vm_size, type="string", section="Azure Batch", description="VM size of the pool's nodes."
        ),
        "spot_nodes": Param(
            settings.spot_nodes,
            type="integer",
            minimum=0,
            section="Azure Batch",
            description="How many of the pool's nodes are spot (cheaper, may be preempted; their tasks run again).",
        ),
    }
