"""Contention metrics: every figure's name and definition, in one place.

Each view counts in its own cheapest way (pandas after a run here, numpy in the report,
integer counters in the live UI, Locust's statistics in the progress line) and then
derives its figures with ``rates``, under the names below, so a figure means the
same everywhere it is shown (terminal summary, progress line, web UI, report, run.json).

- conflict rate (the one, :data:`CONFLICT_RATE`) = attempts that failed on contention /
  all attempts. A contention failure is an attempt ending in a CONTENTION outcome
  (loadgen.model.outcomes): SQLSTATE 40001 with or without DSQL's OC000/OC001, SQLSTATE
  OC000/OC001, and on PostgreSQL also 40P01 (deadlock) and 55P03 (lock wait given up),
  which are what a lock-free engine reports as conflicts. Which of them dominates
  depends on the mode and the engine (55P03 in a lock-timeout mode, 40001 at COMMIT in a
  first-committer-wins one), so the figure counts them all. Its breakdown
  (``conflicts_by_kind``, ``conflicts_by_sqlstate``) gives counts and shares *of it*,
  never a second rate: a 40001-only share is not "a conflict rate";
- failed attempt rate = attempts that did not commit / all attempts;
- retries = attempts numbered 2 and up; retries per commit = retries / commits;
- retried share = transactions needing more than one attempt / transactions;
- attempts per commit = attempts / commits;
- transaction latency: from its first attempt's start to its last attempt's end,
  backoff included;
- throughput (``throughput_commits_per_s``) = commits per second of measured time
  (first attempt's start to last attempt's end); ``attempts_per_s`` likewise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loadgen.model.idgroups import id_groups, last_bytes
from loadgen.model.outcomes import COMMITTED as _COMMITTED
from loadgen.model.outcomes import CONTENTION, Outcome

__all__ = [
    "Counts",
    "rates",
    "share",
    "per_second",
    "outcome_counts",
    "summarize",
    "SUMMARY_COLUMNS",
    "summary_frame",
    "transfer_codes",
    "transactions",
    "transactions_of",
    "figures",
    "percentiles",
    "PERCENTILES",
    "LABELS",
    "in_flight_mean",
    "concurrency",
    "concurrency_of",
    "IN_FLIGHT_WARN_SHARE",
    "conflicts_by_kind",
    "conflicts_by_sqlstate",
    "CONFLICT_RATE",
    "CONFLICT_RATE_DEFINITION",
    "KIND_LABELS",
    "breakdown",
    "percent",
    "upgrade_summary",
    "wilson_interval",
]

PERCENTILES = (50, 95, 99, 99.9)

#: The one conflict rate's title, wherever it is shown (progress line, summary, sweep table,
#: web UI, report, CSV headers say ``conflict_rate``): nothing else is called a conflict rate.
CONFLICT_RATE = "conflict rate"
#: What it counts, in one line (report, UI, --help).
CONFLICT_RATE_DEFINITION = (
    "attempts that failed on contention / attempts (40001 with or without OC000/OC001, OC000/OC001, and on PostgreSQL 40P01 and 55P03)"
)
#: How each contention kind is named in a breakdown (the outcome names of attempts.parquet).
KIND_LABELS: dict[str, str] = {
    Outcome.CONFLICT.value: "40001 serialization/OCC",
    Outcome.LOCK_TIMEOUT.value: "55P03 lock wait given up",
    Outcome.DEADLOCK.value: "40P01 deadlock",
}

#: How a figure is titled wherever it is shown.
LABELS: dict[str, str] = {
    "conflict_rate": CONFLICT_RATE,
    "failed_attempt_rate": "failed attempts / attempts",
    "retried_share": "transactions retried",
    "retries_per_commit": "retries per commit",
    "attempts_per_commit": "attempts per commit",
    "throughput_commits_per_s": "throughput (commits/s)",
    "attempts_per_s": "attempts/s",
}


@dataclass(frozen=True)
class Counts:
    """What every figure is derived from; a view that cannot count something leaves it None."""

    attempts: int
    commits: int
    conflicts: int | None = None  # attempts that failed on contention (a CONTENTION outcome)
    retries: int | None = None  # attempts numbered 2 and up
    transactions: int | None = None
    retried: int | None = None  # transactions needing more than one attempt
    failed_attempts: int | None = None  # attempts that did not commit (default: attempts - commits)
    elapsed_s: float | None = None  # measured time


def share(part: float | None, whole: float | None) -> float | None:
    """part / whole, or None when either is unknown or the whole is zero."""
    return None if part is None or not whole else part / whole


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval for a proportion k/n (None when n is 0)."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def per_second(count: float | None, elapsed_s: float | None) -> float | None:
    return None if count is None or elapsed_s is None or not elapsed_s > 0 else count / elapsed_s


def rates(c: Counts) -> dict[str, float | None]:
    """Every derived figure, by its name."""
    failed = c.failed_attempts if c.failed_attempts is not None else c.attempts - c.commits
    return {
        "conflict_rate": share(c.conflicts, c.attempts),
        "failed_attempt_rate": share(failed, c.attempts),
        "retries_per_commit": share(c.retries, c.commits),
        "retried_share": share(c.retried, c.transactions),
        "attempts_per_commit": share(c.attempts, c.commits),
        "throughput_commits_per_s": per_second(c.commits, c.elapsed_s),
        "attempts_per_s": per_second(c.attempts, c.elapsed_s),
    }


def outcome_counts(by_outcome: Mapping[str, int]) -> tuple[int, int]:
    """Commits and conflicts (attempts that failed on contention) from counts by outcome name."""
    commits = sum(n for o, n in by_outcome.items() if o in _COMMITTED)
    conflicts = sum(n for o, n in by_outcome.items() if o in CONTENTION)
    return int(commits), int(conflicts)


def conflicts_by_kind(by_outcome: Mapping[str, int]) -> dict[str, int]:
    """The conflicts' breakdown: attempts by contention outcome (conflict = 40001, deadlock, lock_timeout)."""
    return {str(o): int(n) for o, n in sorted(by_outcome.items()) if o in CONTENTION and n}


