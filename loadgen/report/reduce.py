"""One run's attempts reduced to the report's figures out of core, in memory independent of the number of attempts.

The same figures as :mod:`loadgen.report.analysis` computes over the report frame in memory
(the what-if simulations, notebooks), counted over record batches instead
(loadgen.results.outofcore): transactions grouped by DuckDB, the rest by numpy a batch at
a time, percentiles exact. tests/report/test_outofcore.py holds the two to the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loadgen.model.outcomes import CONTENTION
from loadgen.report import analysis as A
from loadgen.results.metrics import PERCENTILES, Counts, conflicts_by_kind, outcome_counts, rates
from loadgen.results.outofcore import ALL, Tally, Transactions, batches, columns_of, committed_mask, percentiles_of, start_end_ms

__all__ = ["Reduced", "FitSums", "reduce_attempts", "REQUIRED", "MAX_ATTEMPT_CLASS"]

#: Columns without which there is no report.
REQUIRED = ("txn_id", "attempt", "started_at", "latency_ms", "outcome")
#: latency_by_attempt's classes: 1, 2, ..., this one and up pooled.
MAX_ATTEMPT_CLASS = 5
#: A conflict: an attempt that failed on contention (loadgen.results.metrics: the one conflict rate).
_CONTENTION = pa.array(sorted(CONTENTION), pa.string())


@dataclass(frozen=True)
class FitSums:
    """What the first-order model takes from the attempts (loadgen.report.modelfit.fit_from)."""

    committed: int
    committed_latency_ms: float
    #: Attempts whose window counts (all on PostgreSQL, committed on DSQL), and their windows' sum.
    harmful: int
    harmful_window_ms: float


@dataclass
class Reduced:
    """A run's figures, as :func:`loadgen.report.analysis` names them."""

    headline: dict[str, Any]
    timeline: pd.DataFrame
    distribution: pd.DataFrame
    hot_keys: pd.DataFrame
    by_attempt: pd.DataFrame
    #: The first attempt's start (epoch ms), the timeline's zero; None without attempts.
    t0_ms: float | None
    fit: FitSums


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    return a if len(a) >= size else np.concatenate([a, np.zeros(size - len(a), dtype=a.dtype)])


