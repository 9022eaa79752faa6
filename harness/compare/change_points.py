"""Change points in one series of nightly values: E-divisive means with a significance test, as
MongoDB and Apache Otava (formerly Hunter) use it for continuous performance testing, through
Otava's own implementation (harness/third_party/otava: why it is vendored there).

Otava's ``compute_change_points`` splits the series in sliding windows with E-divisive (energy
distance, Matteson & James), keeps candidates a Student's t-test between the neighbouring segments
finds significant at 10x the level, then merges away the weakest until every one left passes
``max_pvalue``. Pure maths: values in, ``Step``s out (no files, no runs).

Measured with ``tests/test_change_points.py``'s generators, 60 nights, 300 series each, window 50:

- false alarms (any change point in a series of pure noise): at ``max_pvalue`` 1e-3 (Otava's
  default) 4.0% of Gaussian 3%-noise series and 6.7% of bimodal ones (a quarter of the nights 6%
  slower, as this machine's processes are); at 1e-4 (``DEFAULT_MAX_PVALUE``) 0.3% and 1.3%;
- a 5% step at night 30 under 3% Gaussian noise: found in 98% of series, at night 30 exactly in
  47%, within two nights in 84%. That is the limit of the data, not of the method: the
  least-squares split (the maximum-likelihood location for a Gaussian step) is exact in 53% and
  within two nights in 87% of such series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_MAX_PVALUE = 1e-4  # Otava's default is 1e-3: 4-7% of 60-night noise series would show a false step
DEFAULT_WINDOW = 50  # Otava's default sliding window (nights)
MIN_NIGHTS = 6  # a segment shorter than this is not searched (a t-test of 3 against 3 nights at the least)


@dataclass(frozen=True)
class Step:
    """A change point: ``index`` is the first value after the change; ``before``/``after`` are the
    means of the segments on either side (up to the neighbouring change points)."""

    index: int
    before: float
    after: float
    pvalue: float

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else float("inf")


def find_steps(
    values: Sequence[float], max_pvalue: float = DEFAULT_MAX_PVALUE, window: int = DEFAULT_WINDOW
) -> list[Step]:
    """The change points of ``values`` (in order), each significant at ``max_pvalue``."""
    if not 0 < max_pvalue < 1:
        raise ValueError(f"max_pvalue {max_pvalue} is not in (0, 1)")
    if len(values) < MIN_NIGHTS:
        return []
    from harness.third_party.otava.analysis import compute_change_points

    found, _weak = compute_change_points([float(v) for v in values], window_len=max(window, 2), max_pvalue=max_pvalue)
    return [
        Step(int(cp.index), float(cp.stats.mean_1), float(cp.stats.mean_2), float(cp.stats.pvalue))
        for cp in sorted(found, key=lambda cp: cp.index)
    ]
