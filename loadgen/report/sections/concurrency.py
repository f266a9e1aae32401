"""Concurrency: the conflict rate against closed-loop users (the second axis)."""

from __future__ import annotations

from loadgen.report import charts
from loadgen.report.cells import Cell, cells_frame
from loadgen.report.html import chart, esc, ms, num, section, table
from loadgen.results.metrics import CONFLICT_RATE, percent

__all__ = ["concurrency_section"]


def concurrency_section(cells: list[Cell], p: str) -> str:
    """The second axis: the same transfers from more closed-loop users (a clearly separate experiment)."""
    frame = cells_frame(cells)
    closed = frame[frame["closed_loop"]]
    if closed["users"].nunique() < 2:
        return ""
    rows = [
        [esc(r.cell), num(r.users), percent(r.conflict_rate), num(r.throughput_commits_per_s, 1), ms(r.attempt_p50_ms)]
        for r in closed.itertuples()
    ]
    body = (
        "<p>Concurrency is a second axis: closed-loop users, each with one transaction in flight and no think time, so "
        "about as many transactions are in flight as there are users (the talk had about 18). More users raise "
        "lambda x D; past what the machine holds they only add queueing (see the warnings).</p>"
        + chart(charts.concurrency(frame))
        + table(["cell", "closed-loop users", CONFLICT_RATE, "commits/s", "attempt p50 ms"], rows)
    )
    return section(f"{p}concurrency", f"Concurrency: {CONFLICT_RATE} against closed-loop users", body)
