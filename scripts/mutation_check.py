"""Hand-written mutations of the reliability-critical code; the tests must catch every one.

Run on demand, not in CI (about 15 minutes for all):

    .venv/bin/python scripts/mutation_check.py            # every mutation
    .venv/bin/python scripts/mutation_check.py force-ignored checksum-not-verified

Each mutation is one edit of one file (the original text must occur exactly once), applied to a
scratch copy of the working tree; the tests named with it then run there. A mutation the tests
fail on is "caught"; one they pass on "SURVIVED": a behaviour the suite claims but does not check.
The script exits 1 when any mutation survived or could not be applied.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTATIONS = [
    # Trust, second pass (issue 33)
    Mutation(
        "contract-field-types-unchecked",
        "worker_image/retail_scoring/run/contract.py",
        "    check_types(cls, document, source, ContractError)\n    return {f.name:",
        "    return {f.name:",
        (
            "tests/worker/test_run_contract.py::test_the_worker_refuses_a_run_manifest_of_wrong_types_naming_the_field_and_value",
            "tests/worker/test_run_contract.py::test_a_summary_whose_forecast_record_lacks_or_mistypes_a_field_is_a_problem_not_a_crash",
            "tests/airflow/test_task_documents.py::test_an_event_of_wrong_types_is_refused_naming_the_field",
        ),
    ),
    Mutation(
        "record-fields-unchecked",
        "worker_image/retail_scoring/typed_json.py",
        "            and value.keys() == field_checks.keys()\n",
        "",
        (
            "tests/worker/test_run_contract.py::test_a_summary_whose_forecast_record_lacks_or_mistypes_a_field_is_a_problem_not_a_crash",
        ),
    ),
    Mutation(
        "bool-counts-as-a-number",
        "worker_image/retail_scoring/typed_json.py",
        "isinstance(value, numbers) and not isinstance(value, bool)",
        "isinstance(value, numbers)",
        (
            "tests/worker/test_run_contract.py::test_a_summary_whose_forecast_record_lacks_or_mistypes_a_field_is_a_problem_not_a_crash",
        ),
    ),
    Mutation(
        "calibration-shifts-unbounded",
        "worker_image/retail_scoring/run/calibration.py",
        "            if beyond:",
        "            if False:",
        ("tests/airflow/test_planning.py::test_a_re_signed_calibration_file_is_checked_like_a_manifest",),
    ),
    Mutation(
        "calibration-origins-from-the-file",
        "plugins/scoring_airflow/planning.py",
        '    if calibration.origins != recorded["learned_from"]:',
        "    if False:",
        ("tests/airflow/test_planning.py::test_a_re_signed_calibration_file_is_checked_like_a_manifest",),
    ),
    Mutation(
        "calibration-url-from-the-record",
        "plugins/scoring_airflow/planning.py",
        "    url = layout.calibration_file(backtest_id, learned_on)",
        '    url = recorded["url"]',
        (
            "tests/airflow/test_planning.py::test_a_calibration_is_read_where_the_layout_puts_it_whatever_the_record_says",
        ),
    ),
    Mutation(
        "run-mixes-calibrations",
        "plugins/scoring_airflow/partitions.py",
        "    if summary.calibration_sha256 != calibration_sha256:",
        "    if False:",
        (
            "tests/airflow/test_operators.py::test_partitions_calibrated_otherwise_than_the_run_pins_are_all_scored_again",
        ),
    ),
    Mutation(
        "local-identity-without-ctime",
        "worker_image/retail_scoring/storage.py",
        "mtime {entry['mtime']!r} ctime {entry['created']!r} inode",
        "mtime {entry['mtime']!r} inode",
        ("tests/airflow/test_operators.py::test_an_in_place_rewrite_with_its_times_put_back_is_never_skipped",),
    ),
    Mutation(
        "sys-source-unguarded",
        "worker_image/retail_scoring/packages/rscript.py",
        "  guard$sys.source <- function(file, ...) {\n    check(file)\n",
        "  guard$sys.source <- function(file, ...) {\n",
        (
            "tests/worker/test_r_script_packages.py::test_a_package_sourcing_a_file_its_manifest_does_not_list_is_refused_naming_it",
        ),
    ),
    Mutation(
        "package-quit-ends-the-worker",
        "worker_image/retail_scoring/packages/rscript.py",
        "  guard$quit <- guard$q <- function(...) {",
        "  guard$unused <- function(...) {",
        (
            "tests/worker/test_r_script_packages.py::test_a_package_calling_quit_fails_saying_so_instead_of_ending_the_worker",
        ),
    ),
    Mutation(
        "base-quit-exits-as-a-success",
        "worker_image/retail_scoring/rsession.py",
        "callbacks.cleanup = _refuse_quit\n",
        "\n",
        ("tests/worker/test_containment.py::test_base_quit_past_the_guard_fails_the_task_saying_so",),
    ),
    Mutation(
        "detached-processes-outlive-the-worker",
        "worker_image/retail_scoring/cli.py",
        "    containment.contain_processes()\n",
        "\n",
        ("tests/worker/test_containment.py::test_a_process_the_package_detaches_ends_with_its_worker",),
    ),
    Mutation(
        "pool-leaves-strays-of-killed-workers",
        "plugins/scoring_airflow/compute/local_pool.py",
        "        end_strays(running)\n",
        "\n",
        (
            "tests/airflow/test_local_backend.py::test_a_process_a_killed_task_detached_from_its_group_is_ended_by_the_pool",
        ),
    ),
    Mutation(
        "worker-memory-unbounded",
        "worker_image/retail_scoring/containment.py",
        "            if used_mb > self.limit_mb:",
        "            if used_mb > self.limit_mb * 100:",
        ("tests/worker/test_containment.py::test_a_worker_over_its_memory_limit_is_stopped_naming_the_limit",),
    ),
    Mutation(
        "descendants-memory-uncounted",
        "worker_image/retail_scoring/containment.py",
        "    for process in worker.children(recursive=True):\n        try:",
        "    for process in []:\n        try:",
        ("tests/worker/test_containment.py::test_the_memory_of_processes_a_worker_started_is_counted",),
    ),
    Mutation(
        "oversized-result-converted",
        "worker_image/retail_scoring/packages/rscript.py",
        "        if rows > most_rows or columns > most_columns:",
        "        if False:",
        ("tests/worker/test_r_script_packages.py::test_a_result_that_cannot_be_split_by_product_fails_the_chunk",),
    ),
    Mutation(
        "restored-copy-by-identity-only",
        "worker_image/retail_scoring/storage.py",
        "        return sha256_hex(read_bytes(url)) == recorded.sha256",
        "        return False",
        ("tests/airflow/test_operators.py::test_storage_restored_from_a_copy_is_recognised_by_content",),
    ),
    # Azure Batch limits (issue 32)
    Mutation(
        "summary-for-other-products-trusted",
        "plugins/scoring_airflow/partitions.py",
        "    if summary.products != products:",
        "    if False:",
        (
            "tests/airflow/test_operators.py::test_a_summary_for_other_products_than_the_plan_gives_the_partition_is_rescored",
        ),
    ),
    Mutation(
        "calibration-ignores-exact-hits",
        "worker_image/retail_scoring/run/calibration.py",
        "    below = np.cumsum(bins[0]) - bins[HITS] / 2",
        "    below = np.cumsum(bins[0])",
        ("tests/worker/test_calibration.py::test_a_median_that_a_fifth_of_the_sales_equal_stays_where_it_is",),
    ),
    Mutation(
        "weekly-summaries-carry-residual-profiles",
        "worker_image/retail_scoring/run/scoring.py",
        "residual_sums(joined, output.quantiles, output.horizon) if job.profile_residuals else None",
        "residual_sums(joined, output.quantiles, output.horizon)",
        (
            "tests/worker/test_scoring_chunks.py::test_only_a_run_that_asks_for_it_writes_the_residual_profile_into_its_summary",
            "tests/airflow/test_dag_end_to_end.py::test_backfill_for_an_older_week_sees_only_history_up_to_its_origin",
        ),
    ),
    Mutation(
        "backtest-runs-without-residual-profiles",
        "plugins/scoring_airflow/backtest.py",
        "run_params, settings, run_id, backtest.pool_id, True)",
        "run_params, settings, run_id, backtest.pool_id, False)",
        ("tests/airflow/test_backtest.py::test_a_backtest_compares_out_of_sample_and_calibrates_a_weekly_run",),
    ),
    Mutation(
        "grants-miss-model-output",
        "worker_image/retail_scoring/layout.py",
        "model_outputs = [self.model_output_file(run_id, product) for product in products] if calibrated else []",
        "model_outputs = []",
        ("tests/worker/test_cli_errors.py::test_a_scoring_task_writes_only_what_the_layout_lists",),
    ),
    Mutation(
        "score-outside-write-grants-pool",
        "dags/backtest_model_package.py",
        'task_id="score", settings=settings, retries=2, pool=settings.write_grants_pool',
        'task_id="score", settings=settings, retries=2',
        ("tests/airflow/test_dag_import.py",),
    ),
    Mutation(
        "throttled-create-not-retried",
        "plugins/scoring_airflow/compute/azure_batch.py",
        "        if response is not None and response.status_code == 429:\n            return True\n",
        "",
        (
            "tests/airflow/test_dag_on_azure_batch.py::test_a_throttled_or_busy_service_is_retried_after_its_retry_after",
        ),
    ),
    Mutation(
        "ended-job-stays-open",
        "plugins/scoring_airflow/compute/azure_batch.py",
        "return [job for job in active if job in holding]",
        "return active",
        (
            "tests/airflow/test_dag_on_azure_batch.py::"
            "test_a_job_of_500_partitions_of_200_products_is_submitted_within_the_service_limits",
        ),
    ),
    # publish wiring and teardown
    Mutation(
        "publish-after-score",
        "plugins/scoring_airflow/scoring_chain.py",
        "        ends.append(publish(run_plan))\n",
        "        ends.append(publish(run_plan))\n        score >> ends[-1]\n",
        ("tests/airflow/test_dag_import.py",),
    ),
    Mutation(
        "publish-beside-validate",
        "plugins/scoring_airflow/scoring_chain.py",
        "    [score, logs] >> validated >> ends >> delete_pool(run_plan).as_teardown(setups=pool)",
        "    [score, logs] >> ends[-1]\n    [score, logs] >> validated >> ends[0]\n"
        "    ends >> delete_pool(run_plan).as_teardown(setups=pool)",
        ("tests/airflow/test_dag_end_to_end.py::test_a_run_that_scores_but_fails_validation_is_not_published",),
    ),
    Mutation(
        "teardown-not-a-teardown",
        "plugins/scoring_airflow/scoring_chain.py",
        "delete_pool(run_plan).as_teardown(setups=pool)",
        "delete_pool(run_plan)",
        ("tests/airflow/test_dag_import.py",),
    ),
    Mutation(
        "teardown-keeps-jobs",
        "plugins/scoring_airflow/pool_tasks.py",
        "        if any(backend.is_job_of_run(job, run_id) for run_id in run_ids or [plan.run_id]):\n"
        "            backend.delete_job(job)",
        "        pass",
        ("tests/airflow/test_dag_on_azure_batch.py::test_weekly_run_on_batch_with_blob_storage",),
    ),
    Mutation(
        "teardown-takes-other-runs-jobs",
        "plugins/scoring_airflow/compute/base.py",
        'return re.fullmatch(re.escape(batch_id(run_id, ID_LIMIT - 8)) + r"-try\\d+", job) is not None',
        "return job.startswith(batch_id(run_id, ID_LIMIT - 8))",
        ("tests/airflow/test_planning.py",),
    ),
    Mutation(
        "teardown-keeps-pool",
        "plugins/scoring_airflow/pool_tasks.py",
        "    backend.delete_pool(plan.pool_id)",
        "    pass",
        ("tests/airflow/test_dag_end_to_end.py::test_weekly_run_scores_validates_publishes_and_deletes_the_pool",),
    ),
    Mutation(
        "on-kill-keeps-job",
        "plugins/scoring_airflow/operators.py",
        "            self._backend().delete_job(self._job_id)",
        "            pass",
        ("tests/airflow/test_faults.py::test_killing_the_deferred_scoring_task_deletes_its_job_and_stops_the_workers",),
    ),
    # force and the rerun skip
    Mutation(
        "force-ignored",
        "plugins/scoring_airflow/operators.py",
        "problems = {} if plan.force else through_outages(",
        "problems = {} if False else through_outages(",
        ("tests/airflow/test_dag_end_to_end.py::test_backfill_for_an_older_week_sees_only_history_up_to_its_origin",),
    ),
    Mutation(
        "skip-trusts-the-summary-alone",
        "plugins/scoring_airflow/partitions.py",
        "        if stored is None:",
        "        if False:",
        ("tests/airflow/test_operators.py",),
    ),
    Mutation(
        "skip-ignores-replaced-files",
        "plugins/scoring_airflow/partitions.py",
        "        elif written is None or not storage.matches_record(url, stored, written):",
        "        elif written is None:",
        ("tests/airflow/test_operators.py",),
    ),
    Mutation(
        "skip-ignores-summarised-problems",
        "plugins/scoring_airflow/partitions.py",
        "found = list(summary.problems.get(str(product), []))",
        "found = []",
        ("tests/airflow/test_operators.py",),
    ),
    Mutation(
        "skip-ignores-failures",
        "plugins/scoring_airflow/partitions.py",
        'problems = {"summary": list(summary.failures)} if summary.failures else {}',
        "problems = {}",
        ("tests/airflow/test_operators.py",),
    ),
    Mutation(
        "worker-skips-run-checks",
        "worker_image/retail_scoring/run/scoring.py",
        "        problems = _forecast_problems(frame, product, planned, origin, checks, output)",
        "        problems = []",
        (
            "tests/airflow/test_operators.py",
            "tests/airflow/test_dag_end_to_end.py::test_a_run_that_scores_but_fails_validation_is_not_published",
        ),
    ),
    Mutation(
        "skip-always",
        "plugins/scoring_airflow/operators.py",
        "            if partition in problems and not problems[partition]:",
        "            if partition in problems:",
        ("tests/airflow/test_dag_end_to_end.py::test_weekly_run_scores_validates_publishes_and_deletes_the_pool",),
    ),
    # the compiled engine
    Mutation(
        "parity-gate-open",
        "worker_image/retail_scoring/packages/gbm/compiled.py",
        "    return np.flatnonzero(expected.view(np.uint64) != np.asarray(found, dtype=np.float64).view(np.uint64))",
        "    return np.flatnonzero(~np.isclose(expected, found, rtol=1e-9, atol=0))",
        (
            "tests/worker/test_compiled_engine.py::test_the_comparison_behind_both_gates_counts_a_one_ulp_difference",
            "tests/worker/test_compiled_engine.py::test_the_self_check_refuses_a_library_off_by_one_ulp",
        ),
    ),
    Mutation(
        "quickscorer-ties-go-left",
        "worker_image/retail_scoring/packages/gbm/quickscorer.c",
        "if (value < thresholds[middle]) {",
        "if (value <= thresholds[middle]) {",
        ("tests/worker/test_compiled_engine.py::test_packaging_compiles_every_model_and_seals_the_libraries",),
    ),
    Mutation(
        "stale-engine-accepted",
        "worker_image/retail_scoring/packages/gbm/kind.py",
        "            if set(compiled) != {entry.name for entry in entries} or stale:",
        "            if False:",
        ("tests/worker/test_compiled_engine.py::test_a_compiled_engine_left_from_other_model_files_is_refused",),
    ),
    Mutation(
        "compiled-engine-takes-nan",
        "worker_image/retail_scoring/packages/gbm/compiled.py",
        "        if np.isnan(features).any():",
        "        if False:",
        ("tests/worker/test_compiled_engine.py::test_the_compiled_engine_refuses_rows_with_missing_values",),
    ),
    # atomic writes
    Mutation(
        "write-in-place",
        "worker_image/retail_scoring/storage.py",
        "        fs.pipe_file(temporary, data)\n        fs.mv(temporary, path)",
        "        fs.pipe_file(path, data)",
        ("tests/worker/test_storage.py",),
    ),
    Mutation(
        "temporary-left-on-failure",
        "worker_image/retail_scoring/storage.py",
        "    try:\n        fs.pipe_file(temporary, data)\n        fs.mv(temporary, path)\n    finally:",
        "    fs.pipe_file(temporary, data)\n    try:\n        fs.mv(temporary, path)\n    finally:",
        ("tests/worker/test_storage.py",),
    ),
    # input checks
    Mutation(
        "sorted-fast-path-accepts-repeats",
        "worker_image/retail_scoring/data/tables.py",
        "((store == 0) & (week > 0))",
        "((store == 0) & (week >= 0))",
        ("tests/worker/test_tables.py",),
    ),
    Mutation(
        "duplicate-check-skipped",
        "worker_image/retail_scoring/data/tables.py",
        "    if not is_sorted_by_row_key(frame):  # rows",
        "    if False:  # rows",
        ("tests/worker/test_tables.py",),
    ),
    Mutation(
        "checksum-not-verified",
        "worker_image/retail_scoring/packages/base.py",
        "if found != digest:",
        "if False:",
        ("tests/worker/test_committed_models.py",),
    ),
    # forecast validation
    *(
        Mutation(
            f"validation-{name}",
            "worker_image/retail_scoring/run/forecast_checks.py",
            check,
            "if False:",
            ("tests/worker/test_forecast_checks.py",),
        )  # fmt: skip
        for name, check in [
            ("row-count", "if len(frame) != n_series * horizon:"),
            ("duplicates", "if frame.duplicated(list(ROW_KEY)).any():"),
            ("weeks", "if wrong_weeks:"),
            ("series", "if (weeks_per_series != horizon).any() or len(weeks_per_series) != n_series:"),
            ("nan", "if np.isnan(quantiles).any():"),
            ("negative", "if output.non_negative and (quantiles < 0).any():"),
            ("crossing", "if (np.diff(quantiles, axis=1) < 0).any():"),
            ("origin", 'if not (frame["forecast_origin"] == origin).all():'),
            ("model-version", 'if not (frame["model_version"] == model_version).all():'),
        ]
    ),
    # model packages: contracts, dependencies, R errors
    Mutation(
        "package-result-unchecked",
        "worker_image/retail_scoring/run/scoring.py",
        "return frame, check_forecast(frame, len(planned), origin, package.version, planned=planned, output=output)",
        "return frame, []",
        ("tests/worker/test_r_script_packages.py",),
    ),
    Mutation(
        "quantiles-not-sorted",
        "worker_image/retail_scoring/run/scoring.py",
        'quantiles = np.sort(scored[list(output.columns)].to_numpy(dtype="float64"), axis=1)',
        'quantiles = scored[list(output.columns)].to_numpy(dtype="float64")',
        (
            "tests/worker/test_r_script_packages.py::test_crossing_quantiles_from_a_package_are_sorted_so_they_never_cross",
        ),
    ),
    Mutation(
        "input-contract-unchecked",
        "worker_image/retail_scoring/packages/base.py",
        "            if column not in column_kinds:",
        "            if False:",
        ("tests/worker/test_r_script_packages.py", "tests/airflow/test_model_packages.py"),
    ),
    Mutation(
        "r-dependencies-unchecked",
        "worker_image/retail_scoring/packages/base.py",
        "        if version is None:",
        "        if False:",
        ("tests/worker/test_r_script_packages.py", "tests/airflow/test_model_packages.py"),
    ),
    Mutation(
        "r-error-not-reported",
        "worker_image/retail_scoring/packages/rscript.py",
        'if "error" not in list(result.names):',
        "if True:",
        ("tests/worker/test_r_script_packages.py",),
    ),
    Mutation(
        "validation-fast-path-trusts-row-count",
        "worker_image/retail_scoring/data/tables.py",
        "return all(np.array_equal(frame[column].to_numpy(), values) for column, values in expected.items())",
        "return True",
        ("tests/worker/test_forecast_checks.py",),
    ),
    # hardening: identifiers, pins, params, inputs, validation, grants, healing
    Mutation(
        "identifier-allows-separators",
        "worker_image/retail_scoring/layout.py",
        'IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")',
        'IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")',
        ("tests/airflow/test_planning.py",),
    ),
    Mutation(
        "run-ids-without-hash",
        "plugins/scoring_airflow/planning.py",
        '    return f"{readable}-{hashlib.sha256(original.encode()).hexdigest()[:16]}"',
        "    return readable",
        ("tests/airflow/test_planning.py",),
    ),
    Mutation(
        "integer-params-take-floats",
        "plugins/scoring_airflow/planning.py",
        "if isinstance(value, bool) or not isinstance(value, int):",
        "if isinstance(value, bool):",
        ("tests/airflow/test_planning.py",),
    ),
    Mutation(
        "zero-param-replaced-by-default",
        "plugins/scoring_airflow/planning.py",
        "return default if value is None else value",
        "return value or default",
        ("tests/airflow/test_planning.py",),
    ),
    Mutation(
        "sku-owners-unchecked",
        "plugins/scoring_airflow/planning.py",
        "    if not repeated.empty:",
        "    if False:",
        ("tests/airflow/test_planning.py",),
    ),
    Mutation(
        "model-pin-ignored",
        "worker_image/retail_scoring/packages/base.py",
        "if pinned_sha256 and manifest_sha256 != pinned_sha256:",
        "if False:",
        ("tests/worker/test_cli_errors.py::test_a_model_set_changed_since_the_run_was_planned_is_refused",),
    ),
    Mutation(
        "upload-replaces-silently",
        "worker_image/retail_scoring/packages/base.py",
        "    if stored != manifest_bytes and not replace:",
        "    if stored != manifest_bytes and False:",
        ("tests/worker/test_cli_errors.py::test_a_stored_model_set_is_replaced_only_when_asked",),
    ),
    Mutation(
        "inputs-may-be-infinite",
        "worker_image/retail_scoring/data/tables.py",
        "lambda values: ~(np.abs(values) <= MAX_PLAUSIBLE_VALUE)",
        "lambda values: np.isnan(values)",
        ("tests/worker/test_bad_input.py",),
    ),
    Mutation(
        "base-sku-unchecked",
        "worker_image/retail_scoring/data/product_input.py",
        "    check_base_sku_per_sku(history, futurex, both_tables)",
        "    pass",
        ("tests/worker/test_bad_input.py",),
    ),
    Mutation(
        "validation-foreign-series",
        "worker_image/retail_scoring/run/forecast_checks.py",
        "    if planned is not None:",
        "    if False:",
        ("tests/worker/test_forecast_checks.py", "tests/airflow/test_operators.py"),
    ),
    Mutation(
        "validation-infinite",
        "worker_image/retail_scoring/run/forecast_checks.py",
        "if np.isinf(quantiles).any():",
        "if False:",
        ("tests/worker/test_forecast_checks.py", "tests/airflow/test_operators.py"),
    ),
    Mutation(
        "validation-magnitude",
        "worker_image/retail_scoring/run/forecast_checks.py",
        "    if history_peak is not None:",
        "    if False:",
        ("tests/worker/test_forecast_checks.py", "tests/airflow/test_operators.py"),
    ),
    Mutation(
        "task-may-write-the-container",
        "plugins/scoring_airflow/blob.py",
        "READ_PERMISSIONS = ContainerSasPermissions(read=True, list=True)",
        "READ_PERMISSIONS = ContainerSasPermissions(read=True, list=True, write=True, create=True)",
        (
            "tests/airflow/test_dag_on_azure_batch.py::"
            "test_a_task_can_read_the_container_and_write_only_its_own_outputs_until_its_job_ends",
        ),
    ),
    Mutation(
        "disk-full-is-a-crash",
        "worker_image/retail_scoring/storage.py",
        "UNAVAILABLE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}",
        "UNAVAILABLE_ERRNOS = set()",
        ("tests/airflow/test_faults.py::test_a_full_disk_exits_3_leaves_no_temporary_file_and_the_pool_retries",),
    ),
    Mutation(
        "local-pool-ignores-its-lease",
        "plugins/scoring_airflow/compute/local_pool.py",
        "if not running and lease_expired(pool, lease_s):",
        "if False:",
        ("tests/airflow/test_local_backend.py::test_an_idle_pool_whose_owner_is_gone_stops_within_its_lease",),
    ),
    Mutation(
        "expired-batch-pools-kept",
        "plugins/scoring_airflow/compute/azure_batch.py",
        "        self._delete_expired_pools()\n",
        "",
        (
            "tests/airflow/test_dag_on_azure_batch.py::test_our_pools_past_their_lifetime_are_deleted_by_the_next_run_and_no_one_elses",
        ),
    ),
    # integrity: what is published is what was scored
    Mutation(
        "summary-pins-ignored",
        "plugins/scoring_airflow/partitions.py",
        "        if distrust:",
        "        if False:",
        ("tests/airflow/test_operators.py",),
    ),
    Mutation(
        "package-content-ignored",
        "plugins/scoring_airflow/partitions.py",
        "    if summary.package_sha256 != package_sha256:",
        "    if False:",
        ("tests/airflow/test_operators.py",),
    ),
    Mutation(
        "publish-without-recheck",
        "plugins/scoring_airflow/publishing.py",
        '    if found := problem_list(problems):\n        raise ValidationFailed("changed since validation',
        '    if False:\n        raise ValidationFailed("changed since validation',
        ("tests/airflow/test_operators.py",),
    ),
    Mutation(
        "current-forecast-is-the-newest-run",
        "plugins/scoring_airflow/publishing.py",
        '        return {"products": {**products, **replaced}}',
        '        return {"products": replaced}',
        (
            "tests/airflow/test_publishing.py::test_a_run_at_a_newer_origin_changes_only_its_products_in_the_current_forecast",
        ),
    ),
    Mutation(
        "compiled-self-check-skipped",
        "worker_image/retail_scoring/packages/gbm/kind.py",
        "            check_self(folder, predictors, {entry.name: list(entry.features) for entry in entries})\n",
        "",
        ("tests/worker/test_compiled_engine.py::test_a_worker_refuses_a_compiled_library_swapped_for_another_models",),
    ),
    Mutation(
        "catalogue-sources-ignored",
        "worker_image/retail_scoring/data/catalogue.py",
        '    if json.loads(entry["sources"]).get(url.rsplit("/", 1)[-1]) != storage.identity(url):',
        "    if False:",
        ("tests/worker/test_catalogue.py",),
    ),
    Mutation(
        "catalogue-skus-ignored",
        "worker_image/retail_scoring/data/catalogue.py",
        "    if len(foreign):",
        "    if False:",
        ("tests/worker/test_catalogue.py",),
    ),
    Mutation(
        "catalogue-week-ignored",
        "worker_image/retail_scoring/data/catalogue.py",
        "    if built_at != sales_through:",
        "    if False:",
        ("tests/worker/test_catalogue.py",),
    ),
    Mutation(
        "write-grants-never-revoked",
        "plugins/scoring_airflow/compute/azure_batch.py",
        "        revoke_write_grants(self.wasb_conn_id, container_of(self.storage_root), job_id)\n",
        "",
        (
            "tests/airflow/test_dag_on_azure_batch.py::"
            "test_a_task_can_read_the_container_and_write_only_its_own_outputs_until_its_job_ends",
        ),
    ),
    # availability and hostile input
    Mutation(
        "progress-read-fails-the-trigger",
        "plugins/scoring_airflow/triggers.py",
        "            except StorageUnavailableError as error:  # progress is informative: the job goes on\n"
        '                self._outage.failed(error, "following the scoring job")\n'
        "                return lines\n",
        "",
        (
            "tests/airflow/test_faults.py::test_a_storage_outage_longer_than_the_clients_retries_is_waited_out_by_the_run",
        ),
    ),
    Mutation(
        "outage-deadline-ignored",
        "plugins/scoring_airflow/outages.py",
        "        elif now - self.since > self.deadline_s:",
        "        elif False:",
        ("tests/airflow/test_faults.py::test_an_outage_past_the_deadline_fails_saying_since_when",),
    ),
    Mutation(
        "typed-ranges-expanded",
        "plugins/scoring_airflow/planning.py",
        "            if low > high:",
        "            if False:",
        ("tests/airflow/test_planning.py",),
    ),
    Mutation(
        "pages-unescaped",
        "plugins/scoring_airflow/outputs_app.py",
        "PAGE = Environment(autoescape=True)",
        "PAGE = Environment(autoescape=False)",
        ("tests/airflow/test_outputs.py",),
    ),
    Mutation(
        "dead-workers-scratch-kept",
        "worker_image/retail_scoring/packages/base.py",
        "    remove_scratch_of_dead_workers()\n",
        "",
        ("tests/worker/test_scratch.py",),
    ),
    Mutation(
        "sigterm-skips-cleanup",
        "worker_image/retail_scoring/cli.py",
        "    signal.signal(signal.SIGTERM, _exit_on_terminate)\n",
        "",
        ("tests/worker/test_scratch.py",),
    ),
    Mutation(
        "unlisted-source-allowed",
        "worker_image/retail_scoring/packages/rscript.py",
        "    if (!(basename(file) %in% allowed) || !file.exists(file))",
        "    if (FALSE)",
        ("tests/worker/test_r_script_packages.py",),
    ),
    # Batch submission, restarts, report figures
    Mutation(
        "task-refusal-ignored",
        "plugins/scoring_airflow/compute/azure_batch.py",
        'rejected = [r for r in result.result_values or [] if r.status != "success"]',
        "rejected = []",
        ("tests/airflow/test_dag_on_azure_batch.py::test_a_task_the_service_refuses_as_existing_fails_the_submission",),
    ),
    Mutation(
        "retry-taken-for-restart",
        "plugins/scoring_airflow/triggers.py",
        "if previous is not None and previous[0] == status.attempts:",
        "if previous is not None:",
        ("tests/airflow/test_triggers.py",),
    ),
    Mutation(
        "in-sample-ignores-windows-start",
        "worker_image/retail_scoring/run/accuracy.py",
        "return IN_SAMPLE if origin + 1 <= last and origin + horizon >= first else OUT_OF_SAMPLE",
        "return IN_SAMPLE if origin + 1 <= last else OUT_OF_SAMPLE",
        ("tests/airflow/test_report.py",),
    ),
    Mutation(
        "comparison-keeps-in-sample-runs",
        "plugins/scoring_airflow/report.py",
        "compared = at_origin[out_of_sample & same_products]",
        "compared = at_origin[same_products]",
        ("tests/airflow/test_report.py",),
    ),
    Mutation(
        "comparison-mixes-product-sets",
        "plugins/scoring_airflow/report.py",
        "compared = at_origin[out_of_sample & same_products]",
        "compared = at_origin[out_of_sample]",
        ("tests/airflow/test_report.py",),
    ),
    Mutation(
        "cost-ignores-pool-size",
        "plugins/scoring_airflow/report.py",
        "node_hours = plan.pool_size * span_s / 3600",
        "node_hours = span_s / 3600",
        ("tests/airflow/test_report.py",),
    ),
    Mutation(
        "accuracy-rerun-appends",
        "plugins/scoring_airflow/report.py",
        'layout.run_accuracy(accuracy["run_id"])',
        'layout.run_accuracy(accuracy["run_id"] + str(id(accuracy)))',  # a new record per call
        ("tests/airflow/test_report.py",),
    ),
    Mutation(
        "calibration-pin-ignored",
        "worker_image/retail_scoring/run/calibration.py",
        "    if pinned_sha256 is not None and sha256 != pinned_sha256:",
        "    if False:",
        ("tests/worker/test_calibration.py::test_a_calibration_file_is_read_only_as_pinned",),
    ),
    Mutation(
        "calibration-before-its-actuals",
        "plugins/scoring_airflow/planning.py",
        "    if origin < usable_from:",
        "    if False:",
        ("tests/airflow/test_planning.py::test_a_calibration_is_pinned_in_the_plan_and_refused_for_earlier_origins",),
    ),
    Mutation(
        "calibrated-quantiles-cross",
        "worker_image/retail_scoring/run/calibration.py",
        "np.sort(moved, axis=1).T",
        "moved.T",
        ("tests/worker/test_calibration.py::test_calibrated_quantiles_never_cross_even_when_shifts_would_cross_them",),
    ),
    Mutation(
        "backtest-compares-in-sample",
        "plugins/scoring_airflow/backtest.py",
        "{o for o, result in package.origins.items() if result.sample == OUT_OF_SAMPLE and result.complete}",
        "{o for o, result in package.origins.items() if result.complete}",
        ("tests/airflow/test_backtest.py::test_packages_are_compared_only_at_origins_all_forecast_out_of_sample",),
    ),
    Mutation(
        "calibration-learns-in-sample",
        "plugins/scoring_airflow/backtest.py",
        "    return sorted(o for o, result in results.items() if result.sample == OUT_OF_SAMPLE and result.complete)",
        "    return sorted(o for o, result in results.items() if result.complete)",
        ("tests/airflow/test_backtest.py::test_a_backtest_compares_out_of_sample_and_calibrates_a_weekly_run",),
    ),
    Mutation(
        "scenario-declared-types-unchecked",
        "worker_image/retail_scoring/scenarios/table.py",
        "    if not _ARROW_TYPES[column.type](values.type):\n",
        "    if False:\n",
        (
            "tests/worker/test_scenario_scoring.py::test_rows_that_break_the_declarations_are_refused_naming_column_key_and_rule",
            "tests/worker/test_scenario_scoring.py::test_bad_output_and_r_errors_are_refused_naming_the_shard",
        ),
    ),
    Mutation(
        "scenario-levels-unchecked",
        "worker_image/retail_scoring/scenarios/table.py",
        "    if column.levels is not None:\n",
        "    if False:\n",
        (
            "tests/worker/test_scenario_scoring.py::test_a_level_unseen_in_the_declaration_is_refused_naming_the_customer",
        ),
    ),
    Mutation(
        "scenario-nulls-allowed",
        "worker_image/retail_scoring/scenarios/table.py",
        "    if not column.nullable:\n",
        "    if False:\n",
        (
            "tests/worker/test_scenario_scoring.py::test_rows_that_break_the_declarations_are_refused_naming_column_key_and_rule",
        ),
    ),
    Mutation(
        "scenario-duplicate-keys-allowed",
        "worker_image/retail_scoring/scenarios/table.py",
        "    if duplicated is not None:\n",
        "    if False:\n",
        (
            "tests/worker/test_scenario_scoring.py::test_rows_that_break_the_declarations_are_refused_naming_column_key_and_rule",
        ),
    ),
    Mutation(
        "scenario-output-row-count-unchecked",
        "worker_image/retail_scoring/scenarios/scoring.py",
        "    if returned_rows != rows:\n",
        "    if False:\n",
        ("tests/worker/test_scenario_scoring.py::test_bad_output_and_r_errors_are_refused_naming_the_shard",),
    ),
    Mutation(
        "scenario-returned-keys-unchecked",
        "worker_image/retail_scoring/scenarios/scoring.py",
        "        if name in returned and not _same_values(",
        "        if False and not _same_values(",
        ("tests/worker/test_scenario_scoring.py::test_bad_output_and_r_errors_are_refused_naming_the_shard",),
    ),
    Mutation(
        "scenario-output-unchecked",
        "worker_image/retail_scoring/scenarios/scoring.py",
        "    output = checked_table(output, scenario.output.columns, key,",
        "    output = checked_table(output, {}, key,",
        ("tests/worker/test_scenario_scoring.py::test_bad_output_and_r_errors_are_refused_naming_the_shard",),
    ),
    Mutation(
        "scenario-profile-unchecked",
        "worker_image/retail_scoring/scenarios/document.py",
        "profile.problems(columns, scenario.output.columns)]",
        "[]]",
        ("tests/worker/test_scenario_document.py",),
    ),
    Mutation(
        "scenario-current-by-publish-order",
        "worker_image/retail_scoring/scenarios/current.py",
        '(version, "descending"), ("_published", "descending")',
        '("_published", "descending")',
        (
            "tests/worker/test_scenario_current.py",
            "tests/airflow/test_scenario_dag.py::"
            "test_monthly_snapshots_publish_each_customers_newest_score_and_a_backfill_changes_nothing",
        ),
    ),
    Mutation(
        "scenario-csv-types-guessed",
        "worker_image/retail_scoring/scenarios/shards.py",
        '    if dataset.format == "csv":\n',
        "    if False:\n",
        (
            "tests/worker/test_scenario_scoring.py::test_a_csv_value_of_another_type_is_refused_naming_the_file_and_column",
        ),
    ),
    Mutation(
        "scenario-every-column-reaches-r",
        "worker_image/retail_scoring/scenarios/scoring.py",
        "for name in model.input}",
        "for name in columns}",
        ("tests/worker/test_scenario_scoring.py::test_a_shard_reaches_r_as_declared_and_scores_as_r_predict_does",),
    ),
    Mutation(
        "scenario-package-column-types-unchecked",
        "worker_image/retail_scoring/scenarios/package.py",
        "            elif declared.type != kind:",
        "            elif False:",
        ("tests/worker/test_scenario_package.py",),
    ),
    # Scenario runs (issue 34): the run's contract, validation and publishing
    Mutation(
        "read-pinned-unchecked",
        "worker_image/retail_scoring/storage.py",
        "    if sha256_hex(data) != sha256:\n        raise ContentChangedError(",
        "    if False:\n        raise ContentChangedError(",
        ("tests/worker/test_storage.py::test_a_pinned_read_gives_the_recorded_content_and_refuses_any_other",),
    ),
    Mutation(
        "scenario-copy-unpinned",
        "worker_image/retail_scoring/scenarios/task.py",
        'storage.read_pinned(plan.scenario_url, plan.scenario_sha256, "when the run was planned")',
        "storage.read_bytes(plan.scenario_url)",
        (
            "tests/airflow/test_scenario_planning.py::test_a_scenario_copy_changed_since_planning_is_refused_by_the_worker",
        ),
    ),
    Mutation(
        "scenario-manifest-coverage-unchecked",
        "worker_image/retail_scoring/run/contract.py",
        "        if numbers != list(range(len(shards))) or counts",
        "        if counts",
        ("tests/airflow/test_scenario_planning.py::test_a_manifest_leaving_a_shard_to_no_partition_is_refused",),
    ),
    Mutation(
        "scenario-package-misfit-ignored",
        "plugins/scoring_airflow/scenario_planning.py",
        "    problems = manifest.misfit(scenario)\n",
        "    problems = []\n",
        (
            "tests/airflow/test_scenario_planning.py::test_a_package_that_does_not_fit_is_refused_before_any_pool_naming_it",
        ),
    ),
    Mutation(
        "scenario-summary-package-unchecked",
        "plugins/scoring_airflow/scenario_validation.py",
        "    if summary.package_sha256 != plan.model_manifest_sha256:",
        "    if False:",
        ("tests/airflow/test_scenario_planning.py::test_a_summary_vouches_for_its_shards_only_when_it_is_the_runs",),
    ),
    Mutation(
        "scenario-summary-shards-unchecked",
        "plugins/scoring_airflow/scenario_validation.py",
        "    if summary.shards != manifest.partitions[partition]:",
        "    if False:",
        ("tests/airflow/test_scenario_planning.py::test_a_summary_vouches_for_its_shards_only_when_it_is_the_runs",),
    ),
    Mutation(
        "scenario-shard-failures-ignored",
        "plugins/scoring_airflow/scenario_validation.py",
        "        if str(number) in summary.failures:",
        "        if False:",
        ("tests/airflow/test_scenario_planning.py::test_a_summary_vouches_for_its_shards_only_when_it_is_the_runs",),
    ),
    Mutation(
        "scenario-output-identity-unchecked",
        "plugins/scoring_airflow/scenario_validation.py",
        "        elif not storage.matches_record(url, identity, written):",
        "        elif False:",
        ("tests/airflow/test_scenario_planning.py::test_an_output_written_again_after_its_task_is_refused",),
    ),
    Mutation(
        "scenario-repeated-keys-published",
        "plugins/scoring_airflow/scenario_publishing.py",
        "    if len(repeated):",
        "    if False:",
        ("tests/airflow/test_scenario_planning.py::test_two_results_for_one_customer_are_refused_before_publishing",),
    ),
    Mutation(
        "scenario-null-level-refused",
        "worker_image/retail_scoring/scenarios/table.py",
        "pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=pa.array(column.levels))))",
        "pc.invert(pc.is_in(values, value_set=pa.array(column.levels)))",
        ("tests/worker/test_scenario_scoring.py::test_a_null_in_a_nullable_categorical_is_kept_as_null",),
    ),
    Mutation(
        "scenario-validate-skipped-after-failed-score",
        "plugins/scoring_airflow/run_kinds.py",
        "    validates_failed_scoring = True",
        "    validates_failed_scoring = False",
        (
            "tests/airflow/test_dag_import.py::test_a_scenario_dag_is_built_from_its_document_with_the_weekly_runs_chain",
            "tests/airflow/test_scenario_dag.py::"
            "test_bad_shards_are_named_with_their_rule_and_nothing_of_the_run_is_published",
        ),
    ),
    Mutation(
        "scenario-report-for-any-dags-readers",
        "plugins/scoring_airflow/outputs_app.py",
        "    if storage_run_id(dag_id, plan.airflow_run_id) != run_id:",
        "    if False:",
        (
            "tests/airflow/test_scenario_dag.py::"
            "test_the_report_link_leads_to_the_runs_report_for_the_scenario_dags_readers_only",
        ),
    ),
    Mutation(
        "scenario-publish-drops-current",
        "plugins/scoring_airflow/scenario_publishing.py",
        "        table = newest_per_key(current, output, key, version)",
        "        table = newest_per_key(current.slice(0, 0), output, key, version)",
        (
            "tests/airflow/test_scenario_dag.py::test_monthly_snapshots_publish_each_customers_newest_score_and_a_backfill_changes_nothing",
        ),
    ),
]


def scratch_copy(target: Path) -> None:
    """The working tree's files (tracked or new, not ignored), plus links to the installed tools."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".local").mkdir()
    (target / ".local" / "azurite").symlink_to(PROJECT / ".local" / "azurite")
    migrated = PROJECT / ".local" / "airflow-test" / "airflow.db"  # saves each run a migration
    if migrated.exists():
        (target / ".local" / "airflow-test").mkdir()
        shutil.copy2(migrated, target / ".local" / "airflow-test" / "airflow.db")
    (target / ".venv").symlink_to(PROJECT / ".venv")