def reduce_attempts(
    paths: list[Path],
    *,
    all_harmful: bool = True,
    window: Callable[[np.ndarray], np.ndarray] | None = None,
    bin_s: float | None = None,
    top_keys: int = 10,
) -> Reduced:
    """Every figure of the report's cell from the attempt files ``paths``.

    ``all_harmful``: whether every attempt's window counts for the model (PostgreSQL) or
    only committed ones' (DSQL); ``window``: an attempt's snapshot window from its latency
    (None: the whole latency).
    """
    present = columns_of(paths)
    keys = [k for k in ("payer", "payee") if k in present]
    cols = ["attempt", "started_at", "latency_ms", "outcome", *keys]
    window = window or (lambda lat: lat)

    with Transactions.of(paths) as txns:  # the finish's own grouping, when the run just ended in this process
        t, retried, failed_txns, max_attempts, committed_txns, first, last = txns.one(
            # A transaction committed when its last attempt did (metrics.transactions_of: the one definition).
            "SELECT count(*), count(*) FILTER (attempts >= 2), count(*) FILTER (NOT last_committed), "
            "coalesce(max(attempts), 0), count(*) FILTER (last_committed), min(start_ms), max(end_ms) FROM txns"
        )
        dist = txns.rows("SELECT attempts, count(*), count(*) FILTER (last_committed) FROM txns GROUP BY attempts ORDER BY attempts")
        # The first start and the last end, as the attempts have them (a transaction's are its attempts' extremes).
        t0, t_end = (float(first), float(last)) if t else (math.inf, -math.inf)
        elapsed_s = (t_end - t0) / 1000.0 if t else 0.0
        timeline = _Timeline(t0, elapsed_s, bin_s) if t else None

        # One pass over the attempts: counts, sums, hot keys, classes, the timeline's bins.
        c = _Counts(window, all_harmful)
        for b in batches(paths, cols):
            if b.num_rows:
                c.add(b, timeline)
        tl = timeline.frame(txns) if timeline is not None else None

        def txn_scan() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for tb in txns.scan("start_ms, end_ms, last_committed"):
                s, e = tb.column(0).to_numpy(), tb.column(1).to_numpy()
                yield e - s, np.asarray(tb.column(2).to_numpy(zero_copy_only=False), dtype=np.int8)

        txn_p = percentiles_of(txn_scan, {ALL: int(t), 1: int(committed_txns)}, PERCENTILES)

    n, retries, failed = c.n, c.retries, c.failed
    by_outcome = {k: v for k, v in c.outcomes.counts.items() if v}
    commits, conflicts = outcome_counts(by_outcome)

    def attempt_scan() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in batches(paths, ["attempt", "latency_ms"]):
            yield b.column("latency_ms").to_numpy().astype("float64", copy=False), _classes(b.column("attempt").to_numpy())

    counts = {ALL: n, **{k: int(c.class_n[k]) for k in range(1, MAX_ATTEMPT_CLASS + 1)}}
    att_p = percentiles_of(attempt_scan, counts, PERCENTILES)

    r = rates(Counts(n, commits, conflicts, retries, int(t), int(retried), failed, elapsed_s))
    headline = {
        "attempts": n,
        "transactions": int(t),
        "commits": commits,
        "conflicts": conflicts,
        "conflicts_by_kind": conflicts_by_kind(by_outcome),
        "outcomes": dict(sorted(by_outcome.items())),
        "failed_attempts": failed,
        **r,
        "conflict_rate_95": A.wilson_interval(conflicts, n),
        "retries": retries,
        "failed_transactions": int(failed_txns),
        "max_attempts": int(max_attempts),
        "elapsed_s": elapsed_s,
        "mean_attempt_ms": c.total_ms / n if n else None,
        "wasted_ms": c.wasted_ms,
        "wasted_share": c.wasted_ms / c.total_ms if c.total_ms > 0 else None,
        "attempt_latency_ms": _named(att_p[ALL]),
        "transaction_latency_ms": _named(txn_p[ALL]),
        "committed_transaction_latency_ms": _named(txn_p[1]),
    }
    return Reduced(
        headline=headline,
        timeline=tl if tl is not None else A.timeline(pd.DataFrame(columns=["start_ms"]), pd.DataFrame()),
        distribution=_distribution(dist, int(t)),
        hot_keys=A.hot_keys_from_counts(c.touched, c.hit, c.conflicts, top_keys) if n else A.hot_keys(pd.DataFrame()),
        by_attempt=_by_attempt(c.class_n, c.class_conflicts, att_p),
        t0_ms=t0 if t else None,
        fit=FitSums(c.committed, c.committed_ms, n if all_harmful else c.committed, c.harmful_ms),
    )


class _Counts:
    """What one pass over the attempts counts, a record batch at a time (analysis.headline's sums,
    hot_keys' per-account counts, latency_by_attempt's classes, the model's sums)."""

    def __init__(self, window: Callable[[np.ndarray], np.ndarray], all_harmful: bool) -> None:
        self.window, self.all_harmful = window, all_harmful
        self.n = self.retries = self.failed = self.conflicts = self.committed = 0
        self.total_ms = self.wasted_ms = self.committed_ms = self.harmful_ms = 0.0
        self.outcomes = Tally()
        self.touched = np.zeros(1, np.int64)
        self.hit = np.zeros(1, np.int64)
        self.class_n = np.zeros(MAX_ATTEMPT_CLASS + 1, np.int64)
        self.class_conflicts = np.zeros(MAX_ATTEMPT_CLASS + 1, np.int64)

    def add(self, b: pa.RecordBatch, timeline: _Timeline | None) -> None:
        _, end, lat = start_end_ms(b)
        attempt = b.column("attempt").to_numpy().astype("int32", copy=False)
        ok = committed_mask(b.column("outcome"))
        conflict = np.asarray(
            pc.fill_null(pc.is_in(b.column("outcome"), value_set=_CONTENTION), False).to_numpy(zero_copy_only=False), dtype=bool
        )
        self.outcomes.add(b.column("outcome"))
        self.n += b.num_rows
        self.retries += int((attempt >= 2).sum())
        self.failed += int((~ok).sum())
        self.conflicts += int(conflict.sum())
        self.total_ms += float(lat.sum())
        self.wasted_ms += float(lat[~ok].sum())
        self.committed += int(ok.sum())
        self.committed_ms += float(lat[ok].sum())
        self.harmful_ms += float(self.window(lat if self.all_harmful else lat[ok]).sum())
        names = b.schema.names
        payer = b.column("payer").to_numpy() if "payer" in names else np.zeros(b.num_rows, np.int64)
        payee = b.column("payee").to_numpy() if "payee" in names else np.zeros(b.num_rows, np.int64)
        size = int(max(payer.max(), payee.max())) + 1
        self.touched, self.hit = _pad(self.touched, size), _pad(self.hit, size)
        self.touched[:size] += np.bincount(payer, minlength=size) + np.bincount(payee, minlength=size)
        self.hit[:size] += np.bincount(payer[conflict], minlength=size) + np.bincount(payee[conflict], minlength=size)
        cls = _classes(attempt)
        self.class_n += np.bincount(cls, minlength=MAX_ATTEMPT_CLASS + 1)
        self.class_conflicts += np.bincount(cls[conflict], minlength=MAX_ATTEMPT_CLASS + 1)
        if timeline is not None:
            timeline.add_attempts(end, ok, conflict)


