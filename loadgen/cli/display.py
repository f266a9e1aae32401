"""The live progress display of ``loadgen run`` on a terminal (rich).

A bar per sweep (cells done, time left over every cell's duration) and per run
(elapsed and remaining), under them users, commits per second over the last few
seconds, the conflict rate so far (loadgen.results.metrics) and the counts. Anything printed while it runs
(warnings, a cell's result) scrolls above it. Off a terminal, or with ``-q``, the
command prints plain lines instead (loadgen.engine.progress.PlainLines).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from loadgen.engine.progress import PlainLines, ProgressView, Snapshot, snapshot
from loadgen.results.metrics import CONFLICT_RATE

__all__ = ["LiveDisplay", "progress_view", "wants_live_display"]

#: Commits per second are averaged over this many seconds of ticks.
_RATE_WINDOW_S = 5.0


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def wants_live_display(console: Console, quiet: bool) -> bool:
    """A live display only for a person at a terminal; logs, pipes and ``-q`` get plain lines."""
    return not quiet and console.is_terminal and not console.is_dumb_terminal


class LiveDisplay:
    """A ``ProgressView`` drawn with rich; use as a context manager around the run."""

    def __init__(self, console: Console | None = None, sweep_name: str | None = None) -> None:
        self.console = console or Console()
        self.sweep_name = sweep_name
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=32),
            TextColumn("{task.fields[done]}"),
            TimeElapsedColumn(),
            TextColumn("elapsed  {task.fields[left]}"),
            console=self.console,
            auto_refresh=False,
        )
        self.stats = Text("starting users ...", style="dim")
        self.live = Live(Group(self.bars, self.stats), console=self.console, refresh_per_second=4, transient=False)
        self._sweep: TaskID | None = None
        self._cell: TaskID | None = None
        self._cell_s = 0.0  # the current cell's planned duration
        self._cell_started = 0.0
        self._index, self._total = 0, 1
        self._overheads: list[float] = []  # per finished cell: wall time beyond its duration (seeding, checks, report)
        self._recent: deque[tuple[float, int]] = deque()

    def __enter__(self) -> LiveDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.live.__exit__(kind, value, tb)

    # -- ProgressView ---------------------------------------------------------------------------

    def cell_started(self, index: int, total: int, label: str, duration_s: float) -> None:
        self._recent.clear()
        self._index, self._total = index, total
        self._cell_s, self._cell_started = duration_s, time.monotonic()
        if total > 1 and self._sweep is None:
            name = f"sweep {self.sweep_name}" if self.sweep_name else "sweep"
            self._sweep = self.bars.add_task(name, total=total, done=f"0/{total} cells", left="")
        if self._cell is not None:
            self.bars.remove_task(self._cell)
        what = f"cell {index + 1}/{total} {label}" if total > 1 else "run"
        self._cell = self.bars.add_task(what, total=duration_s, done=f"{duration_s:g} s", left="")
        self.stats = Text("seeding the bank, starting users ...", style="dim")
        self._update_times(0.0)
        self._redraw()

    def tick(self, elapsed_s: float, env: Any) -> None:
        self.stats = self._stats_line(snapshot(elapsed_s, env))
        self._update_times(elapsed_s)
        self._redraw()

    def cell_done(self, index: int, total: int, label: str, result_line: str) -> None:
        self._overheads.append(max(0.0, time.monotonic() - self._cell_started - self._cell_s))
        if self._cell is not None:
            self.bars.update(self._cell, completed=self._cell_s, left="done")
        if self._sweep is not None:
            self.bars.update(self._sweep, completed=index + 1, done=f"{index + 1}/{total} cells")
            self.console.print(f"  done {index + 1}/{total}  {label}: {result_line}", highlight=False)
        self._redraw()

    def _update_times(self, elapsed_s: float) -> None:
        """Time left in the run, and in the sweep: cells to come taken at this cell's duration plus the
        measured overhead of the cells done (seeding, checks and the report take seconds each)."""
        left_cell = max(0.0, self._cell_s - elapsed_s)
        if self._cell is not None:
            self.bars.update(self._cell, completed=min(elapsed_s, self._cell_s), left=f"{_clock(left_cell)} left")
        if self._sweep is not None:
            overhead = sum(self._overheads) / len(self._overheads) if self._overheads else 0.0
            later = self._total - self._index - 1
            left = left_cell + overhead + later * (self._cell_s + overhead)
            guess = "" if self._overheads else " or more"
            self.bars.update(self._sweep, completed=self._index + min(1.0, elapsed_s / self._cell_s if self._cell_s else 1.0))
            self.bars.update(self._sweep, left=f"about {_clock(left)}{guess} left")

    # -- drawing --------------------------------------------------------------------------------

    def _stats_line(self, s: Snapshot) -> Text:
        self._recent.append((s.elapsed_s, s.commits))
        while len(self._recent) > 2 and self._recent[-1][0] - self._recent[0][0] > _RATE_WINDOW_S:
            self._recent.popleft()
        (t0, c0), (t1, c1) = self._recent[0], self._recent[-1]
        rate = (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
        conflict = s.rate("conflict_rate")
        line = Text("  ")
        line.append(f"{CONFLICT_RATE} ")
        line.append(f"{conflict:.2%}", style="bold red" if conflict >= 0.05 else "bold")
        line.append(f"   users {s.users:,}", style="bold")
        line.append(f"   commits/s {rate:,.0f}")
        line.append(f"   attempts {s.attempts:,}   commits {s.commits:,}", style="dim")
        return line

    def _redraw(self) -> None:
        self.live.update(Group(self.bars, self.stats), refresh=True)


@contextmanager
def progress_view(quiet: bool, sweep_name: str | None, is_sweep: bool) -> Iterator[ProgressView | None]:
    """The view for ``loadgen run``: live on a terminal, plain lines elsewhere, nothing with ``-q``."""
    if quiet:
        yield None
        return
    console = Console()
    if not wants_live_display(console, quiet):
        yield PlainLines(lambda line: print(line, flush=True), every_s=5.0 if is_sweep else 1.0)
        return
    with LiveDisplay(console, sweep_name if is_sweep else None) as view:
        yield view
