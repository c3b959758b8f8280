"""The mutation check cannot drift silently: every mutation's original text still occurs exactly
once in its file, so each one still mutates the code it was written for."""

import importlib.util
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mutation_check", PROJECT / "scripts" / "mutation_check.py")
mutation_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation_check)


@pytest.mark.parametrize("mutation", mutation_check.MUTATIONS, ids=lambda mutation: mutation.name)
def test_every_mutation_still_applies_to_exactly_one_place(mutation):
    text = (PROJECT / mutation.file).read_text()
    assert text.count(mutation.original) == 1, (
        f"{mutation.file}: the original text occurs {text.count(mutation.original)}x"
    )
    for test in mutation.tests:
        path, _, name = test.partition("::")
        assert (PROJECT / path).exists(), test
        assert not name or f"def {name}(" in (PROJECT / path).read_text(), f"{test}: no such test"


def test_mutation_names_are_unique():
    names = [mutation.name for mutation in mutation_check.MUTATIONS]
    assert len(names) == len(set(names))
