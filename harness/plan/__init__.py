"""What to measure: matrix points (cells), their expansion and ids, targets, and which cells can run here."""
