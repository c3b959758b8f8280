"""How the embedded R session starts: each case in a fresh Python, since R starts once per process."""

import os
import subprocess
import sys

VECTOR_HEAP_TRIGGER_MB = "from retail_scoring import rsession; print(rsession.r_eval('gc()[2, 4]')[0])"


def vector_heap_trigger_mb(**environment: str) -> float:
    env = {key: value for key, value in os.environ.items() if key not in ("R_VSIZE", "R_NSIZE")}
    result = subprocess.run(
        [sys.executable, "-c", VECTOR_HEAP_TRIGGER_MB],
        env={**env, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def test_r_starts_with_a_heap_that_holds_a_model_set_without_collecting():
    assert vector_heap_trigger_mb() == 512


def test_the_environment_sets_the_r_heap_when_it_says_so():
    assert vector_heap_trigger_mb(R_VSIZE="64M") == 64
