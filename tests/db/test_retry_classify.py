"""Retry policy and attempt classification: pure, no database."""

from __future__ import annotations

import random

import psycopg
import psycopg.errors as e
import pytest

from loadgen.db.classify import InsufficientFunds, NoSuchAccount, classify
from loadgen.errors import ConfigError
from loadgen.model.outcomes import RETRYABLE
from loadgen.model.retry import RetryPolicy


@pytest.mark.parametrize(
    ("exc", "outcome", "sqlstate", "oc"),
    [
        (e.SerializationFailure("could not serialize access due to concurrent update"), "conflict", "40001", None),
        (e.SerializationFailure("mutation conflicts with another transaction, retry as needed (OC000)"), "conflict", "40001", "OC000"),
        (e.SerializationFailure("change conflicts with another transaction, please retry: (OC000)"), "conflict", "40001", "OC000"),
        (e.SerializationFailure("schema has been updated by another transaction, please retry: (OC001)"), "conflict", "40001", "OC001"),
        (e.DeadlockDetected("deadlock detected"), "deadlock", "40P01", None),
        (e.LockNotAvailable("canceling statement due to lock timeout"), "lock_timeout", "55P03", None),
        (e.AdminShutdown("terminating connection due to administrator command"), "connection_error", "57P01", None),
        (e.TooManyConnections("too many connections"), "connection_error", "53300", None),
        (psycopg.OperationalError("server closed the connection unexpectedly"), "connection_error", None, None),
        (e.UndefinedTable("relation does not exist"), "error", "42P01", None),
        (InsufficientFunds("account 1 would go to -1"), "insufficient_funds", None, None),
        (NoSuchAccount("account 9 does not exist"), "error", None, None),
        (ValueError("bug"), "error", None, None),
    ],
)
def test_classify(exc: BaseException, outcome: str, sqlstate: str | None, oc: str | None) -> None:
    c = classify(exc)
    assert (c.outcome, c.sqlstate, c.oc_code) == (outcome, sqlstate, oc)


def test_retryable_outcomes() -> None:
    assert RETRYABLE == {"conflict", "deadlock", "lock_timeout", "connection_error"}
    assert "insufficient_funds" not in RETRYABLE and "error" not in RETRYABLE


def test_backoff_none_is_immediate() -> None:
    p = RetryPolicy()
    assert [p.delay_ms(n, random.Random(1)) for n in (1, 2, 10)] == [0.0, 0.0, 0.0]


def test_backoff_exponential_doubles_up_to_cap() -> None:
    p = RetryPolicy(backoff="exponential", base_ms=5, cap_ms=30)
    assert [p.delay_ms(n, random.Random(1)) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]


def test_backoff_full_jitter_stays_below_exponential_ceiling() -> None:
    p = RetryPolicy(backoff="full-jitter", base_ms=4, cap_ms=100)
    rng = random.Random(7)
    draws = [p.delay_ms(3, rng) for _ in range(2000)]
    assert all(0 <= d <= 16 for d in draws)
    assert 6 < sum(draws) / len(draws) < 10  # uniform on [0, 16] has mean 8


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"deadline_s": 0}, {"backoff": "linear"}, {"base_ms": -1}, {"base_ms": 50, "cap_ms": 10}],
)
def test_bad_policy_rejected(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)
