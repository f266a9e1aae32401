"""Live contention counters: updated on every attempt, read by the web UI a few times a second.

The per-attempt path is a handful of integer increments: no locks (gevent switches
only on I/O), no allocation beyond a dict key. Everything derived (rates, shares,
the hottest accounts) is computed when someone asks. A snapshot is a plain,
JSON- and msgpack-friendly dict, so workers can send theirs to the master, which
adds them up with :func:`merge`.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import Any

from loadgen.model.attempt import ATTEMPT, OUTCOME, PAYEE, PAYER, SQLSTATE, AttemptRow
from loadgen.model.outcomes import COMMITTED as _COMMITTED
from loadgen.model.outcomes import CONTENTION
from loadgen.results.metrics import Counts, conflicts_by_kind, per_second, rates, share
from loadgen.results.recorder import AttemptRecorder

__all__ = ["ContentionCounters", "LiveRecorder", "Timeline", "merge", "view", "HOT_ACCOUNTS"]

#: How many of the hottest accounts a snapshot carries (a worker sends only these).
HOT_ACCOUNTS = 20


class ContentionCounters:
    """Running totals for one process since the test started."""

    __slots__ = (
        "attempts",
        "commits",
        "conflicts",
        "retries",
        "by_outcome",
        "transactions",
        "retried",
        "failed",
        "attempts_hist",
        "hot",
    )

    def __init__(self) -> None:
        self.attempts = 0
        self.commits = 0
        self.conflicts = 0  # attempts that failed on contention (any CONTENTION outcome), as loadgen.results.metrics counts them
        self.retries = 0  # attempts numbered 2 and up
        self.by_outcome: dict[tuple[str, str | None], int] = {}
        self.transactions = 0
        self.retried = 0  # transactions that needed more than one attempt
        self.failed = 0  # transactions that did not commit in the end
        self.attempts_hist: dict[int, int] = {}
        self.hot: dict[int, int] = {}  # account -> contention failures touching it

    def add_attempt(self, outcome: str, sqlstate: str | None, attempt: int, payer: int, payee: int) -> None:
        self.attempts += 1
        if attempt > 1:
            self.retries += 1
        key = (outcome, sqlstate)
        by = self.by_outcome
        by[key] = by.get(key, 0) + 1
        if outcome in _COMMITTED:
            self.commits += 1
        elif outcome in CONTENTION:
            self.conflicts += 1
            hot = self.hot
            hot[payer] = hot.get(payer, 0) + 1
            hot[payee] = hot.get(payee, 0) + 1

    def add_transaction(self, attempts: int, committed: bool) -> None:
        self.transactions += 1
        if attempts > 1:
            self.retried += 1
        if not committed:
            self.failed += 1
        h = self.attempts_hist
        h[attempts] = h.get(attempts, 0) + 1

    def snapshot(self, hot_accounts: int = HOT_ACCOUNTS) -> dict[str, Any]:
        """Cumulative counts as plain data (string keys: msgpack and JSON both accept them)."""
        hottest = heapq.nlargest(hot_accounts, self.hot.items(), key=lambda kv: kv[1])
        return {
            "attempts": self.attempts,
            "commits": self.commits,
            "conflicts": self.conflicts,
            "retries": self.retries,
            "transactions": self.transactions,
            "retried": self.retried,
            "failed": self.failed,
            "outcomes": [[o, s, n] for (o, s), n in self.by_outcome.items()],
            "attempts_hist": {str(k): v for k, v in self.attempts_hist.items()},
            "hot": [[a, n] for a, n in hottest],
        }


class LiveRecorder(AttemptRecorder):
    """An attempt recorder that also keeps the live counters up to date."""

    def __init__(self, run_id: str, counters: ContentionCounters, worker: str = "local", cell: str | None = None) -> None:
        super().__init__(run_id, worker, cell)
        self.counters = counters

    def add(self, row: AttemptRow, user: int) -> None:
        self.rows.append(row)
        self.users.append(user)
        self.counters.add_attempt(row[OUTCOME], row[SQLSTATE], row[ATTEMPT], row[PAYER], row[PAYEE])


def merge(snapshots: list[dict[str, Any]], hot_accounts: int = HOT_ACCOUNTS) -> dict[str, Any]:
    """Add up snapshots (one per worker). Hot accounts are summed over each worker's top list."""
    total: dict[str, Any] = {k: 0 for k in ("attempts", "commits", "conflicts", "retries", "transactions", "retried", "failed")}
    outcomes: dict[tuple[str, str | None], int] = {}
    hist: dict[str, int] = {}
    hot: dict[int, int] = {}
    for snap in snapshots:
        for k in total:
            total[k] += int(snap.get(k, 0))
        for o, s, n in snap.get("outcomes", []):
            outcomes[(o, s)] = outcomes.get((o, s), 0) + int(n)
        for k, n in snap.get("attempts_hist", {}).items():
            hist[str(k)] = hist.get(str(k), 0) + int(n)
        for a, n in snap.get("hot", []):
            hot[int(a)] = hot.get(int(a), 0) + int(n)
    total["outcomes"] = [[o, s, n] for (o, s), n in outcomes.items()]
    total["attempts_hist"] = hist
    total["hot"] = [[a, n] for a, n in heapq.nlargest(hot_accounts, hot.items(), key=lambda kv: kv[1])]
    return total


