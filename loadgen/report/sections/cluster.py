"""Cluster counters: DSQL's own CloudWatch counters beside loadgen's (loadgen.report.cluster)."""

from __future__ import annotations

from loadgen.report.cells import Cell
from loadgen.report.cluster import cluster_caption, cluster_rows
from loadgen.report.html import esc, section, table

__all__ = ["cluster_section"]


def cluster_section(cells: list[Cell], p: str) -> str:
    """DSQL's own counters (CloudWatch) beside loadgen's; "" when no cell has them (every other target)."""
    parts = []
    for c in cells:
        caption = cluster_caption(c)
        if caption is None:
            continue
        rows = cluster_rows(c)
        label = f"<h3>{esc(c.label)}</h3>" if len(cells) > 1 else ""
        shown = table(["", "loadgen counted", "the cluster counted"], [[esc(x) for x in r] for r in rows]) if rows else ""
        parts.append(f'{label}{shown}<p class="muted">{esc(caption)}</p>')
    return section(f"{p}cluster", "The cluster's own counters", "".join(parts)) if parts else ""
