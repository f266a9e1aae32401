"""One set of figures: the summary, the report and the live counters agree on the same attempts. No database."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loadgen.engine.live import ContentionCounters, Timeline, view
from loadgen.model.outcomes import COMMITTED, CONTENTION, OUTCOMES, RETRYABLE, Outcome
from loadgen.report import analysis as A
from loadgen.report.data import compact
from loadgen.results.metrics import Counts, outcome_counts, rates, summarize, summary_frame, transactions, upgrade_summary

T0 = pd.Timestamp("2026-01-01T00:00:00Z")

# txn, attempt, start ms, latency ms, outcome, sqlstate: two conflicts, a deadlock, a lock timeout.
ROWS = [
    ("A", 1, 0, 10, "conflict", "40001"),
    ("A", 2, 12, 8, "committed", None),
    ("B", 1, 5, 4, "deadlock", "40P01"),
    ("B", 2, 10, 4, "committed", None),
    ("C", 1, 1, 6, "lock_timeout", "55P03"),
    ("C", 2, 8, 6, "conflict", "40001"),
    ("C", 3, 15, 5, "committed", None),
    ("D", 1, 2, 3, "error", "XX000"),
    ("E", 1, 3, 17, "ambiguous_committed", None),
]
FIGURES = ("conflict_rate", "retries_per_commit", "retried_share", "attempts_per_commit", "failed_attempt_rate")


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": "r",
            "txn_id": [r[0] for r in ROWS],
            "attempt": [r[1] for r in ROWS],
            "started_at": [T0 + pd.Timedelta(milliseconds=r[2]) for r in ROWS],
            "latency_ms": [float(r[3]) for r in ROWS],
            "outcome": [r[4] for r in ROWS],
            "sqlstate": [r[5] for r in ROWS],
            "payer": 1,
            "payee": 2,
            "amount": 1,
        }
    )


def _live() -> dict:
    counters = ContentionCounters()
    for _txn, attempt, _, _, outcome, sqlstate in ROWS:
        counters.add_attempt(outcome, sqlstate, attempt, 1, 2)
    for txn in "ABCDE":
        last = max((r for r in ROWS if r[0] == txn), key=lambda r: r[1])
        counters.add_transaction(last[1], last[4] in COMMITTED)
    return view(counters.snapshot())


def test_the_sets_are_what_the_names_say() -> None:
    assert CONTENTION == {"conflict", "deadlock", "lock_timeout"}
    assert RETRYABLE == CONTENTION | {"connection_error"}
    assert COMMITTED == {"committed", "ambiguous_committed"}
    assert set(OUTCOMES) == {o.value for o in Outcome} and len(OUTCOMES) == 9
    assert Outcome.CONFLICT == "conflict" and f"{Outcome.CONNECTION_ERROR}" == "connection_error"


def test_rates_by_hand() -> None:
    r = rates(Counts(attempts=9, commits=4, conflicts=4, retries=4, transactions=5, retried=3, elapsed_s=0.5))
    assert r["conflict_rate"] == pytest.approx(4 / 9)
    assert "contention_rate" not in r  # one conflict rate, no second figure beside it
    assert r["failed_attempt_rate"] == pytest.approx(5 / 9)
    assert r["retries_per_commit"] == pytest.approx(1.0)
    assert r["retried_share"] == pytest.approx(3 / 5)
    assert r["attempts_per_commit"] == pytest.approx(9 / 4)
    assert r["throughput_commits_per_s"] == pytest.approx(8.0)
    empty = rates(Counts(attempts=0, commits=0))
    assert all(v is None for k, v in empty.items()), empty  # nothing measured: no figure, not 0


def test_summary_report_and_live_counters_agree() -> None:
    s = summarize(_frame())
    c = compact(_frame())
    h = A.headline(c, A.transactions(c))
    live = _live()
    assert s["conflicts"] == h["conflicts"] == live["conflicts"] == 4  # 40001s, a deadlock and a lock timeout
    assert s["conflicts_by_kind"] == h["conflicts_by_kind"] == live["conflicts_by_kind"]
    assert sum(s["conflicts_by_kind"].values()) == 4 and s["conflicts_by_kind"]["conflict"] == 2
    assert s["commits"] == h["commits"] == live["commits"] == 4
    for name in FIGURES:
        assert s[name] == pytest.approx(h[name]) == pytest.approx(live[name]), name
    assert s["conflict_rate"] == pytest.approx(4 / 9)
    assert sum(s["conflicts_by_sqlstate"].values()) == 4
    assert s["throughput_commits_per_s"] == pytest.approx(h["throughput_commits_per_s"])


def test_live_conflicts_count_by_outcome_not_sqlstate() -> None:
    counters = ContentionCounters()
    counters.add_attempt(Outcome.CONFLICT, None, 1, 1, 2)  # a conflict whatever SQLSTATE came with it
    counters.add_attempt(Outcome.LOCK_TIMEOUT, "40001", 1, 1, 2)  # a conflict too: contention, whatever the code
    counters.add_attempt(Outcome.ERROR, "40001", 1, 1, 2)  # not contention: classified otherwise at the source
    v = view(counters.snapshot())
    assert v["conflicts"] == 2 and v["conflicts_by_kind"] == {"conflict": 1, "lock_timeout": 1}


def test_timeline_shows_the_conflict_rate() -> None:
    tl = Timeline()
    tl.sample({"attempts": 0, "conflicts": 0, "commits": 0}, 5, now=0.0)
    tl.sample({"attempts": 10, "conflicts": 3, "commits": 7}, 5, now=2.0)
    (p,) = tl.points
    assert p["conflict_rate"] == 0.3 and "contention_rate" not in p and p["throughput_commits_per_s"] == 3.5


def test_the_rate_does_not_depend_on_which_sqlstate_dominates() -> None:
    """occ mode may report its losers as 55P03 at the statement or as 40001 at COMMIT: one figure either way."""
    by_lock = {"committed": 90, "lock_timeout": 9, "conflict": 1}
    by_commit = {"committed": 90, "conflict": 10}
    for by in (by_lock, by_commit):
        commits, conflicts = outcome_counts(by)
        assert rates(Counts(100, commits, conflicts))["conflict_rate"] == pytest.approx(0.10)


def test_a_format_1_summary_reads_under_format_2s_names() -> None:
    old = {
        "attempts": 100, "commits": 80, "conflicts": 5, "contention": 20, "conflict_rate": 0.05, "contention_rate": 0.2,
        "contention_by_kind": {"conflict": 5, "lock_timeout": 15}, "outcomes": {"committed": 80, "conflict": 5, "lock_timeout": 15},
    }  # fmt: skip
    new = upgrade_summary(old)
    assert new["conflict_rate"] == 0.2 and new["conflicts"] == 20 and new["conflicts_by_kind"] == {"conflict": 5, "lock_timeout": 15}
    assert "contention_rate" not in new and "contention" not in new
    # Older still: no contention figures at all, only the outcomes.
    older = upgrade_summary({"attempts": 100, "conflict_rate": 0.05, "outcomes": old["outcomes"]})
    assert older["conflict_rate"] == 0.2 and older["conflicts"] == 20


def _transactions_by_groupby(attempts: pd.DataFrame) -> pd.DataFrame:
    """The pandas group-by that transactions() replaced (kept here as its definition)."""
    df = pd.DataFrame(
        {
            "txn_id": attempts["txn_id"].to_numpy(),
            "attempt": attempts["attempt"].to_numpy(),
            "start_ms": attempts["started_at"].to_numpy(dtype="datetime64[us]").astype("int64") / 1000.0,
            "latency_ms": attempts["latency_ms"].to_numpy(),
            "outcome": attempts["outcome"].to_numpy(),
        }
    )
    df["end_ms"] = df["start_ms"] + df["latency_ms"]
    g = df.sort_values(["txn_id", "attempt"], kind="stable").groupby("txn_id", sort=True)
    out = pd.DataFrame(
        {
            "attempts": g["attempt"].max(),
            "outcome": g["outcome"].last(),
            "latency_ms": g["end_ms"].max() - g["start_ms"].min(),
            "start_ms": g["start_ms"].min(),
        }
    )
    return out.reset_index()


def test_transactions_match_a_pandas_group_by_on_shuffled_attempts() -> None:
    rng = np.random.default_rng(7)
    rows = []
    for t in range(2000):
        for a in range(1, int(rng.integers(1, 5)) + 1):
            rows.append((f"t{rng.integers(10**9):09d}-{t}", a, float(rng.uniform(0, 60_000)), float(rng.lognormal(1, 0.6))))
    # Retries interleaved with other transfers, and a transfer's attempts out of order.
    rows = [rows[i] for i in rng.permutation(len(rows))]
    frame = pd.DataFrame(
        {
            "txn_id": [r[0] for r in rows],
            "attempt": np.array([r[1] for r in rows], dtype="int32"),
            "started_at": T0 + pd.to_timedelta([r[2] for r in rows], unit="ms"),
            "latency_ms": [r[3] for r in rows],
            "outcome": rng.choice(["committed", "conflict", "error"], len(rows)),
            "sqlstate": None,
        }
    )
    expected = _transactions_by_groupby(frame)
    got = transactions(frame)
    pd.testing.assert_frame_equal(got[list(expected.columns)], expected, check_dtype=False)
    assert (got["end_ms"] - got["start_ms"]).to_numpy() == pytest.approx(got["latency_ms"].to_numpy())
    # On transfer ids as codes (what a finishing run summarizes): the same transactions, ids aside.
    coded = transactions(summary_frame(pa.Table.from_pandas(frame, preserve_index=False)))
    key = ["attempts", "outcome", "latency_ms", "start_ms"]
    pd.testing.assert_frame_equal(
        coded[key].sort_values(key, ignore_index=True), expected[key].sort_values(key, ignore_index=True), check_dtype=False
    )


def test_a_share_is_written_one_way() -> None:
    """Terminal summary, predict's table, the web UI's tab and the report all write shares with metrics.percent."""
    from loadgen.results.metrics import percent

    assert percent(735 / 10_735) == "6.85%"
    assert percent(0.0656, 1) == "6.6%"
    assert percent(None) == percent(float("nan")) == percent(np.float64("nan")) == "-"
    assert percent(None, missing="–") == "–"
