"""What a run shows while it runs: the progress line, a snapshot of the counts, and the views that show them.

The progress line names the same figures as the summary, the live UI, run.json and the
report (loadgen.results.metrics): the one conflict rate, with its breakdown by kind beside
it. The counts come from the attempt records themselves, tallied at each line from where
the last line stopped, so recording an attempt costs nothing more. Where a process holds
no records (a distributed master), Locust's counts stand in: its failure labels name
the outcome (loadgen.engine.users).

A ``ProgressView`` hears a run's or a sweep's events: ``PlainLines`` prints the line
every few seconds (logs, CI, pipes: what tests read); loadgen.cli.display draws a live
display on a terminal from ``snapshot``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from loadgen.engine.users import ATTEMPT, NAME, TRANSACTION
from loadgen.model.attempt import OUTCOME
from loadgen.model.outcomes import CONTENTION
from loadgen.results.metrics import CONFLICT_RATE, KIND_LABELS, Counts, breakdown, outcome_counts, rates

__all__ = ["progress_line", "OutcomeTally", "Snapshot", "snapshot", "ProgressView", "PlainLines"]


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

    def settle(self) -> None:
        """Count what the lists hold now, then forget them: they are about to be swapped for
        fresh ones (streamed to disk), and a fresh list may even reuse a freed one's id."""
        self.update()
        self._seen.clear()


#: The outcome in Locust's record of a failed attempt: AttemptFailed('conflict (40001)'), as an
#: exception in this process or as its repr in a worker's report to the master.
_LOCUST_OUTCOME = re.compile(r"AttemptFailed\(['\"]([a-z_]+)")


@dataclass(frozen=True)
class Snapshot:
    """A run's counts so far, ``elapsed_s`` into it, and the figures derived from them."""

    elapsed_s: float
    users: int
    counts: Counts

    @property
    def attempts(self) -> int:
        return self.counts.attempts

    @property
    def commits(self) -> int:
        return self.counts.commits

    @property
    def failed_attempts(self) -> int:
        return self.counts.failed_attempts or 0

    def rate(self, name: str) -> float:
        """A figure from loadgen.results.metrics.rates (0 before the first attempt)."""
        return rates(self.counts)[name] or 0.0


def snapshot(elapsed_s: float, env: Any) -> Snapshot:
    """The counts so far: from the attempt records where this process has them, else Locust's statistics."""
    users = env.runner.user_count if env.runner else 0
    tally: OutcomeTally | None = getattr(env, "loadgen_tally", None)
    if tally is not None:
        by = tally.update()
        commits, conflicts = outcome_counts(by)
        attempts = sum(by.values())
        return Snapshot(elapsed_s, users, Counts(attempts, commits, conflicts, failed_attempts=attempts - commits))
    a = env.stats.get(NAME, ATTEMPT)
    t = env.stats.get(NAME, TRANSACTION)
    failed: Counter[str] = Counter()
    for e in env.stats.errors.values():
        m = _LOCUST_OUTCOME.search(e.error if isinstance(e.error, str) else repr(e.error))
        if e.method == ATTEMPT and e.name == NAME and m:
            failed[m.group(1)] += e.occurrences
    _, conflicts = outcome_counts(failed)
    counts = Counts(
        attempts=a.num_requests,
        commits=t.num_requests - t.num_failures,
        conflicts=conflicts,
        failed_attempts=a.num_failures,
    )
    return Snapshot(elapsed_s=elapsed_s, users=users, counts=counts)


def progress_line(elapsed_s: float, env: Any) -> str:
    """The once-a-second line: the counts of :func:`snapshot`, the conflict rate first, its breakdown by kind
    where this process has the records."""
    snap = snapshot(elapsed_s, env)
    counts = snap.counts
    line = (
        f"  {elapsed_s:5.0f}s  {CONFLICT_RATE} {snap.rate('conflict_rate'):6.2%}  users {snap.users:5d}"
        f"  attempts {counts.attempts:8d}  commits {counts.commits:8d}"
    )
    tally: OutcomeTally | None = getattr(env, "loadgen_tally", None)
    if tally is not None:
        by = tally.by_outcome  # just counted by snapshot()
        kinds = breakdown({o: by[o] for o in sorted(by) if o in CONTENTION}, KIND_LABELS)
        line += f"  conflicts: {kinds}" if kinds else ""
    return line


class ProgressView(Protocol):
    """Hears a scenario file's run: cells start, tick once a second, and finish."""

    def cell_started(self, index: int, total: int, label: str, duration_s: float) -> None: ...

    def tick(self, elapsed_s: float, env: Any) -> None: ...

    def cell_done(self, index: int, total: int, label: str, result_line: str) -> None: ...


class PlainLines:
    """Progress as plain lines: every ``every_s`` seconds, and a line per cell of a sweep."""

    def __init__(self, say: Callable[[str], None] = print, every_s: float = 1.0) -> None:
        self.say, self.every_s = say, every_s
        self._prefix = "  "
        self._last = 0.0

    def cell_started(self, index: int, total: int, label: str, duration_s: float) -> None:
        self._last = 0.0
        if total > 1:
            self._prefix = f"  [{index + 1}/{total}] "
            self.say(f"cell {index + 1}/{total}  {label}")

    def tick(self, elapsed_s: float, env: Any) -> None:
        if elapsed_s - self._last >= self.every_s - 0.5:
            self._last = elapsed_s
            self.say(self._prefix + progress_line(elapsed_s, env).lstrip())

    def cell_done(self, index: int, total: int, label: str, result_line: str) -> None:
        if total > 1:
            self.say(f"  done {index + 1}/{total}  {label}: {result_line}")
