"""Compute backends behind one pool/job/task interface; nobody else asks which one it has.

A backend is a module with a ComputeBackend class and one line in BACKENDS (imported when first
used: the local backend's runs never import the Azure SDKs).
"""

from importlib import import_module

from scoring_airflow.compute.base import ComputeBackend, ComputeError, ScoringTask, TaskStatus
from scoring_airflow.settings import ForecastSettings

BACKENDS = {
    "local": "scoring_airflow.compute.local:LocalBackend",
    "azure_batch": "scoring_airflow.compute.azure_batch:AzureBatchBackend",
}


def backend_class(name: str) -> type[ComputeBackend]:
    if name not in BACKENDS:
        raise ComputeError(f"unknown compute backend {name!r}; available: {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(import_module(module), cls)


def backend_for(name: str, config: dict) -> ComputeBackend:
    """Rebuild a run's backend from its name and JSON-safe config (what a trigger can carry)."""
    return backend_class(name)(**config)


def backend_for_run(name: str, settings: ForecastSettings, node_settings: dict) -> ComputeBackend:
    """The backend a run plans with (ComputeBackend.for_run)."""
    return backend_class(name).for_run(settings, node_settings)


__all__ = [
    "BACKENDS",
    "ComputeBackend",
    "ComputeError",
    "ScoringTask",
    "TaskStatus",
    "backend_class",
    "backend_for",
    "backend_for_run",
]
