"""The sequential design behind ``--until-decided``: pure functions, no I/O."""

from __future__ import annotations

DEFAULT_BUDGET_MINUTES = 10.0
