"""Key distributions: sampled frequencies against each distribution's definition."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from loadgen.model.keys import Hotset, Hotspot, Uniform, Zipf, distribution_for
from loadgen.model.scenario import Scenario

DRAWS = 200_000


def _chi2_ok(counts: Counter[int], probs: list[float], draws: int) -> None:
    """A chi-square goodness-of-fit check (cells with expected count >= 5); fails about 1 in 10^5 when right."""
    chi2 = 0.0
    dof = -1
    for i, p in enumerate(probs, start=1):
        expected = p * draws
        if expected >= 5:
            chi2 += (counts.get(i, 0) - expected) ** 2 / expected
            dof += 1
    # Normal approximation of the chi-square upper tail at z = 4.3.
    assert chi2 < dof + 4.3 * math.sqrt(2 * dof), (chi2, dof)


@pytest.mark.parametrize(
    "dist",
    [Uniform(50), Zipf(50, s=1.1), Hotspot(50, ops=0.8, keys=0.2), Hotset(50, p=0.7, k=5)],
    ids=lambda d: d.name,
)
def test_payer_frequencies_match_the_definition(dist) -> None:
    rng = random.Random(7)
    counts = Counter(dist.pair(rng)[0] for _ in range(DRAWS))
    _chi2_ok(counts, dist.probabilities(), DRAWS)


@pytest.mark.parametrize(
    "dist",
    [Uniform(3), Zipf(20, s=2.0), Hotspot(10, ops=1.0, keys=0.1), Hotset(10, p=1.0, k=2)],
    ids=lambda d: d.name,
)
def test_payer_and_payee_always_differ(dist) -> None:
    rng = random.Random(1)
    for _ in range(20_000):
        payer, payee = dist.pair(rng)
        assert payer != payee and 1 <= payer <= dist.accounts and 1 <= payee <= dist.accounts


def test_collision_probability_is_the_sum_of_squares() -> None:
    assert Uniform(1000).collision_probability() == pytest.approx(1 / 1000)
    # hotspot 80/20 over 100: 20 keys at 0.04, 80 at 0.0025.
    assert Hotspot(100).collision_probability() == pytest.approx(20 * 0.04**2 + 80 * 0.0025**2)
    assert Hotset(100, p=0.5, k=10).collision_probability() == pytest.approx(10 * 0.05**2 + 90 * (0.5 / 90) ** 2)
    h = [r**-1.0 for r in range(1, 101)]
    assert Zipf(100, s=1.0).collision_probability() == pytest.approx(sum(x * x for x in h) / sum(h) ** 2)
    for d in (Zipf(100), Hotspot(100), Hotset(100)):
        assert sum(d.probabilities()) == pytest.approx(1.0)
        assert d.collision_probability() > 1 / 100  # skew makes collisions likelier


def test_sampled_collision_rate_matches_the_formula() -> None:
    d = Zipf(200, s=1.0)
    rng = random.Random(3)
    same = sum(d.draw(rng) == d.draw(rng) for _ in range(DRAWS))
    q = d.collision_probability()
    assert abs(same / DRAWS - q) < 5 * math.sqrt(q * (1 - q) / DRAWS)


def test_zipf_hot_keys_are_scattered_and_fixed() -> None:
    z = Zipf(10_000, s=1.0)
    assert z.by_rank[:10] != list(range(1, 11))  # not simply the lowest ids
    assert max(z.by_rank[:10]) > 100
    assert Zipf(10_000, s=1.3).by_rank == z.by_rank  # the same accounts are hot in every run
    probs = z.probabilities()
    assert probs[z.by_rank[0] - 1] == max(probs)
    rng = random.Random(5)
    top = Counter(z.draw(rng) for _ in range(50_000)).most_common(1)[0][0]
    assert top == z.by_rank[0]


def test_hotspot_share_of_operations() -> None:
    d = Hotspot(1000, ops=0.9, keys=0.05)
    rng = random.Random(11)
    hot = sum(d.draw(rng) <= 50 for _ in range(DRAWS))
    assert hot / DRAWS == pytest.approx(0.9, abs=0.005)


def test_hotset_probability_among_the_first_k() -> None:
    d = Hotset(1000, p=0.3, k=20)
    rng = random.Random(13)
    hot = sum(d.draw(rng) <= 20 for _ in range(DRAWS))
    assert hot / DRAWS == pytest.approx(0.3, abs=0.005)


def test_distinct_draws_for_multi_leg() -> None:
    rng = random.Random(2)
    for d in (Uniform(5), Hotset(6, p=1.0, k=2), Zipf(8, s=3.0)):
        for _ in range(2000):
            ids = d.distinct(rng, 4)
            assert len(set(ids)) == 4 and all(1 <= i <= d.accounts for i in ids)


def test_distribution_for_a_scenario_uses_its_parameters() -> None:
    s = Scenario(accounts=100, distribution="hotset", hotset_p=0.5, hotset_k=4)
    d = distribution_for(s)
    assert isinstance(d, Hotset) and (d.p, d.k) == (0.5, 4)
    z = distribution_for(Scenario(accounts=100, distribution="zipf", zipf_s=1.5))
    assert isinstance(z, Zipf) and z.s == 1.5


def test_sampling_is_cheap_for_a_big_bank() -> None:
    import time

    d = Zipf(100_000, s=1.0)
    rng = random.Random(0)
    t0 = time.perf_counter()
    for _ in range(100_000):
        d.pair(rng)
    assert time.perf_counter() - t0 < 2.0  # a few microseconds per pair
