"""The report's "cluster's own counters" section: what DSQL counted (CloudWatch) beside what loadgen counted.

Reads run.json's ``cluster_metrics`` (loadgen.targets.dsql_cloudwatch); runs without it
(every target but DSQL) get no section at all.
"""

from __future__ import annotations

from loadgen.report.cells import Cell

__all__ = ["cluster_rows", "cluster_caption"]


def _n(v: float | None, digits: int = 0) -> str:
    return "no data" if v is None else f"{v:,.{digits}f}"


def cluster_rows(cell: Cell) -> list[list[str]] | None:
    """(figure, loadgen counted, the cluster counted) rows for one cell; None when the run has no cluster metrics."""
    found = cell.run.sections.cluster_metrics
    if found is None or not found.metrics:
        return None
    h = cell.headline
    attempts, conflicts, commits = int(h.get("attempts") or 0), int(h.get("conflicts") or 0), int(h.get("commits") or 0)
    occ, total, dpu = found.value("OccConflicts"), found.value("TotalTransactions"), found.value("TotalDPU")
    rows = [
        ["conflicts (OCC aborts)", f"{conflicts:,} attempts", _n(occ) + " transactions (OccConflicts)"],
        ["transactions", f"{attempts:,} attempts", _n(total) + " (TotalTransactions, read-only included)"],
        [
            "conflict share",
            f"{conflicts / attempts:.2%}" if attempts else "-",
            f"{occ / total:.2%}" if occ is not None and total else "no data",
        ],
        ["commit latency", "-", _n(found.value("CommitLatency"), 1) + " ms (CommitLatency, P50 per minute, averaged)"],
        ["DPUs consumed", "-", _n(dpu, 1) + " DPU (TotalDPU, the unit DSQL bills)"],
        ["DPUs per committed transfer", "-", f"{dpu / commits:.4f}" if dpu is not None and commits else "no data"],
    ]
    parts = ", ".join(
        f"{name[:-3].lower()} {_n(found.value(name), 1)}" for name in ("ComputeDPU", "ReadDPU", "WriteDPU", "MultiRegionWriteDPU")
    )
    rows.append(["DPUs by kind", "-", parts])
    return rows


def cluster_caption(cell: Cell) -> str | None:
    """What the cluster's figures cover, or why they are missing; None when the run has no cluster metrics."""
    found = cell.run.sections.cluster_metrics
    if found is None:
        return None
    if found.unavailable:
        return f"Not read: {found.unavailable}"
    window, note = found.window, found.note
    return (
        f"{found.source or ''}, whole minutes {window.get('start', '?')} to {window.get('end', '?')}: the cluster's "
        "figures also hold whatever else ran in those minutes (loadgen's set-up just before the measured period, its "
        "invariant reads just after, other clients). loadgen counts attempts: each is one transaction on the cluster."
        + (f" {note}." if note else "")
    )