def apply(mutation: Mutation, tree: Path) -> None:
    path = tree / mutation.file
    text = path.read_text()
    count = text.count(mutation.original)
    if count != 1:
        raise ValueError(f"{mutation.name}: {mutation.file} holds the original text {count} times, not once")
    path.write_text(text.replace(mutation.original, mutation.mutated))


def run_tests(mutation: Mutation, tree: Path) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "PYTHONPATH": f"{tree / 'plugins'}:{tree / 'worker_image'}:{tree}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(tree / "dags"),
    }
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutation.tests]
    return subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True)


def check(mutation: Mutation) -> str:
    with tempfile.TemporaryDirectory(prefix=f"mutation-{mutation.name}-") as scratch:
        tree = Path(scratch)
        scratch_copy(tree)
        apply(mutation, tree)
        result = run_tests(mutation, tree)
    if result.returncode == 1:
        return "caught"
    if result.returncode == 0:
        return "SURVIVED"
    return f"ERROR (pytest exit {result.returncode}): {result.stdout[-600:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutations to check (default: all)")
    args = parser.parse_args()
    unknown = set(args.names) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutations {sorted(unknown)}; known: {[m.name for m in MUTATIONS]}")
    chosen = [m for m in MUTATIONS if not args.names or m.name in args.names]
    outcomes = {}
    for mutation in chosen:
        started = time.monotonic()
        try:
            outcomes[mutation.name] = check(mutation)
        except ValueError as error:
            outcomes[mutation.name] = f"ERROR: {error}"
        print(f"{mutation.name:36} {outcomes[mutation.name]}  ({time.monotonic() - started:.0f} s)", flush=True)
    survivors = [name for name, outcome in outcomes.items() if outcome != "caught"]
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} mutations caught; not caught: {survivors or 'none'}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
