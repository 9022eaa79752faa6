"""How far apart a cell's worker processes land: per cell, the spread of the per-process medians
in one or more saved results (``--benchmark-json`` or ``--benchmark-save`` files).

    python benchmarks/process_spread.py unpinned.json pinned.json

prints, per file and cell: processes, the fastest / median / slowest process median (ms), the
slowest over the fastest, and the robust relative spread (1.4826 MAD / median). Used for the
README's pinned vs unpinned comparison under a background load."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.store.results import load_result, process_samples  # noqa: E402


def spread_rows(path: str) -> list[tuple]:
    rows = []
    for bench in load_result(path)["benchmarks"]:
        groups = process_samples(bench) or []
        medians = sorted(statistics.median(g) for g in groups)
        if len(medians) < 2:
            continue
        mid = statistics.median(medians)
        mad = statistics.median(abs(m - mid) for m in medians) * 1.4826
        rows.append((bench["name"], len(medians), medians[0], mid, medians[-1], medians[-1] / medians[0], mad / mid))
    return rows


def main(paths: list[str]) -> int:
    print("| file | cell | processes | fastest ms | median ms | slowest ms | slowest/fastest | robust spread |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        for name, n, lo, mid, hi, ratio, rel in spread_rows(path):
            ms = [f"{x * 1e3:.3f}" for x in (lo, mid, hi)]
            print("| " + " | ".join(map(str, [path, name, n, *ms, f"{ratio:.3f}", f"{rel:.1%}"])) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
