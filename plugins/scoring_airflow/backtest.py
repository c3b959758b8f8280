"""Backtests: model packages scored at many past origins in one Airflow run, judged out of sample,
and the calibration each learns.

Each (package, origin) is an ordinary unpublished run (its manifest, partitions, summaries and
validation as the weekly run's), laid out under the backtest's folder; all of them share one pool.
The evaluation reads their partitions' summaries only: accuracy sums and residual profiles."""

import io
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from retail_scoring import storage  # noqa: E402
from retail_scoring.layout import StorageLayout, backtest_of_run, backtest_run_id, checked_identifier  # noqa: E402
from retail_scoring.run.accuracy import OUT_OF_SAMPLE, combine_accuracy, forecast_sample  # noqa: E402
from retail_scoring.run.calibration import (  # noqa: E402
    DEFAULT_HALF_LIFE_WEEKS,
    Calibration,
    add_profiles,
    learn_calibration,
    shifted_accuracy,
)
from retail_scoring.run.contract import RunPlan  # noqa: E402
from scoring_airflow.compute import ComputeBackend  # noqa: E402
from scoring_airflow.outages import survives_outages  # noqa: E402
from scoring_airflow.partitions import checked_partitions, problem_list, read_run_manifest  # noqa: E402
from scoring_airflow.planning import PlanError, plan_run, requested_products, storage_run_id  # noqa: E402
from scoring_airflow.settings import ForecastSettings  # noqa: E402

log = logging.getLogger(__name__)

MAX_ORIGINS = 520  # ten years of weeks
COVERAGE_COLOURS = {50: "tab:red", 90: "tab:blue"}


class BacktestFailed(Exception):
    """A run of the backtest has no valid, trusted forecasts to judge."""


@dataclass(frozen=True)
class BacktestPlan:
    """A backtest as planned, kept in its folder (backtest.json; XCom carries its runs' plans): its
    runs are `backtest_run_id(backtest_id, package index, origin)`."""

    backtest_id: str
    airflow_run_id: str
    storage_root: str
    model_versions: list[str]
    origins: list[int]
    report_origins: list[int] | None  # the origins the report's comparison sums; None: every one it can
    half_life_weeks: float | None
    product_count: int
    pool_id: str

    def to_dict(self) -> dict:
        return asdict(self)

    def run_ids(self) -> list[tuple[str, int, str]]:
        """(model version, origin, run id) of every run, package by package."""
        return [
            (model_version, origin, backtest_run_id(self.backtest_id, index, origin))
            for index, model_version in enumerate(self.model_versions)
            for origin in self.origins
        ]


def requested_origins(value: str | list | None) -> list[int]:
    """The `origins` param: numbers and ranges like `61-107`, as the products param reads them."""
    selection = requested_products(value, "origins")
    if selection is None:
        raise PlanError("origins: give the origins to backtest, e.g. 61-107")
    span = sum(high - low + 1 for low, high in selection.ranges) + len(selection.numbers)
    if span > MAX_ORIGINS:
        raise PlanError(f"origins: {span} origins asked for, at most {MAX_ORIGINS} per backtest")
    origins = set(selection.numbers)
    for low, high in selection.ranges:
        origins.update(range(low, high + 1))
    return sorted(origins)


def requested_model_versions(value: str | list | None) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").replace(",", " ").split()
    versions = [checked_identifier("model_version", item.strip()) for item in items if str(item).strip()]
    if not versions:
        raise PlanError("model_versions: give at least one model package to backtest")
    return list(dict.fromkeys(versions))