def conflicts_by_sqlstate(outcome: pd.Series, sqlstate: pd.Series) -> dict[str, int]:
    """The conflicts' breakdown by SQLSTATE (40001, OC000, 40P01, 55P03, ...)."""
    mask = outcome.isin(list(CONTENTION))
    states = sqlstate[mask].fillna("?").astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(states.items()) if v}


def breakdown(by: Mapping[str, int], labels: Mapping[str, str] | None = None) -> str:
    """A breakdown as counts and shares of the conflicts: "40001 serialization/OCC 161 (6%), 55P03 ... 2,485 (94%)"."""
    total = sum(by.values())
    names = labels or {}
    return ", ".join(f"{names.get(k, k)} {n:,} ({n / total:.0%})" for k, n in by.items() if n) if total else ""


def percent(value: float | None, digits: int = 2, missing: str = "-") -> str:
    """A share as every view writes it ("6.85%"); ``missing`` where it is unknown (None or NaN)."""
    return missing if value is None or pd.isna(value) else f"{value:.{digits}%}"


def upgrade_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A run.json format-1 summary under format 2's names.

    Format 1 called the 40001-only share ``conflict_rate`` and the full figure
    ``contention_rate`` (its count ``contention``, breakdown ``contention_by_kind``);
    format 2 has one conflict rate, the full one. The old 40001-only figure is dropped:
    its count stays in the breakdown.
    """
    s = dict(summary)
    if "contention_rate" not in s and "outcomes" not in s:
        return s  # a summary of a run still starting: nothing to rename
    outcomes = s.get("outcomes") or {}
    if "contention" in s:
        conflicts = s.pop("contention")
    else:  # before contention was counted: from the outcomes
        conflicts = outcome_counts(outcomes)[1]
    s["conflicts"] = conflicts
    if "contention_rate" in s:
        s["conflict_rate"] = s.pop("contention_rate")
    else:
        s["conflict_rate"] = share(conflicts, s.get("attempts"))
    s["conflicts_by_kind"] = s.pop("contention_by_kind", None) or conflicts_by_kind(outcomes)
    s.setdefault("conflicts_by_sqlstate", None)  # format 1 did not keep it apart from other failures'
    return s


def transactions(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per logical transfer of an attempt table (or its :func:`summary_frame`): see :func:`transactions_of`."""
    if attempts.empty:
        return transactions_of(np.empty(0, "int64"), np.empty(0, "int32"), np.empty(0), np.empty(0), attempts["outcome"])
    ids = attempts["txn_id"].to_numpy()
    uniques = None
    if ids.dtype.kind not in "iu":  # not codes already (summary_frame)
        ids, uniques = pd.factorize(ids, sort=True)
    start_ms = _epoch_ms(attempts["started_at"])
    txns = transactions_of(
        ids, attempts["attempt"].to_numpy(), start_ms, start_ms + attempts["latency_ms"].to_numpy(dtype="float64"), attempts["outcome"]
    )
    if uniques is not None:
        txns["txn_id"] = uniques[txns["txn_id"].to_numpy()]
    return txns


