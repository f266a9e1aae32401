"""The retry loop's policy: how many tries, for how long, with what pause between them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from loadgen.errors import ConfigError

__all__ = ["Backoff", "BACKOFFS", "RetryPolicy"]

Backoff = Literal["none", "exponential", "full-jitter"]
BACKOFFS: tuple[str, ...] = ("none", "exponential", "full-jitter")

# Which outcomes are retried: loadgen.model.outcomes.RETRYABLE.


@dataclass(frozen=True)
class RetryPolicy:
    """How a transaction is retried: attempts, deadline and backoff.

    The default mirrors the talk, an immediate retry, but bounded so a run always ends.
    """

    max_attempts: int = 100
    deadline_s: float = 10.0
    backoff: Backoff = "none"
    base_ms: float = 5.0
    cap_ms: float = 1000.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"retry max attempts must be at least 1, got {self.max_attempts}")
        if not self.deadline_s > 0:
            raise ConfigError(f"retry deadline must be positive, got {self.deadline_s}")
        if self.backoff not in BACKOFFS:
            raise ConfigError(f"retry backoff must be one of {', '.join(BACKOFFS)}, got {self.backoff!r}")
        if self.base_ms < 0 or self.cap_ms < 0:
            raise ConfigError("retry backoff base and cap must not be negative")
        if self.cap_ms < self.base_ms:
            raise ConfigError(f"retry backoff cap ({self.cap_ms} ms) is below its base ({self.base_ms} ms)")

    def delay_ms(self, failed_attempts: int, rng: random.Random) -> float:
        """Pause before the next try, after ``failed_attempts`` failures (>= 1)."""
        if self.backoff == "none":
            return 0.0
        ceiling = min(self.cap_ms, self.base_ms * 2 ** (failed_attempts - 1))
        if self.backoff == "exponential":
            return ceiling
        return rng.uniform(0.0, ceiling)  # full jitter, as in the AWS architecture blog
