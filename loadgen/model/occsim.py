"""A first-committer-wins OCC simulation: what conflict rate a workload meets, without a database.

Aurora DSQL takes no locks: a transaction reads from its snapshot and, at COMMIT,
fails with 40001 if another transaction committed a write to one of its rows after
that snapshot. The simulation replays exactly that rule over simulated time:

- an *attempt* starts, spends ``before`` ms until its snapshot (its first
  statement), then ``window`` ms from snapshot to COMMIT, both drawn from a
  :class:`Durations` source (a run's measured attempts, or a stated distribution);
- attempts are judged in COMMIT-time order: one whose rows were all last committed
  at or before its snapshot commits and stamps its rows; any other conflicts;
- a conflicted transaction is retried as the :class:`~loadgen.model.retry.RetryPolicy`
  says (same rows, new attempt, backoff, give up after max attempts or the deadline);
- transactions arrive as a :class:`Load` says: closed loop (users back to back),
  open loop (Poisson arrivals at a rate, optionally at most ``users`` in flight),
  or batches (``users`` at once, wait for all).

Keys come from a :class:`~loadgen.model.keys.KeyDistribution` (a transfer writes its
payer and payee). Everything is seeded; the same inputs give the same attempts.
The output is the attempts themselves (:class:`SimAttempts`), measured after a
warm-up, so the report's own metric functions turn them into figures.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from loadgen.errors import ConfigError
from loadgen.model.keys import KeyDistribution
from loadgen.model.outcomes import Outcome
from loadgen.model.retry import RetryPolicy
from loadgen.model.shapes import TRANSACTION_SHAPES, statements

__all__ = [
    "Durations",
    "Sampled",
    "Cycle",
    "Load",
    "SimAttempts",
    "simulate",
    "first_committer_wins",
    "COMMITTED",
    "CONFLICT",
    "DEFAULT_ATTEMPTS",
    "STATEMENTS",
    "OCC_STATEMENTS",
    "statements",
]

COMMITTED = Outcome.COMMITTED.value
CONFLICT = Outcome.CONFLICT.value
LoadModel = Literal["closed", "open", "batches"]
#: The transaction shapes the simulation models, with their statements before COMMIT (multi-leg: None,
#: 2 + legs): each writes its payer and payee(s) and nothing else another transfer could touch.
#: From the one registry, loadgen.model.shapes.
STATEMENTS: dict[str, int | None] = {
    s.name: None if s.per_leg else s.statements for s in TRANSACTION_SHAPES.values() if s.statements is not None
}


#: The same in each shape's first-committer-wins form (cc occ on PostgreSQL, loadgen.db.occ).
OCC_STATEMENTS: dict[str, int | None] = {
    s.name: None if s.per_leg else s.occ_statements for s in TRANSACTION_SHAPES.values() if s.occ_statements is not None
}

#: Attempts simulated per cell: a conflict rate near 5% comes out within about +-3% of itself (one sigma).
DEFAULT_ATTEMPTS = 20_000


class Durations(Protocol):
    """Where attempt durations come from: ``(before_ms, window_ms)`` per attempt."""

    def next(self) -> tuple[float, float]:
        """The next attempt's time before its snapshot, and its snapshot-to-commit window (ms)."""
        ...

    @property
    def mean_ms(self) -> float:
        """Mean whole attempt (before + window), for warm-up and run length."""
        ...


class Sampled:
    """Durations drawn at random (with replacement) from measured pairs: an empirical distribution."""

    def __init__(self, before_ms: Sequence[float] | np.ndarray, window_ms: Sequence[float] | np.ndarray, seed: int = 0) -> None:
        self._before = np.asarray(before_ms, dtype="float64")
        self._window = np.asarray(window_ms, dtype="float64")
        if self._window.size == 0 or self._before.shape != self._window.shape:
            raise ConfigError("the simulation needs at least one measured attempt duration")
        if (self._window < 0).any() or (self._before < 0).any():
            raise ConfigError("attempt durations must not be negative")
        self._rng = np.random.default_rng(seed)
        self._batch: list[tuple[float, float]] = []
        self._mean = float(self._before.mean() + self._window.mean())

    def next(self) -> tuple[float, float]:
        if not self._batch:
            # Draw indices in bulk: one numpy call per 4,096 attempts, not one per attempt.
            idx = self._rng.integers(0, self._window.size, size=4096)
            self._batch = list(zip(self._before[idx].tolist(), self._window[idx].tolist()))
            self._batch.reverse()
        return self._batch.pop()

    @property
    def mean_ms(self) -> float:
        return self._mean


