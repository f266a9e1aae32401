"""The bounded per-arrival distribution (loadgen.results.sketch): close to numpy's figures, in memory set by the values' range."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.results.sketch import RELATIVE_ERROR, LogHistogram


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_are_within_half_a_bucket_of_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # A latency-like spread: a floor, a long tail, and exact zeros (arrivals that were on time).
    values = np.concatenate([2.0 + rng.lognormal(0.0, 1.5, 200_000), np.zeros(5_000)])
    rng.shuffle(values)
    h = LogHistogram()
    for v in values:
        h.add(float(v))
    assert len(h) == values.size
    for pct in (0, 1, 50, 90, 99, 99.9, 100):
        exact = float(np.percentile(values, pct, method="lower"))
        assert h.percentile(pct) == pytest.approx(exact, rel=RELATIVE_ERROR * 1.0001, abs=1e-12), pct
    assert h.summary()["max"] == float(values.max())
    assert h.percentile(0) == 0.0


def test_memory_grows_with_the_range_of_values_not_their_number() -> None:
    h = LogHistogram()
    rng = np.random.default_rng(7)
    for v in rng.uniform(0.001, 60_000.0, 300_000):  # a microsecond to a minute, in ms
        h.add(float(v))
    # log(6e7) / log(1.01) buckets at most: about 1,800, whatever the number of values.
    first = len(h.counts)
    assert first <= 1_810
    for v in rng.uniform(0.001, 60_000.0, 300_000):
        h.add(float(v))
    assert len(h.counts) <= 1_810 and len(h) == 600_000


def test_empty_and_negative() -> None:
    h = LogHistogram()
    assert h.summary() == {"p50": None, "p99": None, "max": None}
    h.add(-0.5)  # a clock read a hair early: in the zero bucket, the exact minimum kept
    h.add(3.0)
    assert h.percentile(0) == 0.0 and h.percentile(100) == pytest.approx(3.0, rel=RELATIVE_ERROR)
