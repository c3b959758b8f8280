"""How the trigger tells a task the pool restarted (a preempted spot node) from a retry."""

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
