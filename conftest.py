"""Root conftest: activates the infer-bench pytest plugin for suites/ and tests/."""

pytest_plugins = ["harness.plugin.hooks"]
