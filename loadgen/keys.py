"""Key distributions: how a transfer's payer and payee are chosen.

A distribution draws two *different* account ids from 1..N. Each one also knows
its collision probability q = sum(p_i^2), which the report's conflict model needs
(q = 1/N for uniform keys).
"""

from __future__ import annotations

import random
from typing import Protocol

__all__ = ["KeyDistribution", "Uniform", "make_distribution"]


class KeyDistribution(Protocol):
    name: str
    accounts: int

    def pair(self, rng: random.Random) -> tuple[int, int]:
        """A payer and a different payee, ids in 1..accounts."""
        ...

    def collision_probability(self) -> float:
        """sum(p_i^2) over accounts: the chance two independent draws pick the same one."""
        ...


class Uniform:
    """Every account equally likely, as in the talk."""

    name = "uniform"

    def __init__(self, accounts: int) -> None:
        self.accounts = accounts

    def pair(self, rng: random.Random) -> tuple[int, int]:
        # Draw the payee from the N-1 other accounts: uniform, and never equal.
        payer = rng.randint(1, self.accounts)
        payee = rng.randint(1, self.accounts - 1)
        if payee >= payer:
            payee += 1
        return payer, payee

    def collision_probability(self) -> float:
        return 1.0 / self.accounts


def make_distribution(name: str, accounts: int) -> KeyDistribution:
    if name == "uniform":
        return Uniform(accounts)
    raise ValueError(f"unknown key distribution {name!r}")
