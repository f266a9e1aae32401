"""A scenario: every setting of one run, validated once, eagerly, before any database work."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from loadgen.errors import ConfigError
from loadgen.retry import RetryPolicy

__all__ = ["Scenario", "parse_duration", "DISTRIBUTIONS"]

DISTRIBUTIONS: tuple[str, ...] = ("uniform",)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``90``, ``"90"``, ``"30s"``, ``"2m"``, ``"1h"``."""
    if isinstance(text, bool):
        raise ConfigError(f"duration must be a number of seconds or like 30s, 2m: got {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _DURATION.match(text)
        if not m:
            raise ConfigError(f"duration must be a number of seconds or like 30s, 2m: got {text!r}")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not seconds > 0:
        raise ConfigError(f"duration must be positive, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Scenario:
    """What one run does. The defaults are a short, hot run that shows conflicts quickly."""

    name: str = "hot-quick"
    accounts: int = 10
    users: int = 50
    spawn_rate: float = 50.0
    duration_s: float = 20.0
    initial_balance: int = 100
    amount: int = 1
    distribution: str = "uniform"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: PostgreSQL only: stop waiting on row locks after this many ms (None: wait).
    lock_timeout_ms: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.accounts < 2:
            raise ConfigError(f"accounts must be at least 2 (a transfer needs a payer and a payee), got {self.accounts}")
        if self.users < 1:
            raise ConfigError(f"users must be at least 1, got {self.users}")
        if not self.spawn_rate > 0:
            raise ConfigError(f"spawn rate must be positive, got {self.spawn_rate}")
        if not self.duration_s > 0:
            raise ConfigError(f"duration must be positive, got {self.duration_s}")
        if self.initial_balance < 0:
            raise ConfigError(f"initial balance must not be negative, got {self.initial_balance}")
        if self.amount < 1:
            raise ConfigError(f"amount must be at least 1, got {self.amount}")
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"key distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.distribution!r}"
            )
        if self.lock_timeout_ms is not None and not self.lock_timeout_ms > 0:
            raise ConfigError(f"lock timeout must be positive milliseconds, got {self.lock_timeout_ms}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
