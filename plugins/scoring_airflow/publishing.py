"""The publish task and what reads its result: each product's newest published forecast, pinned by
content, and whether storage still holds it as published."""

import logging
from datetime import UTC, datetime

from retail_scoring import storage
from retail_scoring.layout import StorageLayout, forecast_file_name
from retail_scoring.run.contract import RunPlan
from retail_scoring.storage import RecordedFile
from scoring_airflow.outages import survives_outages
from scoring_airflow.partitions import checked_partitions, problem_list, read_run_manifest, stored_forecasts
from scoring_airflow.task_documents import PublishResult
from scoring_airflow.validation import ValidationFailed, describe_problems

log = logging.getLogger(__name__)


@survives_outages
def publish_run(plan: RunPlan) -> dict:
    """Publish the run's products under its origin and into the current forecast, which holds each
    product's newest published forecast: a reforecast or a run at a newer origin replaces just its
    products, a backfill of an older origin leaves products with newer forecasts alone. Each entry
    pins the forecast's content (sha256, stored identity), checked once more here against storage,
    so what is published is what was scored and validated. Both indexes are updated by
    compare-and-swap, so publishers finishing together lose nothing."""
    layout = StorageLayout(plan.storage_root)
    origin = plan.origin
    published_at = datetime.now(UTC).isoformat()
    problems, entries = {}, {}
    folder = layout.forecasts_dir(plan.run_id)
    for checked in checked_partitions(layout, read_run_manifest(plan)):
        problems[checked.name] = checked.problems
        for product, written in checked.summary.forecasts.items() if checked.summary else ():
            entries[product] = {
                "origin": origin,
                "run_id": plan.run_id,
                "forecast": f"{folder}/{forecast_file_name(int(product))}",
                **vars(written),  # its three fields; dataclasses.asdict deep-copies, 6 us per entry
                "model_version": plan.model_version,
                "published_at": published_at,
            }
    if found := problem_list(problems):
        raise ValidationFailed("changed since validation; nothing published:\n" + describe_problems(found))

    def merged(index: dict | None, newer_only: bool) -> dict:
        products = (index or {}).get("products", {})
        replaced = {p: e for p, e in entries.items() if not newer_only or products.get(p, e)["origin"] <= origin}
        return {"products": {**products, **replaced}}

    storage.update_json(layout.published_index(origin), lambda index: {"origin": origin, **merged(index, False)})
    current = storage.update_json(layout.current_forecast(), lambda index: merged(index, True))
    moved = sum(current["products"][p]["run_id"] == plan.run_id for p in entries)
    log.info(
        "published %d products of run %s under origin %d; %d of them now in the current forecast%s",
        len(entries),
        plan.run_id,
        origin,
        moved,
        f" ({len(entries) - moved} have newer forecasts)" if moved < len(entries) else "",
    )
    index = layout.current_forecast() if moved else layout.published_index(origin)
    return PublishResult(origin, len(entries), moved, plan.run_id, index).to_dict()


def changed_since_published(layout: StorageLayout, entries: dict[str, dict]) -> list[str]:
    """The published forecasts (product -> index entry) that storage no longer holds as published:
    one listing per run behind them; a file is read only where its identity changed (a copy of the
    storage is recognised by its content)."""
    changed = []
    for run_id in sorted({entry["run_id"] for entry in entries.values()}):
        stored = stored_forecasts(layout, run_id)
        for product, entry in entries.items():
            if entry["run_id"] != run_id:
                continue
            url = layout.forecast_file(run_id, int(product))
            published = RecordedFile(entry["bytes"], entry["sha256"], entry["identity"])
            if not storage.matches_record(url, stored.get(url.rsplit("/", 1)[-1]), published):
                changed.append(entry["forecast"])
    return changed


def read_current(layout: StorageLayout) -> dict | None:
    return storage.read_json(layout.current_forecast())
