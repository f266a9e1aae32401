"""The OCC simulation and ``loadgen predict``: worked examples by hand, a closed form, the command line. No database."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadgen.cli.main import main
from loadgen.errors import ConfigError
from loadgen.model.keys import Hotset, Uniform
from loadgen.model.occsim import Cycle, Load, Sampled, first_committer_wins, simulate
from loadgen.model.retry import RetryPolicy
from loadgen.report import analysis as A
from loadgen.report.data import load_run
from loadgen.report.whatif import inputs_from_run, predict, summarize_simulation


def test_snapshot_window_by_hand() -> None:
    # 20 ms over 5 round trips (BEGIN, 3 statements, COMMIT): the last 3 are the window, 12 ms.
    # With COMMIT taking 10 ms more: (20 - 10) x 3/5 + 10 = 16. An attempt shorter than that extra: all window.
    assert A.snapshot_window_ms([20.0], 3).tolist() == pytest.approx([12.0])
    assert A.snapshot_window_ms([20.0, 5.0], 3, commit_ms=10.0).tolist() == pytest.approx([16.0, 5.0])


def test_first_committer_wins_by_hand() -> None:
    # attempt: snapshot .. commit, rows
    #   A  0 .. 10  {1, 2}
    #   B  2 ..  8  {2, 3}
    #   C  5 .. 12  {4, 5}
    #   D  9 .. 15  {1, 4}
    # In commit order: B (8) commits: rows 2, 3 stamped 8. A (10): row 2 committed at 8,
    # after A's snapshot 0: conflict. C (12) commits: rows 4, 5 stamped 12. D (15): row 1
    # untouched (A failed), row 4 committed at 12 after D's snapshot 9: conflict.
    ok = first_committer_wins([0, 2, 5, 9], [10, 8, 12, 15], [(1, 2), (2, 3), (4, 5), (1, 4)])
    assert ok == [False, True, True, False]


def test_a_commit_at_the_snapshot_instant_is_seen() -> None:
    # B's snapshot is taken at 10, the instant A commits: B reads A's write, so no conflict.
    assert first_committer_wins([0, 10], [10, 20], [(1, 2), (2, 3)]) == [True, True]


def test_closed_loop_with_retries_by_hand() -> None:
    """Two users, three accounts (any two transfers share an account), durations 10, 15, 10, 15, ...

    Draws alternate between 10 and 15 ms in the order attempts start:
      t=0   u0 txn A1 [0, 10]          u1 txn B  try 1 [0, 15]
      t=10  A1 commits;                u0 starts A2 [10, 20]
      t=15  B#1: a row committed at 10 > snapshot 0: conflict; B#2 [15, 30]
      t=20  A2 commits (its rows last committed at 10 <= snapshot 10); A3 [20, 30]
      t=30  B#2 (ends first in order: scheduled first) sees A2's commit at 20 > 15: conflict; B#3 [30, 45]
            A3 commits; A4 [30, 40]
      t=40  A4 commits; A5 [40, 55]: the 8th attempt, the last measured
      t=45  B#3 sees A4's commit at 40 > 30: conflict, and 3 attempts is the limit: B fails
      t=55  A5 commits; all measured attempts have ended.
    So 8 attempts, 5 commits, 3 conflicts; 2 retries; 6 transactions, 1 retried, 1 failed;
    the measured period is 0 to 40 ms: 5 commits in 0.04 s.
    """
    sim = simulate(
        Uniform(3),
        Cycle([(0.0, 10.0), (0.0, 15.0)]),
        Load("closed", users=2),
        RetryPolicy(max_attempts=3),
        attempts=8,
        warmup_ms=0.0,
    )
    assert list(sim.start_ms) == [0, 0, 10, 15, 20, 30, 30, 40]
    assert list(sim.end_ms) == [10, 15, 20, 30, 30, 45, 40, 55]
    assert list(sim.attempt) == [1, 1, 1, 2, 1, 3, 1, 1]
    assert list(sim.committed) == [True, False, True, False, True, False, True, True]
    p = summarize_simulation(sim, accounts=3, users=2, mean_window_ms=12.5, rtt_ms=0.0)
    assert p.attempts == 8 and p.commits == 5
    assert p.conflict_rate == pytest.approx(3 / 8)
    assert p.retries_per_commit == pytest.approx(2 / 5)
    assert p.retried_share == pytest.approx(1 / 6)
    assert p.max_attempts == 3
    assert p.throughput_commits_per_s == pytest.approx(5 / 0.040)


def test_retry_backoff_delays_the_next_attempt() -> None:
    # Same start as above, with exponential backoff of 5 ms: B#2 starts at 15 + 5.
    sim = simulate(
        Uniform(3),
        Cycle([(0.0, 10.0), (0.0, 15.0)]),
        Load("closed", users=2),
        RetryPolicy(max_attempts=3, backoff="exponential", base_ms=5.0),
        attempts=4,
        warmup_ms=0.0,
    )
    assert list(sim.start_ms)[:4] == [0, 0, 10, 20]


def test_time_before_the_snapshot_is_not_vulnerable() -> None:
    # A batch of two transfers over 3 accounts, both starting at 0. The first commits at 12.
    # The second ends at 15 either way: with its snapshot at 13 it read the first's write
    # and commits; with its snapshot at 0 it conflicts.
    def second_commits(before: float, window: float) -> bool:
        sim = simulate(
            Uniform(3), Cycle([(0.0, 12.0), (before, window)]), Load("batches", 2), RetryPolicy(max_attempts=1), attempts=2, warmup_ms=0
        )
        return bool(sim.committed[1])

    assert second_commits(13.0, 2.0)
    assert not second_commits(0.0, 15.0)


def test_open_loop_matches_the_closed_form() -> None:
    """Poisson arrivals at rate lambda, every attempt D long, no retry: an attempt conflicts when
    one of the commits in its window, at rate lambda (1 - p), shares a row with it (probability c):
    p = 1 - exp(-lambda (1 - p) c D). The talk's figures: 908/s, 20 ms, 1,000 accounts."""
    lam, d, n = 908.0, 20.0, 1000
    c = A.pair_collision(n)
    p = 0.05
    for _ in range(50):
        p = 1 - math.exp(-lam * (1 - p) * c * d / 1000)
    sim = simulate(Uniform(n), Cycle([(0.0, d)]), Load("open", 0, arrival_rate=lam), RetryPolicy(max_attempts=1), attempts=40_000, seed=7)
    rate = 1 - sim.committed.mean()
    assert rate == pytest.approx(p, rel=0.08)  # 40,000 attempts at 6.6%: one sigma is 2.4% of the rate
    assert len(sim) / sim.period_s == pytest.approx(lam, rel=0.03)


