"""The README's power-vs-budget table of --until-decided (harness.compare.sequential), by simulation
under the verdict tests' noise models (tests/test_statistics.py), with the functions the tests use
(tests/test_sequential.py). Seeded: the figures are properties of the code.

    python benchmarks/sequential_power.py [--trials 400] [--matrices N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.compare.verdict import judge  # noqa: E402
from tests.test_sequential import SLOWER, matrix, sequential  # noqa: E402
from tests.test_statistics import side  # noqa: E402

NOISES = ("tight", "unimodal-5.5%", "bimodal-70/30")


def rates(verdicts) -> tuple[float, str]:
    """(share called slower, 'false regressions / regressions or improvements' as text)."""
    n = len(verdicts)
    found = sum(v.verdict in SLOWER for v in verdicts) / n
    regression = sum(v.verdict == "regression" for v in verdicts) / n
    either = sum(v.verdict in ("regression", "improvement") for v in verdicts) / n
    return found, f"{regression:.1%} / {either:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--matrices", type=int, default=None, help="shared-budget matrices (default: trials / 10)")
    args = parser.parse_args()
    trials, matrices = args.trials, args.matrices or max(10, args.trials // 10)
    print(
        "| noise | design | current processes (mean, A/A and +5%) | A/A: regression / regression or improvement "
        "| +5%: found slower |"
    )
    print("|---|---|---|---|---|")
    for noise in NOISES:
        rng = np.random.default_rng(1)
        for n in (3, 10, 27):
            aa = [judge("c", side(rng, noise, 10), side(rng, noise, n)) for _ in range(trials)]
            up = [judge("c", side(rng, noise, 10), side(rng, noise, n, ratio=1.05)) for _ in range(trials)]
            print(f"| {noise} | fixed {n} | {n} | {rates(aa)[1]} | {rates(up)[0]:.1%} |")
        aa = [sequential(rng, noise) for _ in range(trials)]
        up = [sequential(rng, noise, ratio=1.05) for _ in range(trials)]
        used = np.mean([n for _, n in aa + up])
        print(
            f"| {noise} | sequential 3..27, one cell | {used:.1f} | {rates([v for v, _ in aa])[1]} | "
            f"{rates([v for v, _ in up])[0]:.1%} |"
        )
        runs = [matrix(rng, noise) for _ in range(matrices)]
        seq, fixed, used = (float(np.mean([r[i] for r in runs])) for i in range(3))
        print(
            f"| {noise} | 12 cells sharing 10 each (half +5%): sequential / fixed 10 | {used:.1f} | - | "
            f"{seq:.1%} / {fixed:.1%} |"
        )


if __name__ == "__main__":
    main()
