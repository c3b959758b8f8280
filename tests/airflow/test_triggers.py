"""How the trigger tells a task the pool restarted (a preempted spot node) from a retry, and how it
reports the partitions' progress."""

import json

from scoring_airflow.compute import TaskStatus
from scoring_airflow.triggers import RestartWatch


def running(attempts: int, started_at: float, state: str = "running") -> list[TaskStatus]:
    return [TaskStatus("p0", state, attempts=attempts, started_at=started_at)]


def test_a_new_start_with_the_same_attempt_count_is_a_restart_by_the_pool():
    watch = RestartWatch()
    assert watch.observe(running(1, 100.0)) == []
    assert watch.observe(running(1, 100.0)) == []
    assert watch.observe(running(1, 160.0)) == ["p0"]
    (status,) = [watch.annotate(s) for s in running(1, 160.0, "succeeded")]
    assert status.detail.startswith("restarted 1x by the pool without a failed attempt")


def test_a_retry_is_not_a_restart_even_when_its_count_moves_before_it_starts():
    watch = RestartWatch()
    watch.observe(running(1, 100.0))
    assert watch.observe(running(2, 100.0, "pending")) == [], "retry counted, not started yet"
    assert watch.observe(running(2, 130.0)) == []
    assert watch.observe(running(3, 170.0)) == []
    assert watch.annotate(running(3, 170.0)[0]).detail == ""


def test_a_retried_attempt_preempted_later_is_a_restart():
    watch = RestartWatch()
    watch.observe(running(1, 100.0))
    watch.observe(running(2, 130.0))
    assert watch.observe(running(2, 190.0)) == ["p0"]


def test_progress_logs_each_partition_as_its_progress_file_moves(tmp_path):
    from retail_scoring import storage
    from retail_scoring.layout import StorageLayout
    from scoring_airflow.triggers import PartitionProgress

    layout = StorageLayout(f"file://{tmp_path}")
    progress = PartitionProgress.from_dict(
        PartitionProgress(layout.root, "run-1", {"p0": 45, "p1": 40}).to_dict()  # as the triggerer rebuilds it
    )

    def written(partition: str, done: int, total: int) -> None:
        url = layout.task_progress("run-1", partition)
        storage.write_bytes_atomic(url, json.dumps({"done": done, "total": total}).encode())

    assert progress.changes(["p0", "p1"]) == [], "no progress file yet: nothing written"
    written("p0", 15, 45)
    assert progress.changes(["p0", "p1"]) == ["p0: 15/45 products written (overall 15/85)"]
    assert progress.changes(["p0", "p1"]) == [], "unchanged: not logged again"
    written("p0", 45, 45)
    written("p1", 30, 40)
    assert progress.changes(["p0", "p1"]) == [
        "p0: 45/45 products written (overall 45/85)",
        "p1: 30/40 products written (overall 75/85)",
    ]
    storage.write_bytes_atomic(layout.task_progress("run-1", "p1"), b'{"do')  # torn: read again next poll
    assert progress.changes(["p1"]) == []
