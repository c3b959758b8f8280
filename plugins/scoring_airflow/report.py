"""The per-run report for planners and the on-call engineer, and accuracy over time."""

import io
import json
import logging
from datetime import UTC, datetime

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from retail_scoring import storage  # noqa: E402
from retail_scoring.data.schema import quantile_column  # noqa: E402
from retail_scoring.data.tables import read_forecast, read_product_table  # noqa: E402
from retail_scoring.layout import StorageLayout  # noqa: E402
from retail_scoring.packages.base import OutputContract  # noqa: E402
from retail_scoring.run.accuracy import (  # noqa: E402
    OUT_OF_SAMPLE,
    UNKNOWN_SAMPLE,
    combine_accuracy,
    forecast_sample,
)
from retail_scoring.run.calibration import read_calibration  # noqa: E402
from retail_scoring.run.contract import PartitionSummary, RunPlan  # noqa: E402
from scoring_airflow.compute import TaskStatus  # noqa: E402
from scoring_airflow.outages import survives_outages
from scoring_airflow.partitions import read_run_manifest, read_summary  # noqa: E402
from scoring_airflow.settings import ForecastSettings  # noqa: E402
from scoring_airflow.task_documents import ScoreResult, ValidationReport  # noqa: E402

log = logging.getLogger(__name__)

HISTORY_WEEKS_SHOWN = 40
BAND_90_COLOUR = "lightskyblue"
BAND_50_COLOUR = "pink"


def forecast_figure(
    history: pd.DataFrame, forecast: pd.DataFrame, store: int, skus: list[int], output: OutputContract
) -> Figure:
    """The reference architecture's figure: per SKU, sales history (black), the median forecast
    (dashed), the inner band (pink: 25-75% for the reference) and the outer band (blue: 5-95%), of
    whatever quantiles the package forecasts."""
    columns = output.columns
    bands = [(columns[0], columns[-1], BAND_90_COLOUR)] if len(columns) >= 2 else []
    bands += [(columns[1], columns[-2], BAND_50_COLOUR)] if len(columns) >= 4 else []
    figure, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for axis, sku in zip(axes.flat, skus, strict=False):
        past = history[(history["sku"] == sku) & (history["store"] == store)].sort_values("week")
        past = past[past["week"] > past["week"].max() - HISTORY_WEEKS_SHOWN]
        ahead = forecast[(forecast["sku"] == sku) & (forecast["store"] == store)].sort_values("week")
        for low, high, colour in bands:
            axis.fill_between(ahead["week"], ahead[low], ahead[high], color=colour, label=f"{low[1:]}-{high[1:]}%")
        axis.plot(past["week"], past["sales"], color="black", label="sales")
        if quantile_column(0.5) in ahead:
            axis.plot(
                ahead["week"], ahead[quantile_column(0.5)], color="black", linestyle="--", label="median forecast"
            )
        axis.set_title(f"SKU {sku}, store {store}")
        axis.set_ylabel("units sold")
    axes.flat[0].legend(loc="upper left", fontsize="small")
    for axis in axes[-1]:
        axis.set_xlabel("week")
    figure.tight_layout()
    return figure


def run_accuracy(plan: RunPlan, sums: list[dict], products: list[int]) -> dict:
    """Accuracy over the forecast rows that have actual sales, added up from the partitions' sums;
    says how many rows do not have them yet, whether the forecast weeks lie in the package's
    training window (`sample`), and which products it covers (`products_sha256`), so only
    out-of-sample runs over the same products are compared."""
    output = plan.output
    metrics = combine_accuracy(sums, output.quantiles)
    return {
        "run_id": plan.run_id,
        "origin": plan.origin,
        "model_version": plan.model_version,
        "products": plan.product_count,
        "products_sha256": storage.sha256_hex(json.dumps(sorted(products)).encode()),
        "sample": forecast_sample(plan.origin, output.horizon, plan.training_weeks),
        "recorded_at": datetime.now(UTC).isoformat(),
        **metrics,
        "rows_without_actuals": sum(part["forecast_rows"] for part in sums) - metrics["rows"],
    }


def record_accuracy(layout: StorageLayout, accuracy: dict) -> pd.DataFrame:
    """Write this run's accuracy record (a rerun replaces its own) and return every run's: one
    file per run, so concurrent reports never overwrite each other's rows."""
    storage.write_bytes_atomic(layout.run_accuracy(accuracy["run_id"]), json.dumps(accuracy, indent=2).encode())
    return accuracy_history(layout)