def transactions_of(codes: np.ndarray, attempt: np.ndarray, start_ms: np.ndarray, end_ms: np.ndarray, outcome: pd.Series) -> pd.DataFrame:
    """One row per logical transfer: ``txn_id`` (its code), ``attempts`` used, final ``outcome``,
    whether it ``committed``, ``start_ms``/``end_ms`` (epoch ms: its first attempt's start, its last
    attempt's end) and its whole ``latency_ms``, backoff included. The one definition of a transaction's
    figures: the run's summary and the report both group attempts here.

    Plain numpy over the attempts sorted by transfer and attempt number: a pandas
    group-by costs about twice the memory, which the end of a run of hours has not got.
    """
    if len(codes) == 0:
        return pd.DataFrame(
            {
                "txn_id": pd.Series(dtype="int64"),
                "attempts": pd.Series(dtype="int64"),
                "outcome": pd.Series(dtype="object"),
                "committed": pd.Series(dtype="bool"),
                "start_ms": pd.Series(dtype="float64"),
                "end_ms": pd.Series(dtype="float64"),
                "latency_ms": pd.Series(dtype="float64"),
            }
        )
    codes = np.asarray(codes)
    attempt = np.asarray(attempt)
    order = np.lexsort((attempt, codes))  # by transfer, then attempt; stable
    sorted_codes = codes[order]
    first = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    last = np.r_[first[1:], len(order)] - 1
    txn = sorted_codes[first]
    del sorted_codes
    started = np.minimum.reduceat(np.asarray(start_ms, dtype="float64")[order], first)
    ended = np.maximum.reduceat(np.asarray(end_ms, dtype="float64")[order], first)
    # A Series, not to_numpy(): outcomes stay Arrow strings (or categories), not a Python str per attempt.
    final = outcome.take(order[last]).reset_index(drop=True)
    return pd.DataFrame(
        {
            "txn_id": txn,
            "attempts": np.maximum.reduceat(attempt[order], first).astype("int64"),
            "outcome": final,
            "committed": final.isin(_COMMITTED).to_numpy(),
            "start_ms": started,
            "end_ms": ended,
            "latency_ms": ended - started,
        }
    )


def _epoch_ms(ts: pd.Series) -> np.ndarray:
    values = ts.to_numpy(dtype="datetime64[us]").astype("int64")
    return values / 1000.0


def percentiles(values: Any) -> dict[str, float | None]:
    """p50, p95, p99, p99.9 (numpy's linear interpolation); None for each when there are no values."""
    arr = np.asarray(values, dtype="float64")
    if arr.size == 0:
        return {f"p{p:g}": None for p in PERCENTILES}
    qs = np.percentile(arr, PERCENTILES)
    return {f"p{p:g}": float(q) for p, q in zip(PERCENTILES, qs)}


#: The attempt columns :func:`summarize` reads (and :func:`in_flight_mean`, a subset):
#: finishing a long run reads only these from disk, not every column.
SUMMARY_COLUMNS: tuple[str, ...] = ("txn_id", "attempt", "started_at", "latency_ms", "outcome", "sqlstate")


def summary_frame(attempts: pa.Table) -> pd.DataFrame:
    """``attempts`` as :func:`summarize` needs them, and no more: :data:`SUMMARY_COLUMNS`,
    each transfer id replaced by an integer code.

    Grouping attempts into transfers needs to know which attempts share an id, not the
    id's text: 8 bytes an attempt instead of 36 and a string's overhead, the largest
    saving when a run of hours ends. summarize() gives the same figures on either frame
    (tests/results/test_metrics.py).
    """
    table = attempts.select(list(SUMMARY_COLUMNS))
    frame = table.drop_columns(["txn_id"]).to_pandas()
    frame.insert(0, "txn_id", transfer_codes(table.column("txn_id")))
    return frame


