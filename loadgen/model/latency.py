"""Emulated latency: how much longer each round trip to the database is made to take.

A local PostgreSQL answers in well under a millisecond; DSQL, across a network and
a distributed commit, in milliseconds. The conflict rate is set by lambda x D (the
commit rate times how long an attempt is exposed), so a local run only means what
a remote one would if its round trips take as long. loadgen.db.delay applies this.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from loadgen.errors import ConfigError

__all__ = ["Latency"]


@dataclass(frozen=True)
class Latency:
    """Added time per round trip: a floor of ``rtt_ms`` plus a random queueing delay.

    ``jitter_ms`` is the mean of that extra delay, drawn from an exponential
    distribution (a network's latency has a floor and a long right tail), so no
    round trip is ever shorter than ``rtt_ms`` and the mean is ``rtt_ms + jitter_ms``.
    ``commit_ms`` is added to COMMIT on top of its round trip (DSQL's commit checks
    conflicts and replicates; its statements do neither).
    """

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    commit_ms: float = 0.0

    def __post_init__(self) -> None:
        for name, value in (("rtt_ms", self.rtt_ms), ("rtt_jitter_ms", self.jitter_ms), ("commit_ms", self.commit_ms)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be zero or a positive number of milliseconds, got {value!r}")

    @property
    def active(self) -> bool:
        return bool(self.rtt_ms or self.jitter_ms or self.commit_ms)

    def round_trip_s(self, rng: random.Random) -> float:
        """One round trip's added delay, in seconds."""
        extra = rng.expovariate(1.0 / self.jitter_ms) if self.jitter_ms else 0.0
        return (self.rtt_ms + extra) / 1000.0

    def mean_round_trip_ms(self) -> float:
        return self.rtt_ms + self.jitter_ms
