"""Pure metric functions over an attempts table (pandas), shared by the summary and the report.

Definitions (kept in one place so every view agrees):
- conflict rate: attempts that ended in a conflict (SQLSTATE 40001, or DSQL's OC000/OC001) / all attempts;
- retries: attempts with attempt number >= 2; retries per commit = retries / commits;
- transaction latency: from its first attempt's start to its last attempt's end,
  backoff included;
- throughput: commits per second of measured time (first start to last end).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loadgen.model.retry import COMMITTED_OUTCOMES as _COMMITTED

__all__ = ["summarize", "transactions", "PERCENTILES"]

PERCENTILES = (50, 95, 99, 99.9)


def transactions(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per logical transfer: attempts used, final outcome, whole latency (ms)."""
    if attempts.empty:
        return pd.DataFrame(columns=["txn_id", "attempts", "outcome", "latency_ms", "started_at"])
    df = pd.DataFrame(
        {
            "txn_id": attempts["txn_id"].to_numpy(),
            "attempt": attempts["attempt"].to_numpy(),
            "start_ms": _epoch_ms(attempts["started_at"]),
            "latency_ms": attempts["latency_ms"].to_numpy(),
            "outcome": attempts["outcome"].to_numpy(),
        }
    )
    df["end_ms"] = df["start_ms"] + df["latency_ms"]
    df = df.sort_values(["txn_id", "attempt"], kind="stable")
    g = df.groupby("txn_id", sort=False)
    out = pd.DataFrame(
        {
            "attempts": g["attempt"].max(),
            "outcome": g["outcome"].last(),
            "latency_ms": g["end_ms"].max() - g["start_ms"].min(),
            "started_ms": g["start_ms"].min(),
        }
    )
    return out.reset_index()


def _epoch_ms(ts: pd.Series) -> np.ndarray:
    values = ts.to_numpy(dtype="datetime64[us]").astype("int64")
    return values / 1000.0


def _percentiles(values: pd.Series | np.ndarray) -> dict[str, float | None]:
    arr = np.asarray(values, dtype="float64")
    if arr.size == 0:
        return {f"p{p:g}": None for p in PERCENTILES}
    qs = np.percentile(arr, PERCENTILES)
    return {f"p{p:g}": float(q) for p, q in zip(PERCENTILES, qs)}


def summarize(attempts: pd.DataFrame) -> dict[str, Any]:
    """The run's headline numbers."""
    n = len(attempts)
    outcomes = attempts["outcome"].value_counts().to_dict() if n else {}
    commits = int(sum(outcomes.get(o, 0) for o in _COMMITTED))
    conflicts = int(outcomes.get("conflict", 0))
    retries = int((attempts["attempt"] >= 2).sum()) if n else 0
    txns = transactions(attempts)
    if n:
        start_ms = _epoch_ms(attempts["started_at"])
        elapsed_s = float((start_ms + attempts["latency_ms"].to_numpy()).max() - start_ms.min()) / 1000.0
    else:
        elapsed_s = 0.0
    retried = int((txns["attempts"] >= 2).sum()) if len(txns) else 0
    return {
        "attempts": n,
        "transactions": len(txns),
        "commits": commits,
        "conflicts": conflicts,
        "outcomes": {str(k): int(v) for k, v in sorted(outcomes.items())},
        "sqlstates": {str(k): int(v) for k, v in sorted(attempts["sqlstate"].dropna().value_counts().to_dict().items())} if n else {},
        "conflict_rate": conflicts / n if n else None,
        "retries": retries,
        "retries_per_commit": retries / commits if commits else None,
        "retried_share": retried / len(txns) if len(txns) else None,
        "max_attempts": int(txns["attempts"].max()) if len(txns) else 0,
        "failed_transactions": int((~txns["outcome"].isin(_COMMITTED)).sum()) if len(txns) else 0,
        "elapsed_s": elapsed_s,
        "throughput_commits_per_s": commits / elapsed_s if elapsed_s > 0 else None,
        "attempt_latency_ms": _percentiles(attempts["latency_ms"]) if n else _percentiles([]),
        "transaction_latency_ms": _percentiles(txns["latency_ms"]) if len(txns) else _percentiles([]),
    }
