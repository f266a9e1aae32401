"""What a run shows while it runs: a snapshot of Locust's statistics, and the views that show it.

``Snapshot`` is read from Locust's statistics once a second; its conflict rate counts
the same attempts as the summary's (outcome ``conflict``: SQLSTATE 40001, or DSQL's
OC000/OC001), here from Locust's failure labels rather than the attempts table.
A ``ProgressView`` hears a run's or a sweep's events: ``PlainLines`` prints a line
every few seconds (logs, CI, pipes: what tests read); loadgen.cli.live draws a live
display on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from loadgen.engine.users import ATTEMPT, NAME, TRANSACTION

__all__ = ["Snapshot", "ProgressView", "PlainLines", "progress_line", "snapshot"]

#: The start of Locust's failure label for a conflicted attempt (users._label: "conflict (40001)").
_CONFLICT_LABEL = "conflict ("


@dataclass(frozen=True)
class Snapshot:
    """A run's counts so far, ``elapsed_s`` into it."""

    elapsed_s: float
    users: int
    attempts: int
    failed_attempts: int
    conflicts: int
    commits: int

    @property
    def conflict_rate(self) -> float:
        return self.conflicts / self.attempts if self.attempts else 0.0

    @property
    def failed_rate(self) -> float:
        return self.failed_attempts / self.attempts if self.attempts else 0.0


def snapshot(elapsed_s: float, env: Any) -> Snapshot:
    """The counts in Locust's statistics (a master's include its workers')."""
    a = env.stats.get(NAME, ATTEMPT)
    t = env.stats.get(NAME, TRANSACTION)
    conflicts = sum(
        e.occurrences for e in env.stats.errors.values() if e.method == ATTEMPT and e.name == NAME and _CONFLICT_LABEL in str(e.error)
    )
    return Snapshot(
        elapsed_s=elapsed_s,
        users=env.runner.user_count if env.runner else 0,
        attempts=a.num_requests,
        failed_attempts=a.num_failures,
        conflicts=conflicts,
        commits=t.num_requests - t.num_failures,
    )


def progress_line(elapsed_s: float, env: Any) -> str:
    """The plain progress line (one per few seconds in logs and pipes)."""
    s = snapshot(elapsed_s, env)
    return (
        f"  {s.elapsed_s:5.0f}s  users {s.users:5d}  attempts {s.attempts:8d}  commits {s.commits:8d}"
        f"  failed attempts {s.failed_attempts:7d} ({s.failed_rate:6.2%})  conflict rate {s.conflict_rate:6.2%}"
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
