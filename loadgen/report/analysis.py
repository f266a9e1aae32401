"""Pure contention metrics over the report frame of attempts (see ``data.report_frame``).

The figures and their names are ``loadgen.results.metrics``'s (``rates``): here only
the counting is done, with integer group keys and numpy so that ten million attempts
take seconds, not minutes. Nothing here draws or formats.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loadgen.model.outcomes import COMMITTED, CONTENTION
from loadgen.results.metrics import PERCENTILES, figures, percentiles, transactions_of, wilson_interval

__all__ = [
    "COMMITTED",
    "PERCENTILES",
    "transactions",
    "percentiles",
    "headline",
    "timeline",
    "attempts_distribution",
    "hot_keys",
    "latency_by_attempt",
    "pair_collision",
    "model_conflict_rate",
    "snapshot_window_ms",
    "wilson_interval",
    "ratio_to_baseline",
    "choose_bin_s",
]


def transactions(c: pd.DataFrame) -> pd.DataFrame:
    """One row per logical transfer of the report frame (loadgen.results.metrics.transactions_of's columns:
    ``attempts``, ``start_ms``, ``end_ms``, ``latency_ms``, ``committed``, ...)."""
    return transactions_of(c["txn"].to_numpy(), c["attempt"].to_numpy(), c["start_ms"].to_numpy(), c["end_ms"].to_numpy(), c["outcome"])


def headline(c: pd.DataFrame, txns: pd.DataFrame) -> dict[str, Any]:
    """The numbers a reader looks at first: run.json's summary figures (loadgen.results.metrics.figures,
    the one definition), with the report's additions (intervals, time spent on attempts that failed)."""
    n = len(c)
    h = figures(c["outcome"], c["attempt"].to_numpy(), c["start_ms"].to_numpy(), c["latency_ms"].to_numpy(), txns)
    latency = c["latency_ms"].to_numpy()
    wasted_ms = float(latency[~c["outcome"].isin(COMMITTED).to_numpy()].sum())
    total_ms = float(latency.sum())
    t = len(txns)
    return {
        **h,
        "conflict_rate_95": wilson_interval(h["conflicts"], n),
        "mean_attempt_ms": total_ms / n if n else None,
        "wasted_ms": wasted_ms,
        "wasted_share": wasted_ms / total_ms if total_ms > 0 else None,
        "committed_transaction_latency_ms": percentiles(txns.loc[txns["committed"], "latency_ms"].to_numpy() if t else []),
    }


