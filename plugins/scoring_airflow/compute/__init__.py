"""Compute backends behind one pool/job/task interface; the operator never asks which it has."""

from scoring_airflow.compute.base import ComputeBackend, ScoringTask, TaskStatus

BACKENDS = ("local", "azure_batch")


def backend_for(name: str, config: dict) -> ComputeBackend:
    """Build a backend from its name and a JSON-safe config (what a trigger can carry)."""
    if name == "local":
        from scoring_airflow.compute.local import LocalBackend

        return LocalBackend(**config)
    if name == "azure_batch":
        from scoring_airflow.compute.azure_batch import AzureBatchBackend

        return AzureBatchBackend(**config)
    raise ValueError(f"unknown compute backend {name!r}; available: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "ComputeBackend", "ScoringTask", "TaskStatus", "backend_for"]
