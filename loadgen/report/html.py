"""HTML primitives every section of the report is built from: escaping, number formats, a table,
a card, a section, a chart.

Percentages are written by loadgen.results.metrics.percent, as the terminal and the web UI write them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import pandas as pd

__all__ = ["esc", "num", "ratio", "ms", "table", "card", "section", "chart"]


def esc(v: Any) -> str:
    """Any value as text safe inside HTML (and inside a quoted attribute)."""
    return html.escape(str(v), quote=True)


def num(v: float | None, digits: int = 0) -> str:
    """A count or figure with thousands separators; "-" where unknown (None or NaN)."""
    if v is None or pd.isna(v):
        return "-"
    return f"{v:,.{digits}f}"


def ratio(v: float | None) -> str:
    """A ratio to a reference: "1.25x"."""
    return "-" if v is None or pd.isna(v) else f"{v:.2f}x"


def ms(v: float | None) -> str:
    """Milliseconds: one decimal below a second, none above."""
    if v is None or pd.isna(v):
        return "-"
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], row_classes: Iterable[str] | None = None) -> str:
    """Cells go in as HTML (escape text with :func:`esc`); headers as text."""
    classes = list(row_classes) if row_classes is not None else None
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def card(key: str, value: str, title: str = "") -> str:
    """A headline card: ``value`` (HTML) over ``key``, ``title`` shown on hover."""
    t = f' title="{esc(title)}"' if title else ""
    return f'<div class="card"{t}><div class="v">{value}</div><div class="k">{esc(key)}</div></div>'


def section(sid: str, title: str, body: str) -> str:
    """A section of the page, its id the navigation's anchor."""
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def chart(svg: str) -> str:
    """An inline SVG chart (loadgen.report.charts), scaled to the page's width."""
    return f'<div class="chart">{svg}</div>'