class Cycle:
    """Durations in a fixed order, repeated: for worked examples whose every step a reader can follow."""

    def __init__(self, pairs: Sequence[tuple[float, float]]) -> None:
        if not pairs:
            raise ConfigError("the simulation needs at least one attempt duration")
        self._pairs = list(pairs)
        self._i = 0

    def next(self) -> tuple[float, float]:
        pair = self._pairs[self._i % len(self._pairs)]
        self._i += 1
        return pair

    @property
    def mean_ms(self) -> float:
        return sum(b + w for b, w in self._pairs) / len(self._pairs)


@dataclass(frozen=True)
class Load:
    """How transactions arrive.

    closed: ``users`` run transactions back to back, ``think_ms`` between them;
    open: arrivals at ``arrival_rate`` per second, at most ``users`` in flight (0: no
    limit; late arrivals wait their turn), ``even``ly spaced as loadgen's open loop
    starts them, or at random (Poisson, as independent clients arrive); batches:
    ``users`` transactions at once, the next batch when all are done.
    """

    model: LoadModel = "closed"
    users: int = 1
    arrival_rate: float = 0.0
    think_ms: float = 0.0
    even: bool = False

    def __post_init__(self) -> None:
        if self.model not in ("closed", "open", "batches"):
            raise ConfigError(f"load model must be closed, open or batches, got {self.model!r}")
        if self.users < (0 if self.model == "open" else 1):
            raise ConfigError(f"users must be at least 1, got {self.users}")
        if self.model == "open" and not self.arrival_rate > 0:
            raise ConfigError(f"an open load needs a positive arrival rate, got {self.arrival_rate}")
        if self.think_ms < 0:
            raise ConfigError(f"think time must not be negative, got {self.think_ms}")


@dataclass(frozen=True)
class SimAttempts:
    """The measured attempts: those that started in ``[from_ms, to_ms)``, each run to its end (times in ms)."""

    txn: np.ndarray
    attempt: np.ndarray
    start_ms: np.ndarray
    end_ms: np.ndarray
    committed: np.ndarray
    from_ms: float
    to_ms: float

    def __len__(self) -> int:
        return int(self.txn.size)

    @property
    def period_s(self) -> float:
        """The measured period: in steady state its attempts are those that ran in it, so rates divide by it."""
        return (self.to_ms - self.from_ms) / 1000.0

    @property
    def outcome(self) -> np.ndarray:
        return np.where(self.committed, COMMITTED, CONFLICT)


# Event kinds, ordered so that at one instant a commit is judged before an arrival starts.
_END, _ARRIVAL = 0, 1


