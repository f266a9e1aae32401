"""The report's metrics on small fixed fixtures whose answers are worked out by hand below. No database."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadgen.report import analyse_runs, cells_frame, find_baseline, load_study, warnings_for
from loadgen.report import analysis as A
from loadgen.report.data import ReportInputError, compact, redact
from loadgen.report.reference import TALK_RETRY, replay_checks
from loadgen.results.metrics import summarize

T0 = pd.Timestamp("2026-01-01T00:00:00Z")

# txn, attempt, start ms, latency ms, outcome, payer, payee
ROWS = [
    ("A", 1, 0, 10, "conflict", 1, 2),
    ("A", 2, 12, 8, "committed", 1, 2),
    ("B", 1, 5, 4, "committed", 3, 4),
    ("C", 1, 1, 6, "conflict", 1, 5),
    ("C", 2, 8, 6, "conflict", 1, 5),
    ("C", 3, 15, 5, "committed", 1, 5),
    ("D", 1, 2, 3, "error", 2, 3),
]


def attempts_frame(rows: list[tuple] = ROWS, t0: pd.Timestamp = T0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": "r",
            "txn_id": [r[0] for r in rows],
            "attempt": [r[1] for r in rows],
            "started_at": [t0 + pd.Timedelta(milliseconds=r[2]) for r in rows],
            "latency_ms": [float(r[3]) for r in rows],
            "outcome": [r[4] for r in rows],
            "sqlstate": ["40001" if r[4] == "conflict" else None for r in rows],
            "payer": [r[5] for r in rows],
            "payee": [r[6] for r in rows],
            "amount": 1,
        }
    )


@pytest.fixture
def c() -> pd.DataFrame:
    return compact(attempts_frame())


def test_headline_by_hand(c: pd.DataFrame) -> None:
    h = A.headline(c, A.transactions(c))
    assert h["attempts"] == 7
    assert h["transactions"] == 4
    assert h["commits"] == 3
    assert h["conflicts"] == 3
    assert h["conflict_rate"] == pytest.approx(3 / 7)
    # Retries: A#2, C#2, C#3 -> 3 retries for 3 commits.
    assert h["retries"] == 3
    assert h["retries_per_commit"] == pytest.approx(1.0)
    assert h["attempts_per_commit"] == pytest.approx(7 / 3)
    assert h["retried_share"] == pytest.approx(2 / 4)  # A and C
    assert h["failed_transactions"] == 1  # D
    assert h["max_attempts"] == 3
    # From the first start (0 ms) to the last end (A#2 and C#3 end at 20 ms).
    assert h["elapsed_s"] == pytest.approx(0.020)
    assert h["throughput_commits_per_s"] == pytest.approx(3 / 0.020)
    # Failed attempts' time: 10 + 6 + 6 + 3 of 42 ms in all.
    assert h["wasted_ms"] == pytest.approx(25.0)
    assert h["wasted_share"] == pytest.approx(25 / 42)
    assert h["mean_attempt_ms"] == pytest.approx(42 / 7)


def test_percentiles_by_hand(c: pd.DataFrame) -> None:
    h = A.headline(c, A.transactions(c))
    # Attempt latencies sorted: 3 4 5 6 6 8 10; linear interpolation at rank q*(n-1).
    lat = [3, 4, 5, 6, 6, 8, 10]

    def interp(q: float) -> float:
        pos = q * (len(lat) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(lat) - 1)
        return lat[lo] + (lat[hi] - lat[lo]) * (pos - lo)

    assert h["attempt_latency_ms"]["p50"] == pytest.approx(6.0)
    assert h["attempt_latency_ms"]["p95"] == pytest.approx(8 + 0.7 * 2)
    for p in (50, 95, 99, 99.9):
        assert h["attempt_latency_ms"][f"p{p:g}"] == pytest.approx(interp(p / 100))
    # Whole transactions: A 0..20 = 20, B 4, C 1..20 = 19, D 3 -> sorted 3 4 19 20; p50 = 11.5.
    assert h["transaction_latency_ms"]["p50"] == pytest.approx(11.5)
    assert h["committed_transaction_latency_ms"]["p50"] == pytest.approx(19.0)


def test_agrees_with_core_summary() -> None:
    df = attempts_frame()
    s = summarize(df)
    c = compact(df)
    h = A.headline(c, A.transactions(c))
    for key in (
        "attempts",
        "transactions",
        "commits",
        "conflicts",
        "retries",
        "conflict_rate",
        "retries_per_commit",
        "retried_share",
        "max_attempts",
        "failed_transactions",
    ):
        assert h[key] == pytest.approx(s[key]), key
    assert h["attempt_latency_ms"] == pytest.approx(s["attempt_latency_ms"])
    assert h["transaction_latency_ms"] == pytest.approx(s["transaction_latency_ms"])
    assert h["throughput_commits_per_s"] == pytest.approx(s["throughput_commits_per_s"])


def test_timeline_by_hand(c: pd.DataFrame) -> None:
    t = A.timeline(c, A.transactions(c), bin_s=0.010)
    # Bin [0, 10 ms): ends 9 (B commit), 7 (C#1 conflict), 5 (D error). Bin [10, 20]: the rest.
    assert list(t["t_s"]) == pytest.approx([0.0, 0.010])
    assert list(t["commits_per_s"]) == pytest.approx([100.0, 200.0])
    assert list(t["conflicts_per_s"]) == pytest.approx([100.0, 200.0])
    assert list(t["errors_per_s"]) == pytest.approx([100.0, 0.0])
    # In flight at 0 ms: A only; at 10 ms: A and C (B ended at 9, D at 5).
    assert list(t["in_flight"]) == [1, 2]


def test_attempts_distribution_and_hot_keys(c: pd.DataFrame) -> None:
    d = A.attempts_distribution(A.transactions(c))
    assert d.to_dict("list") == {"attempts": [1, 2, 3], "transactions": [2, 1, 1], "share": [0.5, 0.25, 0.25], "committed": [1, 1, 1]}
    k = A.hot_keys(c)
    # Conflicted attempts: A#1 (1,2), C#1 (1,5), C#2 (1,5).
    assert list(k["account"]) == [1, 5, 2]
    assert list(k["conflicts"]) == [3, 2, 1]
    assert list(k["share"]) == pytest.approx([1.0, 2 / 3, 1 / 3])
    # Account 1 is touched by A#1, A#2, C#1..3: 5 attempts, 3 conflicted.
    assert k.iloc[0]["attempts"] == 5
    assert k.iloc[0]["conflict_rate"] == pytest.approx(3 / 5)


def test_model_reproduces_the_talk() -> None:
    c = A.pair_collision(1000)
    assert c == pytest.approx(1 - (998 * 997) / (1000 * 999))
    assert c == pytest.approx(4 / 1000, rel=0.01)
    est = A.model_conflict_rate(908, 0.020, c)
    # The talk: lambda D = 18.2, 1 - 0.996^18.2 = 7.0% against 6.56% measured.
    assert est == pytest.approx(1 - (1 - c) ** (908 * 0.020))
    assert est == pytest.approx(0.070, abs=0.001)
    assert A.model_conflict_rate(908, 0.020, A.pair_collision(1e6)) < 0.0001
    assert A.pair_collision(2) == 1.0


def test_wilson_interval_brackets_the_rate() -> None:
    lo, hi = A.wilson_interval(30, 1000)  # type: ignore[misc]
    assert lo < 0.03 < hi
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(0.03 * 0.97 / 1000), rel=0.05)
    assert A.wilson_interval(0, 0) is None


def write_run(
    directory: Path, rows: list[tuple], accounts: int, users: int, completed: bool = True, scenario_extra: dict | None = None, **meta
) -> Path:
    directory.mkdir(parents=True)
    df = attempts_frame(rows)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), directory / "attempts.parquet")
    doc = {
        "run_id": directory.name,
        "completed": completed,
        "invariants_hold": True,
        "scenario": {"accounts": accounts, "users": users, "distribution": "uniform", "seed": 1, **(scenario_extra or {})},
        **meta,
    }
    (directory / "run.json").write_text(json.dumps(doc))
    return directory


def _rows(n: int, conflicts: int) -> list[tuple]:
    """n one-attempt transactions, the first ``conflicts`` of them ending in conflict."""
    return [(f"t{i}", 1, i, 1.0, "conflict" if i < conflicts else "committed", 1, 2) for i in range(n)]


TALK_LOAD = {"load": "open", "arrival_rate": 908.0, "retry": {"backoff": "none"}}


def test_ratio_to_measured_baseline(tmp_path: Path) -> None:
    """The baseline is the cell with the talk's conditions (1,000 accounts, its open-loop rate), not a 1,000-user closed loop."""
    write_run(tmp_path / "s" / "base", _rows(10, 1), 1000, 100, scenario_extra=TALK_LOAD)
    write_run(tmp_path / "s" / "hot", _rows(10, 5), 10, 100, scenario_extra=TALK_LOAD)
    write_run(tmp_path / "s" / "closed", _rows(10, 8), 1000, 1000)
    study = load_study(tmp_path / "s")
    assert study.is_sweep and len(study.runs) == 3
    cells = analyse_runs(study.runs)
    base = find_baseline(cells)
    assert base is not None and base.run.run_id == "base"
    f = cells_frame(cells, base).set_index("cell")
    f = f[f["load"] == "open loop 908/s"].set_index("accounts")
    assert f.loc[10, "conflict_rate"] == pytest.approx(0.5)
    assert f.loc[10, "conflict_ratio"] == pytest.approx(0.5 / 0.1)
    assert f.loc[1000, "conflict_ratio"] == pytest.approx(1.0)
    # attempts per commit: 10/5 against 10/9.
    assert f.loc[10, "apc_ratio"] == pytest.approx((10 / 5) / (10 / 9))