def choose_bin_s(elapsed_s: float, max_bins: int = 240) -> float:
    """A round bin width giving at most ``max_bins`` bins (at least 0.1 s)."""
    for width in (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if elapsed_s / width <= max_bins:
            return float(width)
    return 3600.0 * math.ceil(elapsed_s / 3600.0 / max_bins)


def timeline(c: pd.DataFrame, txns: pd.DataFrame, bin_s: float | None = None) -> pd.DataFrame:
    """Per time bin (by attempt end): commits, conflicts (every contention failure: 40001, 55P03, 40P01)
    and other failures (not contention) per second; in-flight transactions.

    ``t_s`` is the bin's start in seconds from the first attempt's start; in-flight is the
    number of transactions started and not yet finished at that instant.
    """
    cols = ["t_s", "commits_per_s", "conflicts_per_s", "errors_per_s", "in_flight"]
    if c.empty:
        return pd.DataFrame({k: pd.Series(dtype="float64") for k in cols})
    t0 = float(c["start_ms"].min())
    elapsed_s = (float(c["end_ms"].max()) - t0) / 1000.0
    width = bin_s or choose_bin_s(elapsed_s)
    # Rounded: 0.020 s / 0.010 s is 2.0000000000000004 in floating point, and that is 2 bins.
    nbins = max(1, int(math.ceil(round(elapsed_s / width, 9))))
    pos = np.round((c["end_ms"].to_numpy() - t0) / 1000.0 / width, 9)
    idx = np.minimum(np.floor(pos).astype("int64"), nbins - 1)
    committed = c["outcome"].isin(COMMITTED).to_numpy()
    conflict = c["outcome"].isin(CONTENTION).to_numpy()
    other = ~(committed | conflict)
    edges_ms = t0 + np.arange(nbins) * width * 1000.0
    starts = np.sort(txns["start_ms"].to_numpy())
    ends = np.sort(txns["end_ms"].to_numpy())
    # In flight at time t: started at or before t, ending after t.
    in_flight = np.searchsorted(starts, edges_ms, side="right") - np.searchsorted(ends, edges_ms, side="right")
    return pd.DataFrame(
        {
            "t_s": np.arange(nbins) * width,
            "commits_per_s": np.bincount(idx[committed], minlength=nbins) / width,
            "conflicts_per_s": np.bincount(idx[conflict], minlength=nbins) / width,
            "errors_per_s": np.bincount(idx[other], minlength=nbins) / width,
            "in_flight": in_flight,
        }
    )


def attempts_distribution(txns: pd.DataFrame) -> pd.DataFrame:
    """How many transactions needed k attempts: columns ``attempts``, ``transactions``, ``share``, ``committed``."""
    if txns.empty:
        return pd.DataFrame({"attempts": [], "transactions": [], "share": [], "committed": []})
    a = txns["attempts"].to_numpy()
    counts = np.bincount(a)
    ok = np.bincount(a[txns["committed"].to_numpy()], minlength=len(counts))
    ks = np.nonzero(counts)[0]
    return pd.DataFrame({"attempts": ks, "transactions": counts[ks], "share": counts[ks] / len(a), "committed": ok[ks]})


def hot_keys(c: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Accounts most involved in conflicts (as payer or payee), with their share of all conflicts.

    ``conflicts``: conflicted attempts touching the account; ``attempts``: all attempts
    touching it; ``conflict_rate``: their ratio; ``share``: conflicts / all conflicted attempts.
    """
    if c.empty:
        return hot_keys_from_counts(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0, top)
    payer, payee = c["payer"].to_numpy(), c["payee"].to_numpy()
    conflict = c["outcome"].isin(CONTENTION).to_numpy()
    size = int(max(payer.max(), payee.max())) + 1
    touched = np.bincount(payer, minlength=size) + np.bincount(payee, minlength=size)
    hit = np.bincount(payer[conflict], minlength=size) + np.bincount(payee[conflict], minlength=size)
    return hot_keys_from_counts(touched, hit, int(conflict.sum()), top)


def hot_keys_from_counts(touched: np.ndarray, hit: np.ndarray, conflicts: int, top: int) -> pd.DataFrame:
    """``hot_keys`` from per-account counts (index = account id): attempts touching it, conflicted ones among them."""
    cols = ["account", "conflicts", "attempts", "conflict_rate", "share"]
    if conflicts == 0:
        return pd.DataFrame({k: [] for k in cols})
    order = np.lexsort((np.arange(len(touched)), -hit))[:top]
    order = order[hit[order] > 0]
    return pd.DataFrame(
        {
            "account": order,
            "conflicts": hit[order],
            "attempts": touched[order],
            "conflict_rate": hit[order] / np.maximum(touched[order], 1),
            "share": hit[order] / conflicts,
        }
    )


def latency_by_attempt(c: pd.DataFrame, max_attempt: int = 5) -> pd.DataFrame:
    """Attempt latency percentiles by attempt number (1, 2, ..., ``max_attempt``+ pooled) and conflict rate."""
    rows = []
    a = c["attempt"].to_numpy()
    lat = c["latency_ms"].to_numpy()
    conflict = c["outcome"].isin(CONTENTION).to_numpy()
    for k in range(1, max_attempt + 1):
        mask = a >= k if k == max_attempt else a == k
        if not mask.any():
            continue
        p = percentiles(lat[mask])
        rows.append(
            {
                "attempt": f"{k}+" if k == max_attempt else str(k),
                "attempts": int(mask.sum()),
                "conflict_rate": float(conflict[mask].mean()),
                **p,
            }
        )
    return pd.DataFrame(rows)


def pair_collision(accounts: float) -> float:
    """c = 1 - C(N-2,2)/C(N,2): the chance two transfers over N uniform keys share an account.

    For a skewed distribution pass N = 1/q (q = sum p_i^2); clipped to [0, 1].
    """
    n = float(accounts)
    if n <= 3:
        return 1.0
    return min(1.0, max(0.0, 1.0 - (n - 2.0) * (n - 3.0) / (n * (n - 1.0))))


def model_conflict_rate(commit_rate_per_s: float, mean_attempt_s: float, collision: float) -> float:
    """The first-order model of a conflict: 1 - (1 - c)^(lambda * D).

    During one attempt of duration D (snapshot to commit) about lambda * D other
    transactions commit (lambda: the commit rate); each shares an account with it with
    probability c (``pair_collision``). With the talk's lambda = 908/s and D = 20 ms this
    gives 7.0% against the 6.56% measured. It does not apply under lock waits or a
    saturated client or server.
    """
    if collision >= 1.0:
        return 1.0 if commit_rate_per_s * mean_attempt_s > 0 else 0.0
    return 1.0 - math.exp(commit_rate_per_s * mean_attempt_s * math.log1p(-collision))


def snapshot_window_ms(latency_ms: Any, statements: int, commit_ms: float = 0.0, before: int = 2) -> np.ndarray:
    """The part of each attempt another commit can hurt: from its snapshot to its COMMIT reaching the server.

    An attempt makes ``statements + 2`` round trips (BEGIN, the statements, COMMIT); the
    snapshot is taken after ``before`` of them: two on PostgreSQL's own path (when the
    first statement reaches the server), one where it is taken at BEGIN (DSQL, and cc occ's
    first-committer-wins); COMMIT decides on arrival. With round trips of equal mean length
    (emulated latency sleeps before each; a local server's are alike), the window is
    ``statements + 2 - before`` of them, plus any extra time COMMIT takes before deciding
    (``commit_ms``). ``latency_ms`` is database time, a connection already in hand.
    """
    lat = np.asarray(latency_ms, dtype="float64")
    extra = np.minimum(lat, commit_ms)
    return (lat - extra) * (statements + 2 - before) / (statements + 2) + extra


def ratio_to_baseline(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline
