"""infer-bench: a pytest-based benchmark and regression harness for deep-learning inference.

Data flows one way: matrix -> cell -> models -> backends -> worker (compile, parity, timing)
-> launcher (process isolation) -> plugin (pytest-benchmark stats) -> baselines/ -> reports.

This package must stay import-light: worker processes import it *before* any runtime so that
thread settings in the environment take effect.
"""

__version__ = "0.1.0"
SCHEMA_VERSION = 1  # version of the JSON messages exchanged with worker processes
