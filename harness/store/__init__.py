"""What is kept: the saved-result format (pytest-benchmark JSON plus infer-bench's parts), the
baselines/ store, atomic writes."""
