"""The pytest plugin: hooks (wiring), session (the run's state and steps), options, and bridge
(all pytest-benchmark private API)."""
