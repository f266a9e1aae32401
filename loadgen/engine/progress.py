"""The live progress line a headless run prints every few seconds.

It names the same figures as the summary, the live UI, run.json and the report
(loadgen.results.metrics): the contention rate, with its breakdown by kind beside it.
The counts come from the attempt records themselves, tallied at each line from where
the last line stopped, so recording an attempt costs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from loadgen.engine.users import ATTEMPT, NAME, TRANSACTION
from loadgen.model.attempt import OUTCOME
from loadgen.model.outcomes import CONTENTION
from loadgen.results.metrics import Counts, outcome_counts, rates

__all__ = ["progress_line", "OutcomeTally"]


class OutcomeTally:
    """Attempts by outcome so far, brought up to date from growing lists of attempt rows."""

    def __init__(self, sources: list[Any] | Callable[[], Iterable[list[Any]]]) -> None:
        self._sources = sources
        self._seen: dict[int, int] = {}  # id(rows) -> rows already counted
        self.by_outcome: dict[str, int] = {}

    def update(self) -> dict[str, int]:
        lists = [self._sources] if isinstance(self._sources, list) else list(self._sources())
        by = self.by_outcome
        for rows in lists:
            start = self._seen.get(id(rows), 0)
            end = len(rows)
            for i in range(start, end):
                outcome = rows[i][OUTCOME]
                by[outcome] = by.get(outcome, 0) + 1
            self._seen[id(rows)] = end
        return by


def progress_line(elapsed_s: float, env: Any) -> str:
    users = env.runner.user_count if env.runner else 0
    tally: OutcomeTally | None = getattr(env, "loadgen_tally", None)
    if tally is not None:
        by = tally.update()
        commits, conflicts, contention = outcome_counts(by)
        attempts = sum(by.values())
        rate = rates(Counts(attempts, commits, conflicts, contention))["contention_rate"] or 0.0
        kinds = ", ".join(f"{o} {by[o]}" for o in sorted(by) if o in CONTENTION and by[o])
        return f"  {elapsed_s:5.0f}s  users {users:5d}  attempts {attempts:8d}  commits {commits:8d}  contention rate {rate:6.2%}" + (
            f" ({kinds})" if kinds else ""
        )
    # No attempt records in this process (a distributed master): Locust's own counts.
    a = env.stats.get(NAME, ATTEMPT)
    t = env.stats.get(NAME, TRANSACTION)
    counts = Counts(attempts=a.num_requests, commits=t.num_requests - t.num_failures, failed_attempts=a.num_failures)
    failed = rates(counts)["failed_attempt_rate"] or 0.0
    return (
        f"  {elapsed_s:5.0f}s  users {users:5d}  attempts {counts.attempts:8d}  commits {counts.commits:8d}"
        f"  failed attempts {counts.failed_attempts:7d} ({failed:6.2%})"
    )
