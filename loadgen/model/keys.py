"""Key distributions: how a transfer's payer and payee are chosen.

A distribution draws two *different* account ids from 1..N. Each one also knows
its collision probability q = sum(p_i^2) of the per-draw distribution p, which the
report's conflict model needs (q = 1/N for uniform keys).

Skewed distributions draw through precomputed cumulative weights and ``bisect``:
O(log N) per draw, no per-draw allocation. The payee is drawn from the same
distribution and redrawn while it equals the payer (so both ends of a transfer
are hot, as in a real hot spot).
"""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Any, Protocol

__all__ = [
    "KeyDistribution",
    "Uniform",
    "Zipf",
    "Hotspot",
    "Hotset",
    "make_distribution",
    "distribution_for",
]

#: Zipf's popular keys are scattered over the ids by a permutation from this fixed seed,
#: so every run (and every worker) agrees on which accounts are hot.
ZIPF_PERMUTATION_SEED = 20251201
_MAX_REDRAWS = 64


class KeyDistribution(Protocol):
    name: str
    accounts: int

    def pair(self, rng: random.Random) -> tuple[int, int]:
        """A payer and a different payee, ids in 1..accounts."""
        ...

    def collision_probability(self) -> float:
        """sum(p_i^2) over accounts: the chance two independent draws pick the same one."""
        ...

    def draw(self, rng: random.Random) -> int:
        """One account id."""
        ...

    def distinct(self, rng: random.Random, n: int) -> list[int]:
        """``n`` different account ids (a multi-leg transfer's payer and payees)."""
        ...

    def probabilities(self) -> list[float]:
        """p_i for ids 1..accounts."""
        ...

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for run.json."""
        ...


class Uniform:
    """Every account equally likely, as in the talk."""

    name = "uniform"

    def __init__(self, accounts: int) -> None:
        self.accounts = accounts

    def draw(self, rng: random.Random) -> int:
        return rng.randint(1, self.accounts)

    def pair(self, rng: random.Random) -> tuple[int, int]:
        # Draw the payee from the N-1 other accounts: uniform, and never equal.
        # randrange(n) + 1 draws what randint(1, n) draws, from the same stream, with one call fewer.
        payer = rng.randrange(self.accounts) + 1
        payee = rng.randrange(self.accounts - 1) + 1
        if payee >= payer:
            payee += 1
        return payer, payee

    def distinct(self, rng: random.Random, n: int) -> list[int]:
        return rng.sample(range(1, self.accounts + 1), n)

    def probabilities(self) -> list[float]:
        return [1.0 / self.accounts] * self.accounts

    def collision_probability(self) -> float:
        return 1.0 / self.accounts

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class _Weighted:
    """A distribution over ids 1..N given by weights; draws by bisecting cumulative weights."""

    name = "weighted"

    def __init__(self, accounts: int, weights: list[float]) -> None:
        self.accounts = accounts
        self._cum = list(itertools.accumulate(weights))
        self._total = self._cum[-1]
        self._q = sum(w * w for w in weights) / (self._total * self._total)

    def draw(self, rng: random.Random) -> int:
        return bisect.bisect_right(self._cum, rng.random() * self._total) + 1

    def pair(self, rng: random.Random) -> tuple[int, int]:
        payer = self.draw(rng)
        return payer, self._other(rng, {payer})

    def distinct(self, rng: random.Random, n: int) -> list[int]:
        """``n`` different ids (a multi-leg transfer's payer and payees)."""
        chosen: list[int] = []
        taken: set[int] = set()
        for _ in range(n):
            k = self._other(rng, taken)
            chosen.append(k)
            taken.add(k)
        return chosen

    def _other(self, rng: random.Random, taken: set[int]) -> int:
        for _ in range(_MAX_REDRAWS):
            k = self.draw(rng)
            if k not in taken:
                return k
        # Nearly all the mass is taken (a tiny hot set): fall back to any free id.
        while True:
            k = rng.randint(1, self.accounts)
            if k not in taken:
                return k

    def probabilities(self) -> list[float]:
        prev = 0.0
        out = []
        for c in self._cum:
            out.append((c - prev) / self._total)
            prev = c
        return out

    def collision_probability(self) -> float:
        return self._q

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class Zipf(_Weighted):
    """p(rank r) proportional to 1/r^s; ranks scattered over the ids by a fixed permutation."""

    name = "zipf"

    def __init__(self, accounts: int, s: float = 1.0) -> None:
        self.s = s
        ids = list(range(accounts))
        random.Random(ZIPF_PERMUTATION_SEED).shuffle(ids)
        weights = [0.0] * accounts
        for rank, i in enumerate(ids, start=1):
            weights[i] = rank**-s
        #: The id of the most popular account, and so on (for tests and the report).
        self.by_rank = [i + 1 for i in ids]
        super().__init__(accounts, weights)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "s": self.s, "hottest": self.by_rank[:5]}


class Hotspot(_Weighted):
    """YCSB's hot spot: a share ``ops`` of operations goes to the first share ``keys`` of the accounts.

    Within the hot part and within the rest, accounts are equally likely. As in
    YCSB, the hot accounts are the lowest ids.
    """

    name = "hotspot"

    def __init__(self, accounts: int, ops: float = 0.8, keys: float = 0.2) -> None:
        self.ops, self.keys = ops, keys
        hot = min(accounts, max(1, round(accounts * keys)))
        cold = accounts - hot
        self.hot_accounts = hot
        if cold == 0:
            weights = [1.0] * accounts
        else:
            weights = [ops / hot] * hot + [(1.0 - ops) / cold] * cold
        super().__init__(accounts, weights)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "ops": self.ops, "keys": self.keys, "hot_accounts": self.hot_accounts}


class Hotset(_Weighted):
    """With probability ``p`` an account among the first ``k``, otherwise one of the others."""

    name = "hotset"

    def __init__(self, accounts: int, p: float = 0.9, k: int = 10) -> None:
        self.p, self.k = p, k
        weights = [p / k] * k + [(1.0 - p) / (accounts - k)] * (accounts - k)
        super().__init__(accounts, weights)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "p": self.p, "k": self.k}


def make_distribution(name: str, accounts: int, **params: Any) -> KeyDistribution:
    if name == "uniform":
        return Uniform(accounts)
    if name == "zipf":
        return Zipf(accounts, **params)
    if name == "hotspot":
        return Hotspot(accounts, **params)
    if name == "hotset":
        return Hotset(accounts, **params)
    raise ValueError(f"unknown key distribution {name!r}")


def distribution_for(scenario: Any) -> KeyDistribution:
    """The key distribution a scenario asks for, with its parameters."""
    params: dict[str, Any] = {}
    name = scenario.distribution
    if name == "zipf":
        params = {"s": scenario.zipf_s}
    elif name == "hotspot":
        params = {"ops": scenario.hot_ops, "keys": scenario.hot_keys}
    elif name == "hotset":
        params = {"p": scenario.hotset_p, "k": scenario.hotset_k}
    return make_distribution(name, scenario.accounts, **params)