def test_closed_loop_obeys_littles_law() -> None:
    # 50 users, no conflicts possible to speak of (a million accounts), 10 ms each: 5,000 commits/s.
    sim = simulate(Uniform(1_000_000), Cycle([(2.0, 8.0)]), Load("closed", 50), RetryPolicy(), attempts=5000)
    assert sim.committed.all()
    assert sim.committed.sum() / sim.period_s == pytest.approx(5000, rel=0.02)


def test_skewed_keys_conflict_more_than_uniform() -> None:
    durations = Sampled(np.zeros(1), np.array([10.0]))
    uniform = simulate(Uniform(1000), durations, Load("closed", 20), RetryPolicy(), attempts=5000, seed=1)
    hot = simulate(Hotset(1000, p=0.9, k=10), durations, Load("closed", 20), RetryPolicy(), attempts=5000, seed=1)
    assert (1 - hot.committed.mean()) > 5 * (1 - uniform.committed.mean())


def test_same_seed_same_attempts() -> None:
    args = (Uniform(50), Sampled([0.0, 1.0], [5.0, 9.0], seed=3), Load("closed", 8), RetryPolicy())
    a = simulate(*args, attempts=2000, seed=4)
    b = simulate(Uniform(50), Sampled([0.0, 1.0], [5.0, 9.0], seed=3), Load("closed", 8), RetryPolicy(), attempts=2000, seed=4)
    assert np.array_equal(a.end_ms, b.end_ms) and np.array_equal(a.committed, b.committed)


def test_bad_simulation_inputs() -> None:
    with pytest.raises(ConfigError):
        Load("open", 0)  # no rate
    with pytest.raises(ConfigError):
        Sampled([], [])
    with pytest.raises(ConfigError):
        simulate(Uniform(10), Cycle([(0.0, 0.0)]), Load(), RetryPolicy())