def accuracy_history(layout: StorageLayout) -> pd.DataFrame:
    """Every run's accuracy record, by origin. Records of runs that did not record their sample or
    products (made before they did) count as of unknown sample, compared with nothing."""
    records = [storage.read_json(layout.run_accuracy(run_id)) for run_id in storage.list_names(layout.runs_dir())]
    records = [{"sample": UNKNOWN_SAMPLE, "products_sha256": "", **record} for record in records if record]
    return pd.DataFrame(records).sort_values(["origin", "run_id"], ignore_index=True) if records else pd.DataFrame()


def partition_figures(summary: PartitionSummary | None) -> dict:
    """What the report keeps of a partition's summary: the figures, not the per-product records or
    the residual profile (megabytes per partition)."""
    return {
        "products": len(summary.products) if summary else 0,
        "model_load_s": summary.model_load_s if summary else None,
        "predict_s": summary.predict_s if summary else None,
        "rows": summary.rows if summary else None,
        "peak_rss_mb": summary.peak_rss_mb if summary else None,
    }


def partition_timings(figures: dict[str, dict], statuses: list[TaskStatus]) -> pd.DataFrame:
    rows = []
    for status in statuses:
        figure = figures.get(status.task_id, partition_figures(None))
        rows.append(
            {
                "partition": status.task_id,
                "products": figure["products"],
                "attempts": status.attempts,
                "queue_wait_s": status.started_at - status.queued_at,
                "run_s": status.finished_at - status.started_at,
                **figure,
            }
        )
    return pd.DataFrame(rows)


def cost_estimate(plan: RunPlan, statuses: list[TaskStatus], settings: ForecastSettings) -> dict:
    """Node-hours the pool was busy with this job, times the VM size's hourly price."""
    vm_size = plan.vm_size
    if not statuses:
        return {"node_hours": 0.0, "vm_size": vm_size, "usd": 0.0}
    span_s = max(s.finished_at for s in statuses) - min(s.queued_at for s in statuses)
    node_hours = plan.pool_size * span_s / 3600
    price = settings.vm_hourly_prices.get(vm_size)
    return {"node_hours": node_hours, "vm_size": vm_size, "usd": None if price is None else node_hours * price}


@survives_outages
def write_report(plan: RunPlan, score_result: dict, settings: ForecastSettings) -> str:
    """Write the figure and report.md for the run; returns the report's URL."""
    layout = StorageLayout(plan.storage_root)
    run_id = plan.run_id
    partitions = read_run_manifest(plan).partitions
    figures, accuracy_sums = {}, []
    for partition in partitions:
        summary = read_summary(layout, run_id, partition)
        figures[partition] = partition_figures(summary)
        accuracy_sums += [summary.accuracy] if summary and summary.accuracy else []
    first_product = min(products[0] for products in partitions.values())
    history = read_product_table(layout, first_product, "history")
    forecast = read_forecast(layout.forecast_file(run_id, first_product))
    skus = sorted(forecast["sku"].unique())[:4]
    output = plan.output
    figure = forecast_figure(history[history["week"] <= plan.origin], forecast, settings.report_store, skus, output)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=90)
    plt.close(figure)
    figure_url = layout.report_file(run_id, f"forecast_store{settings.report_store}.png")
    storage.write_bytes_atomic(figure_url, png.getvalue())

    validation_url = layout.validation_report(run_id)
    validation = ValidationReport.from_dict(json.loads(storage.read_bytes(validation_url)), validation_url)
    scoring = ScoreResult.from_dict(score_result, "the score task's result (XCom)")
    statuses = scoring.statuses
    timings = partition_timings(figures, statuses)
    cost = cost_estimate(plan, statuses, settings)
    accuracy = run_accuracy(plan, accuracy_sums, [product for group in partitions.values() for product in group])
    accuracy_over_time = record_accuracy(layout, accuracy)
    rows = int(timings["rows"].sum()) if not timings.empty else 0
    calibration_note = calibration_line(plan)
    span_s = (max(s.finished_at for s in statuses) - min(s.started_at for s in statuses)) if statuses else 0
    lines = [
        f"# Forecast run {run_id}",
        "",
        f"Origin week {plan.origin}, model package {plan.model_version}, "
        f"{validation.checked} products in {plan.partition_count} partitions, "
        f"pool of {plan.pool_size} ({plan.compute_backend}). Written {datetime.now(UTC).isoformat()}.",
        "",
        calibration_note,
        "",
        f"![store {settings.report_store}](forecast_store{settings.report_store}.png)",
        "",
        "## Validation",
        f"{'valid' if validation.valid else 'INVALID'}: {validation.problem_count} problems "
        f"in {validation.checked} products.",
        "",
        "## Scoring",
        f"{rows} rows, {rows * len(output.quantiles)} scoring operations in {span_s:.1f} s: "
        f"{(rows * len(output.quantiles) / span_s) if span_s else 0:.0f} scoring operations per second"
        + (f" (partitions skipped as already valid: {scoring.skipped})" if scoring.skipped else ""),
        "",
        timings.to_markdown(index=False, floatfmt=".2f") if not timings.empty else "(no partition scored in this try)",
        "",
        "## Cost estimate",
        f"{cost['node_hours']:.3f} node-hours of {cost['vm_size']}"
        + (f" = {cost['usd']:.4f} USD" if cost["usd"] is not None else " (no price configured for this VM size)"),
        "",
        "## Accuracy against actual sales",
        f"{accuracy['rows']} forecast rows have actual sales, {accuracy['rows_without_actuals']} do not yet. "
        "A calibrated 50% interval covers 50% of actuals, a 90% interval 90%.",
        "",
        accuracy_table(accuracy_over_time),
        "",
        f"By horizon step (step 1 is week {plan.origin + 1}), this run:",
        "",
        step_table(accuracy),
        "",
        f"## Model packages compared at origin {plan.origin}",
        "Each package's newest out-of-sample run at this origin over this run's products (champion and "
        "challengers). In-sample runs (forecast weeks the package was trained on) say nothing about the "
        "future and are left out, as are runs over other products.",
        "",
        package_comparison(accuracy_over_time, plan.origin, accuracy["products_sha256"]),
    ]
    report_url = layout.report_file(run_id, "report.md")
    storage.write_bytes_atomic(report_url, "\n".join(lines).encode())
    log.info("report: %s (figure %s)", report_url, figure_url)
    return report_url