def _classes(attempt: np.ndarray) -> np.ndarray:
    """Each attempt's class for latency_by_attempt: its number, the last class pooling the rest; 0 for none."""
    return np.clip(attempt, 0, MAX_ATTEMPT_CLASS).astype(np.int64)


def _named(values: list[float] | None) -> dict[str, float | None]:
    if values is None:
        return {f"p{p:g}": None for p in PERCENTILES}
    return {f"p{p:g}": v for p, v in zip(PERCENTILES, values)}


class _Timeline:
    """analysis.timeline, a batch at a time: bins by attempt end; in flight at each bin's start edge."""

    def __init__(self, t0: float, elapsed_s: float, bin_s: float | None) -> None:
        self.t0 = t0
        self.width = bin_s or A.choose_bin_s(elapsed_s)
        # Rounded: 0.020 s / 0.010 s is 2.0000000000000004 in floating point, and that is 2 bins.
        self.nbins = max(1, int(math.ceil(round(elapsed_s / self.width, 9))))
        self.commits = np.zeros(self.nbins, np.int64)
        self.conflicts = np.zeros(self.nbins, np.int64)
        self.other = np.zeros(self.nbins, np.int64)

    def add_attempts(self, end: np.ndarray, ok: np.ndarray, conflict: np.ndarray) -> None:
        nbins = self.nbins
        pos = np.round((end - self.t0) / 1000.0 / self.width, 9)
        idx = np.minimum(np.floor(pos).astype("int64"), nbins - 1)
        self.commits += np.bincount(idx[ok], minlength=nbins)
        self.conflicts += np.bincount(idx[conflict], minlength=nbins)
        self.other += np.bincount(idx[~(ok | conflict)], minlength=nbins)

    def frame(self, txns: Transactions) -> pd.DataFrame:
        nbins, width = self.nbins, self.width
        edges_ms = self.t0 + np.arange(nbins) * width * 1000.0
        # In flight at an edge: started at or before it, ending after it. A start s counts at every
        # edge from the first one >= s on: a histogram of those first edges, summed up.
        started = np.zeros(nbins + 1, np.int64)
        ended = np.zeros(nbins + 1, np.int64)
        for tb in txns.scan("start_ms, end_ms"):
            started += np.bincount(np.searchsorted(edges_ms, tb.column(0).to_numpy(), side="left"), minlength=nbins + 1)
            ended += np.bincount(np.searchsorted(edges_ms, tb.column(1).to_numpy(), side="left"), minlength=nbins + 1)
        in_flight = np.cumsum(started)[:nbins] - np.cumsum(ended)[:nbins]
        return pd.DataFrame(
            {
                "t_s": np.arange(nbins) * width,
                "commits_per_s": self.commits / width,
                "conflicts_per_s": self.conflicts / width,
                "errors_per_s": self.other / width,
                "in_flight": in_flight,
            }
        )


def _distribution(rows: list[tuple[Any, ...]], t: int) -> pd.DataFrame:
    if not t:
        return A.attempts_distribution(pd.DataFrame())
    ks = np.array([int(r[0]) for r in rows], dtype=np.int64)
    counts = np.array([int(r[1]) for r in rows], dtype=np.int64)
    ok = np.array([int(r[2]) for r in rows], dtype=np.int64)
    return pd.DataFrame({"attempts": ks, "transactions": counts, "share": counts / t, "committed": ok})


def _by_attempt(class_n: np.ndarray, class_conflicts: np.ndarray, att_p: dict[int, list[float] | None]) -> pd.DataFrame:
    rows = []
    for k in range(1, MAX_ATTEMPT_CLASS + 1):
        if not class_n[k]:
            continue
        rows.append(
            {
                "attempt": f"{k}+" if k == MAX_ATTEMPT_CLASS else str(k),
                "attempts": int(class_n[k]),
                "conflict_rate": float(class_conflicts[k] / class_n[k]),
                **_named(att_p[k]),
            }
        )
    return pd.DataFrame(rows)