def transfer_codes(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An integer per id, equal for equal ids: the ids encoded a group at a time
    (loadgen.model.idgroups), each group's codes following the previous group's."""
    codes = np.empty(len(ids), dtype=np.int64)
    base = 0
    for _, rows in id_groups(last_bytes(ids)):
        group = pc.take(ids, rows)
        encoded = pc.dictionary_encode(group.combine_chunks() if isinstance(group, pa.ChunkedArray) else group)
        codes[rows] = encoded.indices.to_numpy() + base
        base += len(encoded.dictionary)
    return codes


def summarize(attempts: pd.DataFrame) -> dict[str, Any]:
    """The run's headline numbers (run.json's ``summary``), from the attempt table or its :func:`summary_frame`."""
    n = len(attempts)
    start_ms = _epoch_ms(attempts["started_at"]) if n else np.empty(0)
    return figures(
        attempts["outcome"],
        attempts["attempt"].to_numpy(),
        start_ms,
        attempts["latency_ms"].to_numpy(),
        transactions(attempts),
        attempts["sqlstate"],
    )


def figures(
    outcome: pd.Series,
    attempt: np.ndarray,
    start_ms: np.ndarray,
    latency_ms: np.ndarray,
    txns: pd.DataFrame,
    sqlstate: pd.Series | None = None,
) -> dict[str, Any]:
    """Every headline figure of a set of attempts (``start_ms``: epoch ms) and their :func:`transactions_of`:
    run.json's ``summary`` (:func:`summarize`) and the report's headline are both this."""
    n = len(outcome)
    outcomes = {str(k): int(v) for k, v in outcome.value_counts().items() if v} if n else {}
    commits, conflicts = outcome_counts(outcomes)
    retries = int((np.asarray(attempt) >= 2).sum()) if n else 0
    latency = np.asarray(latency_ms, dtype="float64")
    elapsed_s = float((start_ms + latency).max() - start_ms.min()) / 1000.0 if n else 0.0
    t = len(txns)
    retried = int((txns["attempts"] >= 2).sum()) if t else 0
    counts = Counts(n, commits, conflicts, retries, t, retried, n - commits, elapsed_s)
    r = rates(counts)
    # A frame without the sqlstate column (the report's) has no count to give, not a count of zero.
    sqlstates = {} if sqlstate is None else {"sqlstates": _value_counts(sqlstate.dropna()) if n else {}}
    return {
        "attempts": n,
        "transactions": t,
        "commits": commits,
        "conflicts": conflicts,
        "conflicts_by_kind": conflicts_by_kind(outcomes),
        **({} if sqlstate is None else {"conflicts_by_sqlstate": conflicts_by_sqlstate(outcome, sqlstate) if n else {}}),
        "outcomes": dict(sorted(outcomes.items())),
        **sqlstates,
        "failed_attempts": n - commits,
        "retries": retries,
        **r,  # conflict_rate, retries_per_commit, throughput_commits_per_s, ...
        "max_attempts": int(txns["attempts"].max()) if t else 0,
        "failed_transactions": int((~txns["committed"]).sum()) if t else 0,
        "elapsed_s": elapsed_s,
        "attempt_latency_ms": percentiles(latency),
        "transaction_latency_ms": percentiles(txns["latency_ms"]) if t else percentiles([]),
    }


def _value_counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(values.value_counts().to_dict().items())}


#: Below this share of the users asked for, a closed-loop run says it measured less concurrency.
IN_FLIGHT_WARN_SHARE = 0.9


def in_flight_mean(attempts: pd.DataFrame) -> float | None:
    """Transactions in flight at the database on average: attempts' database time / measured time.

    Little's law over the measured period (first attempt's start to last attempt's end).
    Waiting for a connection, backoff pauses and the client's own turns between
    transactions are not in flight at the database, and do not count.
    """
    if attempts.empty:
        return None
    start_ms = _epoch_ms(attempts["started_at"])
    latency = attempts["latency_ms"].to_numpy(dtype="float64")
    window_ms = float((start_ms + latency).max() - start_ms.min())
    return float(latency.sum()) / window_ms if window_ms > 0 else None


def concurrency(attempts: pd.DataFrame, users: int, closed_loop: bool) -> dict[str, Any]:
    """In-flight transactions against the users asked for, with a warning when well below.

    Only a closed loop without think time promises ``users`` in flight; an open loop,
    batches or think time ask for less by design, so there the share is shown, not judged.
    """
    return concurrency_of(in_flight_mean(attempts), users, closed_loop)


def concurrency_of(mean: float | None, users: int, closed_loop: bool) -> dict[str, Any]:
    """:func:`concurrency` from the mean in flight (counted out of core: loadgen.results.outofcore.summarize_files)."""
    ratio = share(mean, users)
    warning = None
    if closed_loop and mean is not None and ratio is not None and ratio < IN_FLIGHT_WARN_SHARE:
        warning = (
            f"{mean:,.1f} transactions were in flight on average against {users:,} users asked ({ratio:.0%}): "
            "the client or the target could not keep every user busy, so latencies and rates describe less concurrency"
        )
    return {"users": users, "in_flight_mean": mean, "in_flight_share": ratio, "warning": warning}
