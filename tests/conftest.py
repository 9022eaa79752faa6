"""Shared test fixtures: ``run_plugin`` runs pytest in a subprocess with the infer-bench plugin.

Hypothesis runs without its per-example deadline: tests check behaviour, and a deadline makes the
outcome depend on the machine's load (an example of test_round_count_matches_pytest_benchmark took
297 ms once, 144 ms on the rerun, on the 2-core machines)."""

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("infer-bench", deadline=None)
settings.load_profile("infer-bench")

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_plugin(pytester, monkeypatch):
    """pytest in a fresh subprocess in pytester's folder, with the infer-bench plugin and the
    project importable by it and its workers (PYTHONPATH)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return lambda *args: pytester.runpytest_subprocess("-p", "harness.plugin.hooks", "-p", "no:cacheprovider", *args)
