"""What a run shows while it runs: a snapshot of Locust's statistics, and the views that show it.

``Snapshot`` is read from Locust's statistics once a second. Locust counts failed
attempts by their label, which names the outcome (loadgen.engine.users), so the
snapshot counts outcomes as the summary does and derives its figures with
loadgen.results.metrics.rates, under the same names. A ``ProgressView`` hears a run's
or a sweep's events: ``PlainLines`` prints a line every few seconds (logs, CI, pipes:
what tests read); loadgen.cli.display draws a live display on a terminal.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from loadgen.engine.users import ATTEMPT, NAME, TRANSACTION
from loadgen.results.metrics import Counts, outcome_counts, rates

__all__ = ["Snapshot", "ProgressView", "PlainLines", "progress_line", "snapshot"]

#: The outcome in Locust's record of a failed attempt: AttemptFailed('conflict (40001)'), as an
#: exception in this process or as its repr in a worker's report to the master.
_OUTCOME = re.compile(r"AttemptFailed\(['\"]([a-z_]+)")


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
    """The counts in Locust's statistics (a master's include its workers')."""
    a = env.stats.get(NAME, ATTEMPT)
    t = env.stats.get(NAME, TRANSACTION)
    failed: Counter[str] = Counter()
    for e in env.stats.errors.values():
        m = _OUTCOME.search(e.error if isinstance(e.error, str) else repr(e.error))
        if e.method == ATTEMPT and e.name == NAME and m:
            failed[m.group(1)] += e.occurrences
    _, conflicts, contention = outcome_counts(failed)
    counts = Counts(
        attempts=a.num_requests,
        commits=t.num_requests - t.num_failures,
        conflicts=conflicts,
        contention=contention,
        failed_attempts=a.num_failures,
    )
    return Snapshot(elapsed_s=elapsed_s, users=env.runner.user_count if env.runner else 0, counts=counts)


def progress_line(elapsed_s: float, env: Any) -> str:
    """The plain progress line (one per few seconds in logs and pipes)."""
    s = snapshot(elapsed_s, env)
    return (
        f"  {s.elapsed_s:5.0f}s  users {s.users:5d}  attempts {s.attempts:8d}  commits {s.commits:8d}"
        f"  failed attempts {s.failed_attempts:7d} ({s.rate('failed_attempt_rate'):6.2%})"
        f"  conflict rate {s.rate('conflict_rate'):6.2%}  contention rate {s.rate('contention_rate'):6.2%}"
    )


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