def test_ratio_to_published_baseline_when_none_measured(tmp_path: Path) -> None:
    write_run(tmp_path / "only", _rows(20, 4), 10, 50)
    cells = analyse_runs(load_study(tmp_path / "only").runs)
    assert find_baseline(cells) is None
    f = cells_frame(cells, None)
    assert f.loc[0, "conflict_ratio"] == pytest.approx(0.2 / TALK_RETRY.conflict_rate)  # the same definition: failed attempts / attempts
    assert pd.isna(f.loc[0, "apc_ratio"]) or f.loc[0, "apc_ratio"] is None


def test_model_in_a_cell_uses_measured_rate_and_window(tmp_path: Path) -> None:
    write_run(tmp_path / "r", ROWS, 1000, 4)
    (cell,) = analyse_runs(load_study(tmp_path / "r").runs)
    # On PostgreSQL every attempt holds its row locks while it runs: lambda counts all 7 attempts
    # in 20 ms; D is their mean latency (42/7 = 6 ms) cut to the snapshot-to-COMMIT window,
    # 3 of update-returning's 5 round trips: 3.6 ms.
    assert cell.fit is not None
    assert cell.fit.window_ms == pytest.approx(3.6)
    expected = A.model_conflict_rate(7 / 0.020, 3.6 / 1000, A.pair_collision(1000))
    assert cell.model_rate == pytest.approx(expected)
    # Measured: contention (conflicts, deadlocks, lock timeouts) over all attempts: 3 of 7 (the error is not contention).
    assert cell.fit.measured_rate == pytest.approx(3 / 7)
    assert cell.fit.ratio == pytest.approx((3 / 7) / expected)


def test_model_on_dsql_counts_only_commits(tmp_path: Path) -> None:
    write_run(tmp_path / "d", ROWS, 1000, 4, target={"kind": "dsql"})
    (cell,) = analyse_runs(load_study(tmp_path / "d").runs)
    # First committer wins: only the 3 commits (8, 4, 5 ms: mean 17/3) can hurt; DSQL takes the
    # snapshot at BEGIN, so the window is 4 of their 5 round trips: 17/3 x 4/5 = 4.53 ms.
    assert cell.fit is not None and cell.fit.window_ms == pytest.approx(17 / 3 * 4 / 5)
    assert cell.model_rate == pytest.approx(A.model_conflict_rate(3 / 0.020, 17 / 3 * 4 / 5 / 1000, A.pair_collision(1000)))


def test_model_prefers_recorded_collision_probability(tmp_path: Path) -> None:
    write_run(tmp_path / "z", ROWS, 1000, 4, keys={"collision_probability": 0.01})
    (cell,) = analyse_runs(load_study(tmp_path / "z").runs)
    assert cell.collision == pytest.approx(A.pair_collision(100))
    assert "from run.json" in cell.collision_source


def test_warnings(tmp_path: Path) -> None:
    write_run(tmp_path / "s" / "a", _rows(50, 5), 10, 10, completed=False, client={"cpu_utilization": 0.97})
    write_run(tmp_path / "s" / "b", [(f"t{i}", 1, i * 10, 1.0, "committed", 1, 2) for i in range(50)], 100, 10)
    w = " ".join(warnings_for(analyse_runs(load_study(tmp_path / "s").runs)))
    assert "interrupted" in w
    assert "uncertain" in w
    assert "saturated" in w and "--processes" in w
    assert "very different durations" in w


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportInputError, match="no such"):
        load_study(tmp_path / "missing")
    with pytest.raises(ReportInputError, match="not a run or sweep"):
        load_study(tmp_path)


def test_redact_hides_passwords() -> None:
    doc = {"url": "postgresql://admin:s3cret@host/db", "dsn": "host=x password=hunter2", "password": "p", "token": None}
    out = json.dumps(redact(doc))
    assert "s3cret" not in out and "hunter2" not in out and '"p"' not in out
    assert "host=x" in out


def test_talk_replay_checks_by_hand() -> None:
    # Published (immediate retry): 735 / 10,735 = 6.85% of attempts, 6.42% retried, at most 4 retries.
    assert [r.ok for r in replay_checks(0.0700, 0.0600, 5)] == [True, True, True]
    assert [r.ok for r in replay_checks(0.0586, 0.0493, 6)] == [True, True, True]  # 0.99 and 1.49 points off
    assert [r.ok for r in replay_checks(0.0800, 0.0800, 7)] == [False, False, False]  # 1.15, 1.58 points; 7 attempts
    assert [r.ok for r in replay_checks(None, None, 0)] == [False, False, False]
