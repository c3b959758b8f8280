"""The main job's Airflow takes the usual port, or the next free one when another Airflow has it."""

import importlib.util
import socket
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "free_port", Path(__file__).resolve().parents[1] / "scripts" / "free_port.py"
)
free_port = importlib.util.module_from_spec(spec)
spec.loader.exec_module(free_port)


def test_a_taken_port_is_skipped_for_the_next_free_one():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert free_port.free_port(port) > port
    assert free_port.free_port(port) == port, "free again once its listener is gone"
