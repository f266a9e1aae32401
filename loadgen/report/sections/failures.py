"""Failures by step: where failed attempts ended in the transaction shape (loadgen.report.failures)."""

from __future__ import annotations

from loadgen.model.steps import step_order
from loadgen.report.cells import Cell
from loadgen.report.html import esc, num, section, table
from loadgen.results.metrics import percent

__all__ = ["failures_section"]


def failures_section(cells: list[Cell], p: str) -> str:
    """Failed attempts by the step of the transaction shape they ended at (attempts.parquet's failed_at)."""
    with_steps = [c for c in cells if c.failures]
    if not with_steps:
        return ""
    steps: list[str] = []
    for c in with_steps:
        steps += [f.step for f in c.failures if f.step not in steps]
    steps = step_order(steps)
    rows = []
    for c in with_steps:
        at = {f.step: f for f in c.failures}
        rows.append(
            [esc(c.label), num(sum(f.failed for f in c.failures))]
            + [f"{num(at[s].failed)} ({percent(at[s].share, 1)})" if s in at else "-" for s in steps]
        )
    body = (
        '<p class="muted">Where failed attempts ended, by the step of the transaction shape (begin, debit, credit, '
        "ledger, commit, ...; connect: no connection came). On DSQL, and under cc occ, a conflict ends an attempt at "
        "commit, after all its statements; under cc nowait or locking, at the statement that met another's row lock.</p>"
    )
    body += table(["cell", "failed attempts"] + [esc(s) for s in steps], rows)
    return section(f"{p}failures", "Failures by step", body)
