"""Compute backends behind one pool/job/task interface; the operator never asks which it has."""

from scoring_airflow.compute.base import ComputeBackend, ScoringTask, TaskStatus


def backend_for(name: str, config: dict) -> ComputeBackend:
    """Build a backend from its name and a JSON-safe config (what a trigger can carry)."""
    if name == "local":
        from scoring_airflow.compute.local import LocalBackend

        return LocalBackend(**config)
    raise ValueError(f"unknown compute backend {name!r}; available: 'local'")


__all__ = ["ComputeBackend", "ScoringTask", "TaskStatus", "backend_for"]