@survives_outages
def plan_backtest(
    dag_id: str, airflow_run_id: str, run_date: datetime | date, params: dict, settings: ForecastSettings
) -> tuple[BacktestPlan, list[RunPlan]]:
    """Plan one unpublished, uncalibrated run per package and origin (each point-in-time, checked
    like a weekly run's), all on one pool; write the backtest's plan to its folder."""
    backtest_id = storage_run_id(dag_id, airflow_run_id)
    model_versions = requested_model_versions(params.get("model_versions"))
    origins = requested_origins(params.get("origins"))
    report = params.get("report_origins")
    backtest = BacktestPlan(
        backtest_id=backtest_id,
        airflow_run_id=airflow_run_id,
        storage_root=settings.storage_root,
        model_versions=model_versions,
        origins=origins,
        report_origins=requested_origins(report) if report else None,
        half_life_weeks=params.get("half_life_weeks", DEFAULT_HALF_LIFE_WEEKS),
        product_count=0,
        pool_id=ComputeBackend.pool_id_for(backtest_id),
    )
    runs = []
    for model_version, origin, run_id in backtest.run_ids():
        run_params = {**params, "model_version": model_version, "origin_week": origin, "publish": False}
        run_params["calibration"] = None  # a backtest judges what the package itself forecasts
        try:
            runs.append(
                plan_run(dag_id, airflow_run_id, run_date, run_params, settings, run_id, backtest.pool_id, True)
            )
        except PlanError as error:
            raise PlanError(f"model package {model_version} at origin {origin}: {error}") from error
    backtest = BacktestPlan(**{**asdict(backtest), "product_count": runs[0].product_count})
    layout = StorageLayout(settings.storage_root)
    storage.write_bytes_atomic(layout.backtest_plan(backtest_id), json.dumps(backtest.to_dict(), indent=1).encode())
    log.info(
        "backtest %s: %s at %d origins (%d..%d), %d products, %d runs on pool %s",
        backtest_id,
        ", ".join(model_versions),
        len(origins),
        origins[0],
        origins[-1],
        backtest.product_count,
        len(runs),
        backtest.pool_id,
    )
    return backtest, runs


def read_backtest(run: RunPlan) -> BacktestPlan:
    """The plan of the backtest `run` belongs to, as its folder keeps it."""
    layout = StorageLayout(run.storage_root)
    url = layout.backtest_plan(backtest_of_run(run.run_id))
    return BacktestPlan(**json.loads(storage.read_bytes(url)))


@dataclass
class OriginResult:
    """One package at one origin, from its run's trusted partition summaries."""

    origin: int
    sample: str
    sums: list[dict]  # accuracy sums, one per partition
    residuals: dict  # the partitions' residual profiles added up
    complete: bool  # every forecast row has its actual

    @property
    def forecast_rows(self) -> int:
        return sum(part.get("forecast_rows", 0) for part in self.sums)


def origin_result(plan: RunPlan) -> OriginResult:
    """A run's accuracy sums and residual profile, from its summaries as validation trusted them."""
    layout = StorageLayout(plan.storage_root)
    problems, sums, residuals = {}, [], {}
    for checked in checked_partitions(layout, read_run_manifest(plan)):
        problems[checked.name] = checked.problems
        if checked.summary:
            sums += [checked.summary.accuracy] if checked.summary.accuracy else []
            residuals = add_profiles(residuals, checked.summary.residuals)
    if found := problem_list(problems):
        raise BacktestFailed(f"run {plan.run_id} (origin {plan.origin}) is not valid: {found[0]}")
    rows = sum(part["rows"] for part in sums)
    return OriginResult(
        origin=plan.origin,
        sample=forecast_sample(plan.origin, plan.output.horizon, plan.training_weeks),
        sums=sums,
        residuals=residuals,
        complete=bool(sums) and rows == sum(part["forecast_rows"] for part in sums),
    )


def usable_origins(results: dict[int, OriginResult]) -> list[int]:
    """The origins a calibration may learn from: out of sample, every forecast row with its actual."""
    return sorted(o for o, result in results.items() if result.sample == OUT_OF_SAMPLE and result.complete)