class Timeline:
    """The conflict rate, commits per second and users, one point per sample, from cumulative totals."""

    def __init__(self, maxlen: int = 1800) -> None:
        self.points: deque[dict[str, float | None]] = deque(maxlen=maxlen)
        self._last: tuple[float, int, int, int] | None = None
        self._t0 = time.monotonic()

    def reset(self) -> None:
        self.points.clear()
        self._last = None
        self._t0 = time.monotonic()

    def sample(self, snap: dict[str, Any], users: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        cur = (now, int(snap["attempts"]), int(snap["conflicts"]), int(snap["commits"]))
        last, self._last = self._last, cur
        if last is None:
            return
        dt = cur[0] - last[0]
        attempts, conflicts, commits = (c - p for c, p in zip(cur[1:], last[1:]))
        if dt <= 0 or attempts < 0:  # counters were reset under us: start over
            return
        r = rates(Counts(attempts, commits, conflicts, elapsed_s=dt))
        self.points.append(
            {
                "t": round(now - self._t0, 2),
                "users": users,
                "conflict_rate": r["conflict_rate"],
                # The counts the point's rate divides: the chart's figures add up to the cards'.
                "attempts": attempts,
                "conflicts": conflicts,
                "throughput_commits_per_s": r["throughput_commits_per_s"],
                "attempts_per_s": per_second(attempts, dt),
            }
        )


def view(snap: dict[str, Any]) -> dict[str, Any]:
    """The contention tab's numbers, derived from (merged) cumulative counts by loadgen.results.metrics."""
    attempts, commits = snap["attempts"], snap["commits"]
    outcomes = sorted(
        ({"outcome": o, "sqlstate": s, "count": n, "share": share(n, attempts)} for o, s, n in snap["outcomes"]),
        key=lambda r: -r["count"],
    )
    hist = sorted(((int(k), v) for k, v in snap["attempts_hist"].items()))
    by_kind: dict[str, int] = {}
    for o, _, n in snap["outcomes"]:
        by_kind[o] = by_kind.get(o, 0) + int(n)
    counts = Counts(
        attempts=attempts,
        commits=commits,
        conflicts=snap["conflicts"],
        retries=snap["retries"],
        transactions=snap["transactions"],
        retried=snap["retried"],
    )
    return {
        "attempts": attempts,
        "commits": commits,
        "conflicts": snap["conflicts"],
        "conflicts_by_kind": conflicts_by_kind(by_kind),
        "retries": snap["retries"],
        "transactions": snap["transactions"],
        "failed_transactions": snap["failed"],
        **rates(counts),
        "max_attempts": hist[-1][0] if hist else 0,
        "attempts_histogram": [{"attempts": k, "transactions": v} for k, v in hist],
        "outcomes": outcomes,
        "hot_accounts": [{"account": a, "contention_failures": n} for a, n in snap["hot"]],
    }
