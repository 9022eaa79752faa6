"""From samples to verdicts: statistics, one cell's verdict, and the comparison of a run with a baseline."""