def learned_from(
    results: dict[int, OriginResult], origins: list[int], plan: RunPlan, half_life: float | None, backtest_id: str
) -> Calibration:
    """The package's calibration learned from the residual profiles of `origins`."""
    return learn_calibration(
        {o: results[o].residuals for o in origins},
        plan.output.quantiles,
        plan.output.horizon,
        half_life,
        model_version=plan.model_version,
        package_sha256=plan.model_manifest_sha256,
        backtest_id=backtest_id,
    )


def point_in_time_calibrations(
    results: dict[int, OriginResult], plan: RunPlan, half_life_weeks: float | None, backtest_id: str
) -> dict[int, Calibration]:
    """For each origin, the calibration a weekly run there could have had: learned from every
    earlier out-of-sample origin whose forecast weeks all have sales by then (origin - horizon or
    before). Origins without one are left out."""
    usable = usable_origins(results)
    calibrations = {}
    for origin in results:
        earlier = [o for o in usable if o + plan.output.horizon <= origin]
        if earlier:
            calibrations[origin] = learned_from(results, earlier, plan, half_life_weeks, backtest_id)
    return calibrations


@dataclass
class PackageResult:
    model_version: str
    plan: RunPlan  # one of its runs (package, output contract)
    origins: dict[int, OriginResult]
    calibrations: dict[int, Calibration]  # point-in-time, by origin

    def calibrated_sums(self, origin: int) -> dict:
        quantiles = self.plan.output.quantiles
        return shifted_accuracy(self.origins[origin].residuals, self.calibrations[origin].shifts, quantiles)


def compared_origins(packages: list[PackageResult], report_origins: list[int] | None) -> list[int]:
    """Origins where every package is out of sample, has all its actuals and a point-in-time
    calibration: the same (product, series, week) rows for each, since each package forecasts
    every planned series of the same products."""
    shared = set.intersection(
        *[
            {o for o, result in package.origins.items() if result.sample == OUT_OF_SAMPLE and result.complete}
            & set(package.calibrations)
            for package in packages
        ]
    )
    if report_origins is not None:
        shared &= set(report_origins)
    return sorted(shared)


def metrics_over(package: PackageResult, origins: list[int]) -> dict[str, dict]:
    quantiles = package.plan.output.quantiles
    raw = [part for origin in origins for part in package.origins[origin].sums]
    calibrated = [package.calibrated_sums(origin) for origin in origins]
    return {"forecast": combine_accuracy(raw, quantiles), "calibrated": combine_accuracy(calibrated, quantiles)}


def write_calibration(layout: StorageLayout, backtest_id: str, package: PackageResult, half_life: float | None) -> dict:
    """The calibration learned from every out-of-sample origin with all its actuals, for the
    package's future runs (and its successors'); its URL and sha256, which planning checks."""
    usable = usable_origins(package.origins)
    if not usable:
        return {}
    plan = package.plan
    calibration = learned_from(package.origins, usable, plan, half_life, backtest_id)
    url = layout.calibration_file(backtest_id, plan.model_version)
    data = calibration.to_json()
    storage.write_bytes_atomic(url, data)
    return {
        "url": url,
        "sha256": storage.sha256_hex(data),
        "learned_from": calibration.origins,
        "usable_from": calibration.usable_from,
    }


