"""Where attempts failed (attempts.parquet's ``failed_at``), and whether failures look like DSQL's.

``by_step``: failed attempts per step of the transaction shape (the report's "failures
by step" section). ``occ_fidelity``: the figures that tell first-committer-wins from
PostgreSQL's first-writer-fails (issue 20): which share of contention failures are
40001 at COMMIT, how long a failed attempt takes against a committed one, and whether
each failure had a winner: a committed attempt on one of its accounts that ended
inside the failed attempt's window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loadgen.model.outcomes import COMMITTED, CONTENTION
from loadgen.model.steps import step_order

__all__ = ["StepFailures", "by_step", "OccFidelity", "occ_fidelity", "COLUMNS"]

#: The attempts columns these figures need.
COLUMNS = ["started_at", "latency_ms", "outcome", "sqlstate", "payer", "payee", "failed_at"]


@dataclass(frozen=True)
class StepFailures:
    """Failed attempts that ended at one step."""

    step: str
    failed: int
    #: Of all failed attempts.
    share: float
    #: Of them, contention (conflict, lock timeout, deadlock) and 40001 conflicts.
    contention: int
    conflicts: int


def by_step(table: pa.Table) -> list[StepFailures]:
    """Failed attempts per ``failed_at`` step, in the order attempts meet the steps; [] without the column.

    ``table``: attempts with ``outcome`` and ``failed_at`` (Arrow: counted without a Python object per row).
    """
    if "failed_at" not in table.column_names or table.num_rows == 0:
        return []
    failed = table.filter(pc.invert(pc.is_in(table["outcome"], pa.array(sorted(COMMITTED)))))
    if failed.num_rows == 0:
        return []
    counts = failed.select(["failed_at", "outcome"]).group_by(["failed_at", "outcome"]).aggregate([("outcome", "count")]).to_pylist()
    per_step: dict[str, list[int]] = {}
    for row in counts:
        step = row["failed_at"] or "unknown"
        n = int(row["outcome_count"])
        total = per_step.setdefault(step, [0, 0, 0])
        total[0] += n
        total[1] += n if row["outcome"] in CONTENTION else 0
        total[2] += n if row["outcome"] == "conflict" else 0
    return [
        StepFailures(step, failed_, failed_ / failed.num_rows, contention, conflicts)
        for step in step_order(set(per_step))
        for failed_, contention, conflicts in [per_step[step]]
    ]


@dataclass(frozen=True)
class OccFidelity:
    """How a run's contention failures compare with DSQL's (first committer wins, at COMMIT)."""

    contention_failures: int
    #: Share of contention failures that are 40001 at ``commit``.
    at_commit_40001: float | None
    median_failed_ms: float | None
    median_committed_ms: float | None
    #: Share of contention failures with a committed attempt on one of their accounts ending inside their window.
    with_winner_inside: float | None

    @property
    def failed_over_committed(self) -> float | None:
        if not self.median_failed_ms or not self.median_committed_ms:
            return None
        return self.median_failed_ms / self.median_committed_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "contention_failures": self.contention_failures,
            "at_commit_40001": self.at_commit_40001,
            "median_failed_ms": self.median_failed_ms,
            "median_committed_ms": self.median_committed_ms,
            "failed_over_committed": self.failed_over_committed,
            "with_winner_inside": self.with_winner_inside,
        }


def occ_fidelity(frame: pd.DataFrame, slack_ms: float = 0.0) -> OccFidelity:
    """The figures above for one run's attempts (``COLUMNS``). ``slack_ms``: how late a winner's end may be seen."""
    contention = frame[frame["outcome"].isin(CONTENTION)]
    committed = frame[frame["outcome"].isin(COMMITTED)]
    n = len(contention)
    at_commit = None
    if n and "failed_at" in frame.columns:
        at_commit = float(((contention["sqlstate"] == "40001") & (contention["failed_at"] == "commit")).sum()) / n
    med_failed = float(contention["latency_ms"].median()) if n else None
    med_committed = float(committed["latency_ms"].median()) if len(committed) else None
    return OccFidelity(n, at_commit, med_failed, med_committed, _winner_inside(contention, committed, slack_ms) if n else None)


def _winner_inside(failed: pd.DataFrame, committed: pd.DataFrame, slack_ms: float) -> float:
    """Share of ``failed`` attempts with a committed attempt on their payer or payee ending in their [start, end]."""
    c_start = _epoch_s(committed["started_at"])
    c_end = c_start + committed["latency_ms"].to_numpy(dtype="float64") / 1000.0
    ends: dict[int, np.ndarray] = {}
    accounts = np.concatenate([committed["payer"].to_numpy(), committed["payee"].to_numpy()])
    both_ends = np.concatenate([c_end, c_end])
    order = np.argsort(accounts, kind="stable")
    accounts, both_ends = accounts[order], both_ends[order]
    bounds = np.flatnonzero(np.diff(accounts)) + 1
    for group_acc, group_ends in zip(np.split(accounts, bounds), np.split(both_ends, bounds)):
        if group_acc.size:
            ends[int(group_acc[0])] = np.sort(group_ends)
    f_start = _epoch_s(failed["started_at"])
    f_end = f_start + (failed["latency_ms"].to_numpy(dtype="float64") + slack_ms) / 1000.0
    found = 0
    for start, end, payer, payee in zip(f_start, f_end, failed["payer"].to_numpy(), failed["payee"].to_numpy()):
        for account in (int(payer), int(payee)):
            e = ends.get(account)
            if e is not None:
                i = int(np.searchsorted(e, start, side="left"))
                if i < e.size and e[i] <= end:
                    found += 1
                    break
    return found / len(failed)


def _epoch_s(col: pd.Series) -> np.ndarray:
    """Seconds since the epoch from a timestamp column (or floats already)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return (pd.to_datetime(col, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    return col.to_numpy(dtype="float64")
