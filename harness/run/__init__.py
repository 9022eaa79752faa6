"""Running cells: the worker (compile, parity, timing) in a fresh process, and the parent side
that starts, schedules and reads it."""
