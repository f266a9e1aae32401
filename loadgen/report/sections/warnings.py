"""Warnings: every reason a figure here may not mean what it says (next to the headline)."""

from __future__ import annotations

from loadgen.report.cells import Cell, warnings_for
from loadgen.report.html import esc, section

__all__ = ["warnings_section"]


def warnings_section(cells: list[Cell], p: str) -> str:
    """Every warning (loadgen.report.cells.warnings_for), or a line saying there is none."""
    w = warnings_for(cells)
    if not w:
        return section(
            f"{p}warnings",
            "Warnings",
            '<p class="ok">None: enough attempts, complete runs, comparable durations, no sign of a saturated load generator or machine, attempts as fast as the target answers lightly loaded.</p>',
        )
    items = "".join(f"<li>{esc(x)}</li>" for x in w)
    return section(f"{p}warnings", "Warnings", f'<div class="warnings"><ul>{items}</ul></div>')