def calibration_line(plan: RunPlan) -> str:
    """Whether the forecast is calibrated, with what, and whether the calibration was learned on
    another package (applied to its successor)."""
    if not plan.calibration_url:
        return "Quantiles as the model package forecast them (not calibrated)."
    calibration = read_calibration(plan.calibration_url, plan.calibration_sha256)[0]
    successor = (
        f", applied to a successor of {calibration.model_version}"
        if calibration.model_version != plan.model_version
        else ""
    )
    return (
        f"Quantiles calibrated with `{plan.calibration_url}` (sha256 {plan.calibration_sha256[:12]}), learned on "
        f"{calibration.model_version} from origins {calibration.origins[0]}..{calibration.learned_through} of "
        f"backtest {calibration.backtest_id}{successor}; what the package forecast is kept under model_output/."
    )


def package_comparison(history: pd.DataFrame, origin: int, products_sha256: str) -> str:
    """Per model package, its newest out-of-sample run's accuracy at `origin` over the products
    `products_sha256` names; says how many runs at the origin were left out and why."""
    if history.empty or "pinball_q50" not in history:
        return "(no actuals yet)"
    at_origin = history[history["origin"] == origin].sort_values("recorded_at", kind="stable")
    out_of_sample = at_origin["sample"] == OUT_OF_SAMPLE
    same_products = at_origin["products_sha256"] == products_sha256
    compared = at_origin[out_of_sample & same_products]
    left_out = (
        f"Left out: {int((~out_of_sample).sum())} run(s) not out of sample, "
        f"{int((out_of_sample & ~same_products).sum())} over other products."
    )
    if compared.empty:
        return f"(no out-of-sample run over these products) {left_out}"
    newest = compared.groupby("model_version").tail(1).astype({"products": "int64"})
    columns = ["model_version", "run_id", "products", "rows", "pinball_q50", "mape_q50", "coverage_50", "coverage_90"]
    table = newest[[c for c in columns if c in newest]].sort_values("pinball_q50")
    return f"{table.to_markdown(index=False, floatfmt='.3f')}\n\n{left_out}"


def step_table(accuracy: dict) -> str:
    """One run's accuracy per horizon step: how coverage and loss grow with the distance ahead."""
    if not accuracy.get("steps"):
        return "(no actuals yet)"
    table = pd.DataFrame(
        [{**metrics, "step": step, "rows": str(metrics["rows"])} for step, metrics in accuracy["steps"].items()]
    )
    columns = ["step", "rows", "pinball_q50", "mape_q50", *sorted(c for c in table if c.startswith("coverage_"))]
    return table[[c for c in columns if c in table]].to_markdown(index=False, floatfmt=".3f")


def accuracy_table(history: pd.DataFrame) -> str:
    if history.empty or "coverage_90" not in history:
        return "(no actuals yet)"
    table = history.assign(gap_50=history["coverage_50"] - 0.5, gap_90=history["coverage_90"] - 0.9)[
        [
            "run_id",
            "origin",
            "model_version",
            "sample",
            "rows",
            "pinball_q50",
            "mape_q50",
            "coverage_50",
            "gap_50",
            "coverage_90",
            "gap_90",
        ]
    ]
    return table.to_markdown(index=False, floatfmt=".3f")
