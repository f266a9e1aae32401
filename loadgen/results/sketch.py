"""A distribution held in bounded memory: per-arrival figures of a run of hours.

The open loop's start lag and latency from the intended start, and the read mix's
latencies, are one value per transaction. Kept as lists they grow with the run (an hour
at 4,200 calls/s is 15 million floats each, about half a gigabyte). :class:`LogHistogram`
counts them instead in buckets 1% wide (relative, as HdrHistogram does), so memory grows
with the range of the values (a few thousand buckets from microseconds to hours), never
with their number; a percentile is within 0.5% of the exact one and the maximum is exact.
Attempt latencies stay exact: they are in attempts.parquet.
"""

from __future__ import annotations

import math

__all__ = ["LogHistogram", "RELATIVE_ERROR"]

#: Each bucket's upper bound is this many times its lower one.
_GROWTH = 1.01
_PER_LOG = 1.0 / math.log(_GROWTH)
#: Values at or below zero share one bucket (a start that was not late at all).
_ZERO = -(2**62)
#: A percentile's largest relative distance from the exact one (half a bucket).
RELATIVE_ERROR = math.sqrt(_GROWTH) - 1.0


class LogHistogram:
    """Counts of values in log-spaced buckets: count, exact min and max, percentiles within :data:`RELATIVE_ERROR`."""

    __slots__ = ("counts", "n", "min", "max")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.min = math.inf
        self.max = -math.inf

    def __len__(self) -> int:
        return self.n

    def add(self, value: float) -> None:
        self.n += 1
        if value > self.max:
            self.max = value
        if value < self.min:
            self.min = value
        key = math.floor(math.log(value) * _PER_LOG) if value > 0 else _ZERO
        self.counts[key] = self.counts.get(key, 0) + 1

    def percentile(self, pct: float) -> float | None:
        """The value at ``pct`` (0-100), as numpy's ``percentile`` ranks it (the lower neighbour's bucket); None if empty."""
        if self.n == 0:
            return None
        rank = math.floor(pct / 100.0 * (self.n - 1))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen > rank:
                middle = 0.0 if key == _ZERO else _GROWTH ** (key + 0.5)
                return min(max(middle, self.min), self.max)
        return self.max  # not reached: the counts add up to n

    def summary(self) -> dict[str, float | None]:
        """p50, p99 and max, as run.json gives a per-arrival figure."""
        return {"p50": self.percentile(50), "p99": self.percentile(99), "max": self.max if self.n else None}