@survives_outages
def evaluate_backtest(backtest: BacktestPlan, runs: list[RunPlan], settings: ForecastSettings) -> str:
    """Accuracy by package, origin, horizon step and quantile, as forecast and calibrated
    point-in-time; the calibration files; the report and its figure. Returns the report's URL."""
    layout = StorageLayout(backtest.storage_root)
    by_run = {plan.run_id: plan for plan in runs}
    packages = []
    for model_version in backtest.model_versions:
        plans = [by_run[run_id] for version, _, run_id in backtest.run_ids() if version == model_version]
        results = {plan.origin: origin_result(plan) for plan in plans}
        calibrations = point_in_time_calibrations(results, plans[0], backtest.half_life_weeks, backtest.backtest_id)
        packages.append(PackageResult(model_version, plans[0], results, calibrations))
    compared = compared_origins(packages, backtest.report_origins)
    record = {
        "backtest_id": backtest.backtest_id,
        "origins": backtest.origins,
        "compared_origins": compared,
        "products": backtest.product_count,
        "half_life_weeks": backtest.half_life_weeks,
        "recorded_at": datetime.now(UTC).isoformat(),
        "packages": {package.model_version: package_record(package, compared) for package in packages},
        "calibrations": {
            package.model_version: write_calibration(layout, backtest.backtest_id, package, backtest.half_life_weeks)
            for package in packages
        },
    }
    record["calibrations"] = {version: found for version, found in record["calibrations"].items() if found}
    storage.write_bytes_atomic(layout.backtest_accuracy(backtest.backtest_id), json.dumps(record, indent=1).encode())
    figure_name = "calibration_by_step.png"
    png = io.BytesIO()
    figure = coverage_figure(record, packages)
    figure.savefig(png, format="png", dpi=90)
    plt.close(figure)
    storage.write_bytes_atomic(layout.backtest_report_file(backtest.backtest_id, figure_name), png.getvalue())
    report_url = layout.backtest_report_file(backtest.backtest_id, "report.md")
    storage.write_bytes_atomic(report_url, "\n".join(report_lines(record, packages, figure_name)).encode())
    log.info("backtest report: %s", report_url)
    return report_url


def package_record(package: PackageResult, compared: list[int]) -> dict:
    in_sample = {o: r for o, r in package.origins.items() if r.sample != OUT_OF_SAMPLE}
    quantiles = package.plan.output.quantiles
    return {
        "package_sha256": package.plan.model_manifest_sha256,
        "training_weeks": package.plan.training_weeks,
        "in_sample_origins": sorted(in_sample),
        "in_sample_rows": sum(r.forecast_rows for r in in_sample.values()),
        "by_origin": {
            str(origin): {
                "sample": result.sample,
                "forecast": combine_accuracy(result.sums, quantiles),
                "calibrated": (
                    combine_accuracy([package.calibrated_sums(origin)], quantiles)
                    if origin in package.calibrations
                    else None
                ),
                "calibrated_from": package.calibrations[origin].origins if origin in package.calibrations else None,
            }
            for origin, result in sorted(package.origins.items())
        },
        "compared": metrics_over(package, compared) if compared else None,
    }