def simulate(
    keys: KeyDistribution,
    durations: Durations,
    load: Load,
    policy: RetryPolicy,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    warmup_ms: float | None = None,
    read_share: float = 0.0,
    rows_per_txn: int = 2,
    seed: int = 0,
) -> SimAttempts:
    """Simulate until ``attempts`` attempts have started after the warm-up and all of them have ended.

    Load goes on at its level while the last measured attempts finish, so the
    measured ones meet the same competition from first to last. ``warmup_ms``
    defaults to ten mean attempts (the first snapshots see an idle database).
    ``read_share`` of the transactions only read: they never conflict under
    snapshot isolation, but they take their time like the others. A transaction
    writes ``rows_per_txn`` different accounts (2 for a transfer; a multi-leg one more).
    """
    if attempts < 1:
        raise ConfigError(f"the simulation needs at least one attempt, got {attempts}")
    if not 0 <= read_share <= 1:
        raise ConfigError(f"read share must be in [0, 1], got {read_share}")
    if not 1 <= rows_per_txn <= keys.accounts:
        raise ConfigError(f"a transaction writes 1 to {keys.accounts} accounts, got {rows_per_txn}")
    if not durations.mean_ms > 0:
        raise ConfigError("attempt durations are all zero: simulated time would not move")
    warm = 10.0 * durations.mean_ms if warmup_ms is None else warmup_ms
    rng = random.Random(seed)
    arrivals = random.Random(seed + 1)
    last_commit: dict[int, float] = {}  # account -> time of its latest committed write
    heap: list[tuple[float, int, int, int]] = []  # (time, kind, seq, attempt id); seq keeps ties in order
    seq = 0
    # Per attempt, indexed by attempt id: (txn, number, start, snapshot, end, measured), and whether it committed.
    # One tuple per attempt rather than a list per field: this loop is most of a run report's what-if section.
    att: list[tuple[int, int, float, float, float, bool]] = []
    a_ok: list[bool] = []
    # Per transaction: its rows, its start, its user slot.
    t_keys: list[tuple[int, ...]] = []
    t_start: list[float] = []
    t_slot: list[int] = []
    deadline_ms = policy.deadline_s * 1000.0
    measured = 0  # attempts started in the measured period so far
    pending = 0  # of those, still running
    stop_ms = math.inf
    in_flight = 0
    waiting: deque[float] = deque()  # open loop: arrivals waiting for a free slot
    batch_left = 0
    heappush, heappop, next_duration, last_get = heapq.heappush, heapq.heappop, durations.next, last_commit.get
    pair, never = keys.pair, -math.inf

    def begin_attempt(txn: int, number: int, at: float) -> None:
        nonlocal seq, measured, pending, stop_ms
        before, window = next_duration()
        aid = len(att)
        snap = at + before
        end = snap + window
        counted = warm <= at < stop_ms
        att.append((txn, number, at, snap, end, counted))
        a_ok.append(False)
        if counted:
            measured += 1
            pending += 1
            if measured >= attempts:
                stop_ms = math.nextafter(at, math.inf)  # this attempt is the last one measured
        seq += 1
        heappush(heap, (end, _END, seq, aid))

    def begin_txn(slot: int, at: float) -> None:
        nonlocal in_flight
        txn = len(t_keys)
        if read_share and rng.random() < read_share:
            t_keys.append(())
        elif rows_per_txn == 2:
            t_keys.append(pair(rng))
        else:
            t_keys.append(tuple(keys.distinct(rng, rows_per_txn)))
        t_start.append(at)
        t_slot.append(slot)
        in_flight += 1
        begin_attempt(txn, 1, at)

    def txn_done(txn: int, at: float) -> None:
        nonlocal in_flight, batch_left
        in_flight -= 1
        if load.model == "closed":
            begin_txn(t_slot[txn], at + load.think_ms)
        elif load.model == "open":
            if waiting:
                waiting.popleft()
                begin_txn(0, at)
        else:
            batch_left -= 1
            if batch_left == 0:
                start_batch(at)

    def start_batch(at: float) -> None:
        nonlocal batch_left
        batch_left = load.users
        for u in range(load.users):
            begin_txn(u, at)

    def schedule_arrival(after: float) -> None:
        nonlocal seq
        seq += 1
        gap = 1000.0 / load.arrival_rate if load.even else arrivals.expovariate(load.arrival_rate / 1000.0)
        heappush(heap, (after + gap, _ARRIVAL, seq, -1))

    if load.model == "closed":
        for u in range(load.users):
            begin_txn(u, 0.0)
    elif load.model == "batches":
        start_batch(0.0)
    else:
        schedule_arrival(0.0)

    while heap and not (stop_ms != math.inf and pending == 0):
        at, kind, _, aid = heappop(heap)
        if kind == _ARRIVAL:
            if load.users and in_flight >= load.users:
                waiting.append(at)
            else:
                begin_txn(0, at)
            schedule_arrival(at)
            continue
        txn, number, _start, snap, _end, counted = att[aid]
        if counted:
            pending -= 1
        rows = t_keys[txn]
        for k in rows:
            if last_get(k, never) > snap:
                break
        else:
            a_ok[aid] = True
            for k in rows:
                last_commit[k] = at
            txn_done(txn, at)
            continue
        if number >= policy.max_attempts or at - t_start[txn] >= deadline_ms:
            txn_done(txn, at)
            continue
        begin_attempt(txn, number + 1, at + policy.delay_ms(number, rng))

    if att:
        txns, numbers, starts, _snaps, ends, counted_ = zip(*att)
    else:
        txns = numbers = starts = ends = counted_ = ()
    keep = np.asarray(counted_, dtype="bool")
    return SimAttempts(
        txn=np.asarray(txns, dtype="int64")[keep],
        attempt=np.asarray(numbers, dtype="int32")[keep],
        start_ms=np.asarray(starts, dtype="float64")[keep],
        end_ms=np.asarray(ends, dtype="float64")[keep],
        committed=np.asarray(a_ok, dtype="bool")[keep],
        from_ms=warm,
        to_ms=stop_ms if stop_ms != math.inf else (max(starts) if starts else warm),
    )


def first_committer_wins(snapshot_ms: Sequence[float], commit_ms: Sequence[float], rows: Sequence[Sequence[int]]) -> list[bool]:
    """Which of a fixed set of attempts commit under first-committer-wins (no retries).

    The rule the simulation applies, on its own for worked examples: in COMMIT-time
    order, an attempt commits when none of its rows was committed by another after
    its snapshot.
    """
    order = sorted(range(len(commit_ms)), key=lambda i: (commit_ms[i], i))
    last: dict[int, float] = {}
    ok = [False] * len(commit_ms)
    for i in order:
        if all(last.get(k, -math.inf) <= snapshot_ms[i] for k in rows[i]):
            ok[i] = True
            for k in rows[i]:
                last[k] = commit_ms[i]
    return ok
