"""The two-sample Kolmogorov-Smirnov test, every feature at once: a window of production features
against the training-data reference, column by column.

It gives what `scipy.stats.ks_2samp(window[:, j], reference[:, j])` gives for each column j (two-sided,
method "auto"): the statistic from one stable sort of both samples (ties counted as searchsorted's right
side does), and the p-value exact while both samples hold at most 10,000 values, else Smirnov's
asymptotic distribution; an exact computation that overflows falls back to the asymptotic one, with the
statistic rounded to the lattice as scipy does. The Kolmogorov distribution and the compiled lattice-path
count for unequal sample sizes are scipy's own.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import kstwo
from scipy.stats._stats_pythran import _compute_outer_prob_inside_method

from .outlier import FloatMatrix, FloatVector

MAX_EXACT_N = 10_000  # scipy's "auto": exact p-values while both samples are at most this large
# Where Smirnov's asymptotic p-value is below this, the exact one is not computed: both are then many
# orders of magnitude below any significance level (and within 1e-9 of each other), while the exact
# lattice count costs time proportional to the statistic (0.3 s per feature at D = 0.5 for 1,000 vs
# 10,000 values), exactly when a window has drifted most.
NEGLIGIBLE_P = 1e-30


@dataclass(frozen=True)
class KsResult:
    statistic: FloatVector
    p_value: FloatVector


def ks_statistics(window: FloatMatrix, reference: FloatMatrix) -> FloatVector:
    """max |F_window - F_reference| per column, evaluated at every value of both samples (a searchsorted
    on the right side counts ties whole, as scipy does). `reference` must be sorted column by column."""
    n1, n2 = window.shape[0], reference.shape[0]
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    statistics = np.empty(window.shape[1])
    for j in range(window.shape[1]):
        w = np.sort(window[:, j])
        r = reference[:, j]
        at_window = np.searchsorted(w, w, side="right") / n1 - np.searchsorted(r, w, side="right") / n2
        at_reference = np.searchsorted(w, r, side="right") / n1 - np.searchsorted(r, r, side="right") / n2
        largest = max(at_window.max(), at_reference.max())
        smallest = min(max(-min(at_window.min(), at_reference.min()), 0.0), 1.0)
        statistics[j] = smallest if smallest > largest else largest
    return statistics


def _prob_outside_square(n: int, h: int) -> float:
    """P(D_{n,n} >= h/n), by the alternating binomial series in Horner form (equal sample sizes)."""
    p = 0.0
    k = n // h
    while k >= 0:
        term = 1.0
        for j in range(h):
            term = (n - k * h - j) * term / (n + k * h + j + 1)
        p = term * (1.0 - p)
        k -= 1
    return 2.0 * p


@functools.lru_cache(maxsize=4096)
def _exact_p_value(h: int, n1: int, n2: int) -> float | None:
    """The exact p-value of the statistic h / lcm(n1, n2), or None when the computation overflows.
    Cached: it depends on the sizes and the lattice step only, and windows of one size repeat them."""
    if h == 0:
        return 1.0
    try:
        with np.errstate(invalid="raise", over="raise"):
            if n1 == n2:
                p = _prob_outside_square(n1, h)
            else:
                p = float(_compute_outer_prob_inside_method(n1, n2, math.gcd(n1, n2), h))
    except (FloatingPointError, OverflowError):
        return None
    return p if 0.0 <= p <= 1.0 else None


def _asymptotic_p_values(d: FloatVector, n1: int, n2: int) -> FloatVector:
    large, small = max(n1, n2), min(n1, n2)
    effective_n = np.round(large * small / (large + small))
    with np.errstate(divide="ignore", invalid="ignore"):  # NaN for one value each side, as scipy's
        return np.clip(kstwo.sf(d, effective_n), 0.0, 1.0)


def ks_p_values(statistics: FloatVector, n1: int, n2: int) -> KsResult:
    """Two-sided p-values of KS statistics of an n1-sample against an n2-sample, as scipy's "auto"."""
    if max(n1, n2) > MAX_EXACT_N:
        return KsResult(statistics, _asymptotic_p_values(statistics, n1, n2))
    lcm = (n1 // math.gcd(n1, n2)) * n2
    steps = np.round(statistics * lcm).astype(np.int64)
    lattice = steps / lcm
    p_values = _asymptotic_p_values(lattice, n1, n2)
    for i, h in enumerate(steps):
        if not p_values[i] < NEGLIGIBLE_P:  # NaN too: too few values for the asymptotic formula
            exact = _exact_p_value(int(h), n1, n2)
            if exact is not None:  # else scipy falls back to the asymptotic value, as here
                p_values[i] = exact
    return KsResult(lattice, p_values)


def ks_2samp_columns(window: FloatMatrix, reference: FloatMatrix) -> KsResult:
    """The KS test of each column of `window` against the same column of `reference` (sorted by column)."""
    if window.ndim != 2 or reference.ndim != 2 or window.shape[1] != reference.shape[1]:
        raise ValueError(
            f"samples must be matrices with the same columns: {window.shape} vs {reference.shape}"
        )
    return ks_p_values(ks_statistics(window, reference), window.shape[0], reference.shape[0])