def coverage_figure(record: dict, packages: list[PackageResult]):
    """Per horizon step over the compared origins: each central interval's coverage as forecast
    (dashed) and calibrated (solid) against its nominal level, and the median's pinball loss."""
    figure, (coverage_axis, loss_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, package in enumerate(packages):
        compared = record["packages"][package.model_version]["compared"]
        if not compared:
            continue
        marker = "os^vD"[index % 5]
        for kind, style in (("forecast", "--"), ("calibrated", "-")):
            steps = compared[kind].get("steps", {})
            x = [int(step) for step in steps]
            for level, colour in COVERAGE_COLOURS.items():
                values = [metrics.get(f"coverage_{level}") for metrics in steps.values()]
                coverage_axis.plot(
                    x, values, style, marker=marker, color=colour, label=f"{package.model_version} {level}% {kind}"
                )
            loss_axis.plot(
                x,
                [metrics.get("pinball_q50") for metrics in steps.values()],
                style,
                marker=marker,
                color=f"C{index}",
                label=f"{package.model_version} {kind}",
            )
    for level, colour in COVERAGE_COLOURS.items():
        coverage_axis.axhline(level / 100, color=colour, linewidth=0.8, alpha=0.5)
    coverage_axis.set(xlabel="horizon step (weeks ahead)", ylabel="share of actual sales inside", ylim=(0, 1))
    coverage_axis.set_title("interval coverage (thin lines: nominal)")
    loss_axis.set(xlabel="horizon step (weeks ahead)", ylabel="pinball loss of the median (units)")
    loss_axis.set_title("median's pinball loss")
    coverage_axis.legend(fontsize="x-small")
    loss_axis.legend(fontsize="x-small")
    figure.tight_layout()
    return figure


SUMMARY_COLUMNS = ["pinball_q50", "mape_q50"]


def report_lines(record: dict, packages: list[PackageResult], figure_name: str) -> list[str]:
    compared = record["compared_origins"]
    span = f"origins {compared[0]}..{compared[-1]} ({len(compared)})" if compared else "no origin"
    lines = [
        f"# Backtest {record['backtest_id']}",
        "",
        f"Model packages {', '.join(record['packages'])} scored at origins {record['origins'][0]}.."
        f"{record['origins'][-1]} ({len(record['origins'])}), {record['products']} products each, point-in-time "
        f"(each origin sees only the sales up to it). Written {record['recorded_at']}.",
        "",
        "Calibrated figures are point-in-time, as weekly runs would have had them: at each origin, a "
        "calibration learned from every earlier out-of-sample origin whose forecast weeks all had sales by "
        f"then (recency half-life {record['half_life_weeks']} weeks; method in "
        "`retail_scoring.run.calibration`). A calibrated 50% interval should cover 50% of actual sales, a 90% "
        "interval 90%.",
        "",
        "## Left out as in sample",
        "Origins whose forecast weeks overlap a package's training window (the models saw those sales): "
        "never used for comparison or calibration.",
        "",
    ]
    for version, package in record["packages"].items():
        origins = package["in_sample_origins"]
        shown = f"{len(origins)} origins ({origins[0]}..{origins[-1]})" if origins else "none"
        weeks = package["training_weeks"]
        window = f"trained on weeks {weeks[0]}..{weeks[1]}" if weeks else "training weeks unknown"
        lines.append(f"- {version} ({window}): {shown}, {package['in_sample_rows']} rows")
    lines += [
        "",
        f"## Compared: {span}",
        "The same (product, series, week) rows for every package: origins where all are out of sample, "
        "have every actual and a point-in-time calibration.",
        "",
        comparison_table(record) if compared else "(no origin qualifies)",
        "",
        f"![coverage and loss by step]({figure_name})",
        "",
    ]
    for package in packages:
        result = record["packages"][package.model_version]["compared"]
        if result:
            lines += [f"### {package.model_version} by horizon step", "", step_comparison(result), ""]
    lines += ["## Calibration files", ""]
    for version, calibration in record["calibrations"].items():
        learned = calibration["learned_from"]
        lines.append(
            f"- {version}: `{calibration['url']}` (sha256 {calibration['sha256'][:12]}), learned from origins "
            f"{learned[0]}..{learned[-1]} ({len(learned)}); applies to runs from origin "
            f"{calibration['usable_from']} on, with the weekly DAG's param `calibration` = "
            f"`{record['backtest_id']}` (`:{version}` when several packages were calibrated)"
        )
    return lines


def comparison_table(record: dict) -> str:
    rows = []
    for version, package in record["packages"].items():
        for kind in ("forecast", "calibrated"):
            metrics = package["compared"][kind]
            coverage = {key: value for key, value in metrics.items() if key.startswith("coverage_")}
            chosen = {key: metrics[key] for key in SUMMARY_COLUMNS if key in metrics}
            rows.append({"model_version": version, "as": kind, "rows": str(metrics["rows"]), **chosen, **coverage})
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")


def step_comparison(result: dict) -> str:
    rows = []
    for step, raw in result["forecast"].get("steps", {}).items():
        calibrated = result["calibrated"]["steps"][step]
        row = {"step": step, "rows": str(raw["rows"])}  # text: floatfmt formats every number
        for key in sorted(k for k in raw if k.startswith("coverage_")) + ["pinball_q50"]:
            row[f"{key} forecast"] = raw[key]
            row[f"{key} calibrated"] = calibrated[key]
        rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f")
