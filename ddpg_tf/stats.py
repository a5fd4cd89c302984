"""Bootstrap statistics for comparing training runs across seeds (pure NumPy).

Each value is one trial's evaluation mean at a fixed step budget; a style's sample is its
values over seeds. Intervals are 95% *percentile bootstrap* intervals (Efron & Tibshirani,
1993, ch. 13): resample the seeds with replacement ``resamples`` times, recompute the
statistic, and take the 2.5% and 97.5% quantiles of the resampled statistics (NumPy's
default linear interpolation). Every call draws from its own ``numpy.random.default_rng(seed)``,
so a result does not depend on what was computed before it and reruns print the same numbers.

Comparing two styles A and B (difference of means, B − A):

* **paired** when both ran the same seeds. A seed fixes the initial weights, the replay
  sampling and the environment seeds, so the per-seed differences B(k) − A(k) remove the
  seed-to-seed variation that both styles share; the bootstrap resamples those differences.
* **unpaired** otherwise: A and B are resampled independently and the difference of their
  resampled means is taken.

Verdict: ``differ`` if the interval excludes 0, ``no detectable difference`` if it contains
0, ``identical runs`` when every paired difference is exactly 0 (bit-identical runs; the
interval is then [0, 0]), and ``too few seeds`` when either style has fewer than two values
(nothing to resample; except that a single bit-identical pair is still ``identical runs``).

A caveat worth printing next to the numbers: with few seeds (3-5) the percentile bootstrap
interval is narrower than a Student-t interval (it resamples a handful of values, so it
cannot see tails the sample did not hit), so its coverage is below the nominal 95%. A
``differ`` verdict whose interval only just excludes 0 deserves more seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
"""Bootstrap resamples per interval."""
CONFIDENCE = 0.95
"""Coverage of every interval."""
SEED = 0
"""Seed of the bootstrap's random generator (fixed, so reruns print the same numbers)."""

DIFFER = "differ"
NO_DIFFERENCE = "no detectable difference"
IDENTICAL = "identical runs"
TOO_FEW = "too few seeds"


@dataclass(frozen=True)
class MeanCI:
    """A sample's mean, sample standard deviation and a bootstrap interval of its mean."""

    n: int
    """Number of values (seeds)."""
    mean: float
    std: float
    """Sample standard deviation (ddof 1); NaN for a single value."""
    low: float
    """Lower end of the bootstrap interval of the mean; NaN for fewer than two values."""
    high: float
    """Upper end of the bootstrap interval of the mean; NaN for fewer than two values."""


@dataclass(frozen=True)
class Comparison:
    """The difference of means B − A of two samples with its bootstrap interval and verdict."""

    design: str
    """``paired`` (same seeds in both samples) or ``unpaired``."""
    n_a: int
    n_b: int
    difference: float
    """mean(B) − mean(A)."""
    low: float
    high: float
    verdict: str
    """``differ``, ``no detectable difference``, ``identical runs`` or ``too few seeds``."""


def percentile_interval(stats: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap statistics ``stats``."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` resamples (with replacement, same size) of 1-D ``values``."""
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    return values[idx].mean(axis=1)


def mean_ci(values: Sequence[float] | np.ndarray, resamples: int = RESAMPLES,
            confidence: float = CONFIDENCE, seed: int = SEED) -> MeanCI:
    """Mean, sample std and percentile bootstrap interval of the mean of ``values``."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"need a non-empty 1-D sample, got shape {x.shape}")
    nan = math.nan
    if len(x) < 2:
        return MeanCI(1, float(x[0]), nan, nan, nan)
    low, high = percentile_interval(bootstrap_means(x, resamples, np.random.default_rng(seed)),
                                    confidence)
    return MeanCI(len(x), float(x.mean()), float(x.std(ddof=1)), low, high)


def compare(a: Mapping[int, float], b: Mapping[int, float], resamples: int = RESAMPLES,
            confidence: float = CONFIDENCE, seed: int = SEED, paired: bool | None = None) -> Comparison:
    """Difference of means B − A of per-seed values ``{seed: value}``, with its bootstrap interval.

    Paired over seeds when ``a`` and ``b`` hold the same seeds, unpaired otherwise (see the
    module docstring for the verdicts); ``paired=False`` forces the unpaired design, for samples
    whose seed numbers do not mean the same run (two libraries seed differently).
    """
    if not a or not b:
        raise ValueError("both samples need at least one value")
    paired = set(a) == set(b) if paired is None else paired and set(a) == set(b)
    nan = math.nan
    if paired:
        seeds = sorted(a)
        diffs = np.array([b[k] - a[k] for k in seeds], dtype=np.float64)
        difference = float(diffs.mean())
        if np.all(diffs == 0.0):
            return Comparison("paired", len(a), len(b), 0.0, 0.0, 0.0, IDENTICAL)
        if len(diffs) < 2:
            return Comparison("paired", len(a), len(b), difference, nan, nan, TOO_FEW)
        rng = np.random.default_rng(seed)
        low, high = percentile_interval(bootstrap_means(diffs, resamples, rng), confidence)
    else:
        xa = np.array([a[k] for k in sorted(a)], dtype=np.float64)
        xb = np.array([b[k] for k in sorted(b)], dtype=np.float64)
        difference = float(xb.mean() - xa.mean())
        if len(xa) < 2 or len(xb) < 2:
            return Comparison("unpaired", len(a), len(b), difference, nan, nan, TOO_FEW)
        rng = np.random.default_rng(seed)
        means_a = bootstrap_means(xa, resamples, rng)
        means_b = bootstrap_means(xb, resamples, rng)
        low, high = percentile_interval(means_b - means_a, confidence)
    verdict = DIFFER if low > 0.0 or high < 0.0 else NO_DIFFERENCE
    return Comparison("paired" if paired else "unpaired", len(a), len(b), difference, low, high, verdict)


def band(curves: np.ndarray, resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
         seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve and pointwise bootstrap interval of ``curves`` (seeds × steps, NaN = missing).

    Each column is treated as its own sample of the values present there; a column with fewer
    than two values gets a NaN interval (and a NaN mean when it has none).
    """
    curves = np.asarray(curves, dtype=np.float64)
    n_steps = curves.shape[1]
    mean, low, high = (np.full(n_steps, np.nan) for _ in range(3))
    for j in range(n_steps):
        column = curves[:, j][~np.isnan(curves[:, j])]
        if len(column) == 0:
            continue
        summary = mean_ci(column, resamples, confidence, seed)
        mean[j], low[j], high[j] = summary.mean, summary.low, summary.high
    return mean, low, high


__all__ = ["CONFIDENCE", "DIFFER", "IDENTICAL", "NO_DIFFERENCE", "RESAMPLES", "SEED", "TOO_FEW",
           "Comparison", "MeanCI", "band", "bootstrap_means", "compare", "mean_ci", "percentile_interval"]
