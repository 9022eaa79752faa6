"""Shared test fixtures: ``run_plugin`` runs pytest in a subprocess with the infer-bench plugin."""

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_plugin(pytester, monkeypatch):
    """pytest in a fresh subprocess in pytester's folder, with the infer-bench plugin and the
    project importable by it and its workers (PYTHONPATH)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return lambda *args: pytester.runpytest_subprocess("-p", "harness.plugin.hooks", "-p", "no:cacheprovider", *args)
