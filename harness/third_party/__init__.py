"""Code of maintained projects that cannot be installed beside the locked environment, kept
unmodified apart from its import paths (``tests/test_change_points.py`` checks every file against
the hashes its release published)."""
