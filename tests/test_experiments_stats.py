"""The bootstrap statistics of :mod:`ddpg_tf.stats` against hand-computed intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddpg_tf import stats


def test_identical_paired_runs_give_zero_interval():
    a = {0: -150.25, 1: -98.5, 2: -170.0}
    c = stats.compare(a, dict(a))
    assert (c.design, c.difference, c.low, c.high, c.verdict) == ("paired", 0.0, 0.0, 0.0, "identical runs")


def test_paired_interval_of_two_differences_is_hand_computable():
    # Differences {1, 3}: a resample's mean is 1, 2 or 3 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles are exactly 1 and 3.
    c = stats.compare({0: 1.0, 1: 1.0}, {0: 2.0, 1: 4.0})
    assert (c.design, c.difference, c.low, c.high, c.verdict) == ("paired", 2.0, 1.0, 3.0, "differ")
    # Differences {-1, 3}: the interval [-1, 3] contains 0.
    c = stats.compare({0: 0.0, 1: 0.0}, {0: -1.0, 1: 3.0})
    assert (c.difference, c.low, c.high, c.verdict) == (1.0, -1.0, 3.0, "no detectable difference")


def test_unpaired_intervals_are_hand_computable():
    # Different seeds: unpaired. Constant samples: every resampled difference is 4 - 1.
    c = stats.compare({0: 1.0, 1: 1.0, 2: 1.0}, {5: 4.0, 6: 4.0})
    assert (c.design, c.n_a, c.n_b, c.low, c.high, c.verdict) == ("unpaired", 3, 2, 3.0, 3.0, "differ")
    # Means of A in {0, 5, 10} and of B in {1, 5, 9}; B - A = -9 and +9 each have probability
    # 1/16 > 2.5%, so the interval is exactly [-9, 9].
    c = stats.compare({0: 0.0, 1: 10.0}, {2: 1.0, 3: 9.0})
    assert (c.difference, c.low, c.high, c.verdict) == (0.0, -9.0, 9.0, "no detectable difference")


def test_clearly_shifted_pair_differs_and_is_pinned():
    a = dict(enumerate([10.2, 11.7, 9.4, 12.9, 10.8]))
    b = dict(enumerate([11.1, 11.5, 10.9, 13.6, 11.0]))
    c = stats.compare(a, b)
    assert c.verdict == "differ" and c.design == "paired"
    assert c.difference == pytest.approx(0.62, abs=1e-12)
    assert (c.low, c.high) == pytest.approx((0.14, 1.12), abs=1e-12)
    shift = stats.compare(a, {k: v + 5.0 for k, v in a.items()})
    assert shift.difference == pytest.approx(5.0) and shift.low == pytest.approx(5.0)
    assert shift.high == pytest.approx(5.0) and shift.verdict == "differ"


def test_mean_interval_is_reproducible_and_seeded():
    x = [0.3, 1.7, 2.2, 4.9, 5.1, 7.3]
    first, again = stats.mean_ci(x), stats.mean_ci(x)
    assert first == again
    assert first.mean == pytest.approx(3.5833333333333335, abs=1e-15)
    assert first.std == pytest.approx(np.std(x, ddof=1), abs=1e-15)
    assert (first.low, first.high) == pytest.approx((1.7166666666666668, 5.46791666666665), abs=1e-12)
    other = stats.mean_ci(x, seed=1)
    assert (other.low, other.high) != (first.low, first.high)  # the seed is really used


def test_too_few_values():
    single = stats.mean_ci([-120.0])
    assert single.n == 1 and single.mean == -120.0
    assert math.isnan(single.std) and math.isnan(single.low) and math.isnan(single.high)
    c = stats.compare({0: 1.0}, {0: 2.0})
    assert c.verdict == "too few seeds" and c.difference == 1.0 and math.isnan(c.low)
    assert stats.compare({0: 1.0}, {0: 1.0}).verdict == "identical runs"
    assert stats.compare({0: 1.0}, {1: 2.0, 2: 3.0}).verdict == "too few seeds"


def test_band_handles_missing_values():
    mean, low, high = stats.band(np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]]))
    assert mean[0] == 2.0 and (low[0], high[0]) == (1.0, 3.0)  # resample means of {1, 3}: 1, 2, 3
    assert mean[1] == 2.0 and math.isnan(low[1]) and math.isnan(high[1])
    assert math.isnan(mean[2])
