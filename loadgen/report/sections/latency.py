"""Latency: attempt and transaction percentiles against contention."""

from __future__ import annotations

from loadgen.report import charts
from loadgen.report.cells import Cell, cells_frame
from loadgen.report.html import chart, esc, ms, section, table
from loadgen.results.metrics import percent

__all__ = ["latency_section"]


def latency_section(cells: list[Cell], p: str) -> str:
    """Percentiles per cell, and a chart when the number of accounts varies."""
    rows = []
    for c in cells:
        a, t = c.headline["attempt_latency_ms"], c.headline["transaction_latency_ms"]
        rows.append(
            [esc(c.label), percent(c.headline["conflict_rate"])]
            + [ms(a[k]) for k in ("p50", "p95", "p99", "p99.9")]
            + [ms(t[k]) for k in ("p50", "p95", "p99", "p99.9")]
        )
    body = (
        '<p class="muted">Per attempt: one try, from BEGIN to COMMIT or error. Per transaction: from its first '
        "attempt's start to its last attempt's end, retries and backoff included. Milliseconds.</p>"
    )
    body += table(
        ["cell", "conflict rate", "attempt p50", "p95", "p99", "p99.9", "transaction p50", "p95", "p99", "p99.9"],
        rows,
        ["baseline" if c.is_baseline else "" for c in cells],
    )
    frame = cells_frame(cells)
    if frame["accounts"].nunique() > 1:
        body += chart(charts.latency(frame))
    return section(f"{p}latency", "Latency against contention", body)
