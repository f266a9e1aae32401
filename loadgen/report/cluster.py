"""The report's "cluster's own counters" section: what DSQL counted (CloudWatch) beside what loadgen counted.

Reads run.json's ``cluster_metrics`` (loadgen.targets.dsql_cloudwatch); runs without it
(every target but DSQL) get no section at all.
"""

from __future__ import annotations

from typing import Any

from loadgen.report.cells import Cell

__all__ = ["cluster_rows", "cluster_caption"]


def _value(metrics: dict[str, Any], name: str) -> float | None:
    m = metrics.get(name)
    v = m.get("value") if isinstance(m, dict) else None
    return float(v) if isinstance(v, (int, float)) else None


def _n(v: float | None, digits: int = 0) -> str:
    return "no data" if v is None else f"{v:,.{digits}f}"


def cluster_rows(cell: Cell) -> list[list[str]] | None:
    """(figure, loadgen counted, the cluster counted) rows for one cell; None when the run has no cluster metrics."""
    found = cell.run.meta.get("cluster_metrics")
    if not isinstance(found, dict) or not isinstance(found.get("metrics"), dict):
        return None
    metrics = found["metrics"]
    h = cell.headline
    attempts, conflicts, commits = int(h.get("attempts") or 0), int(h.get("conflicts") or 0), int(h.get("commits") or 0)
    occ, total, dpu = _value(metrics, "OccConflicts"), _value(metrics, "TotalTransactions"), _value(metrics, "TotalDPU")
    rows = [
        ["conflicts (OCC aborts)", f"{conflicts:,} attempts", _n(occ) + " transactions (OccConflicts)"],
        ["transactions", f"{attempts:,} attempts", _n(total) + " (TotalTransactions, read-only included)"],
        [
            "conflict share",
            f"{conflicts / attempts:.2%}" if attempts else "-",
            f"{occ / total:.2%}" if occ is not None and total else "no data",
        ],
        ["commit latency", "-", _n(_value(metrics, "CommitLatency"), 1) + " ms (CommitLatency, P50 per minute, averaged)"],
        ["DPUs consumed", "-", _n(dpu, 1) + " DPU (TotalDPU, the unit DSQL bills)"],
        ["DPUs per committed transfer", "-", f"{dpu / commits:.4f}" if dpu is not None and commits else "no data"],
    ]
    parts = ", ".join(
        f"{name[:-3].lower()} {_n(_value(metrics, name), 1)}" for name in ("ComputeDPU", "ReadDPU", "WriteDPU", "MultiRegionWriteDPU")
    )
    rows.append(["DPUs by kind", "-", parts])
    return rows


def cluster_caption(cell: Cell) -> str | None:
    """What the cluster's figures cover, or why they are missing; None when the run has no cluster metrics."""
    found = cell.run.meta.get("cluster_metrics")
    if not isinstance(found, dict):
        return None
    if found.get("unavailable"):
        return f"Not read: {found['unavailable']}"
    raw = found.get("window")
    window: dict[str, Any] = raw if isinstance(raw, dict) else {}
    note = found.get("note")
    return (
        f"{found.get('source', '')}, whole minutes {window.get('start', '?')} to {window.get('end', '?')}: the cluster's "
        "figures also hold whatever else ran in those minutes (loadgen's set-up just before the measured period, its "
        "invariant reads just after, other clients). loadgen counts attempts: each is one transaction on the cluster."
        + (f" {note}." if note else "")
    )