# --- from a run directory --------------------------------------------------------------------

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def write_run(directory: Path, latencies: list[float], outcomes: list[str], scenario: dict) -> Path:
    """A run directory in the data contract's format (attempts.parquet + run.json)."""
    directory.mkdir(parents=True)
    n = len(latencies)
    df = pd.DataFrame(
        {
            "run_id": "r",
            "txn_id": [f"t{i}" for i in range(n)],
            "attempt": 1,
            "started_at": [T0 + pd.Timedelta(milliseconds=10 * i) for i in range(n)],
            "latency_ms": latencies,
            "outcome": outcomes,
            "payer": 1,
            "payee": 2,
        }
    )
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), directory / "attempts.parquet")
    doc = {"run_id": directory.name, "completed": True, "scenario": {"distribution": "uniform", **scenario}}
    (directory / "run.json").write_text(json.dumps(doc))
    return directory


def test_inputs_come_from_the_committed_attempts(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "r",
        [10.0, 30.0, 2.0],
        ["committed", "committed", "conflict"],
        {"accounts": 100, "users": 4, "retry": {"max_attempts": 7, "backoff": "none"}, "rtt_ms": 2.0},
    )
    inputs = inputs_from_run(load_run(run))
    # The committed attempts only (the conflicted one stopped early); of the 5 round trips of
    # update-returning (BEGIN, 3 statements, COMMIT), the last 3 lie in the snapshot-to-COMMIT window.
    assert sorted(inputs.window_ms.tolist()) == pytest.approx([6.0, 18.0])
    assert sorted(inputs.before_ms.tolist()) == pytest.approx([4.0, 12.0])
    assert inputs.policy.max_attempts == 7 and inputs.load == Load("closed", 4)
    assert inputs.statements == 3 and inputs.rtt_ms == 2.0
    # --rtt-ms 5: 3 ms more per round trip, 3 of them in the window.
    p = predict(inputs, 100, 4, rtt_ms=5.0, attempts=500)
    assert p.mean_window_ms == pytest.approx(12.0 + 3 * 3.0)
    with pytest.raises(ConfigError):
        predict(inputs, 100, 4, rtt_ms=0.0 - 10, attempts=500)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadgen.cli", "predict", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_predict_command(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", [10.0] * 50, ["committed"] * 50, {"accounts": 100, "users": 10})
    out = _cli(str(run), "--accounts", "100,1000", "--users", "10", "--json", "--attempts", "2000")
    assert out.returncode == 0, out.stderr
    cells = json.loads(out.stdout)
    assert [(c["accounts"], c["users"]) for c in cells] == [(100, 10), (1000, 10)]
    for c in cells:
        assert {"accounts", "users", "conflict_rate", "retries_per_commit", "goodput_commits_per_s"} <= set(c)
        assert c["goodput_commits_per_s"] == c["throughput_commits_per_s"]
    # Ten times the accounts, about a tenth of the conflicts.
    assert cells[0]["conflict_rate"] > 5 * cells[1]["conflict_rate"] > 0
    table = _cli(str(run), "--accounts", "100", "--users", "10", "--attempts", "500")
    assert table.returncode == 0 and "conflict rate" in table.stdout and "100" in table.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--accounts", "10,x", "--users", "5"], "--accounts takes positive whole numbers"),
        (["--accounts", "1", "--users", "5"], "accounts must be at least 2"),
        (["--accounts", "10", "--users", "0"], "--users takes positive whole numbers"),
        (["--accounts", "10", "--users", "5", "--rtt-ms", "-1"], "--rtt-ms must not be negative"),
    ],
)
def test_predict_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    run = write_run(tmp_path / "r", [10.0] * 5, ["committed"] * 5, {"accounts": 100, "users": 10})
    assert main(["predict", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_predict_needs_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "none"), "--accounts", "10", "--users", "5"]) == 2
    assert "no such run" in capsys.readouterr().err


def test_predict_help_states_the_simulators_default_attempts(capsys: pytest.CaptureFixture[str]) -> None:
    """The parser says the default without importing the simulator (numpy): the two must agree."""
    from loadgen.cli.parser import build_parser
    from loadgen.model.occsim import DEFAULT_ATTEMPTS

    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", "--help"])
    assert f"(default {DEFAULT_ATTEMPTS:,})" in " ".join(capsys.readouterr().out.split())
