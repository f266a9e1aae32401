"""Heatmap: the conflict rate over accounts x closed-loop users."""

from __future__ import annotations

from loadgen.report import charts
from loadgen.report.cells import Cell, cells_frame
from loadgen.report.html import chart, section
from loadgen.results.metrics import CONFLICT_RATE

__all__ = ["heatmap_section"]


def heatmap_section(cells: list[Cell], p: str) -> str:
    """Closed-loop cells only; "" unless accounts or users vary."""
    frame = cells_frame(cells)
    frame = frame[frame["closed_loop"]]  # users mean in-flight transactions only in a closed loop
    if frame.empty or (frame["accounts"].nunique() < 2 and frame["users"].nunique() < 2):
        return ""
    return section(
        f"{p}heatmap", f"Heatmap: {CONFLICT_RATE} over accounts x closed-loop users", chart(charts.heatmap(frame.reset_index(drop=True)))
    )
