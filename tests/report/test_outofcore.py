"""Out-of-core figures (loadgen.results.outofcore, loadgen.report.reduce) against today's in-memory code on the same attempts.

The attempts are spread over several files and read in batches of a few hundred rows,
a transaction's attempts interleaved with others' and split across batches and files,
so every accumulation across batches is exercised. No database.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loadgen.report import analysis as A
from loadgen.report.cells import analyse_run
from loadgen.report.data import load_run
from loadgen.report.failures import by_step
from loadgen.report.modelfit import fit_model
from loadgen.report.whatif import inputs_from_run
from loadgen.results import outofcore
from loadgen.results.fixed_cost import attempt_span
from loadgen.results.metrics import SUMMARY_COLUMNS, in_flight_mean, summarize, summary_frame
from loadgen.results.outofcore import ALL, Transactions, committed_latencies, compare_ledger, percentiles_of, summarize_files

PCTS = (50, 95, 99, 99.9)
#: Sums of floats taken batch by batch differ from numpy's pairwise sum in the last bits, no more.
FLOAT_SUMS = {"mean_attempt_ms", "wasted_ms", "wasted_share"}


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outofcore, "BATCH_ROWS", 256)


def attempts_table(seed: int, transfers: int = 1500) -> pa.Table:
    """Transfers of 1-6 attempts with mixed outcomes, interleaved in time, as a run records them (by attempt end)."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = 1_767_225_600_000_000
    outcomes = ["conflict", "deadlock", "lock_timeout", "connection_error"]
    for t in range(transfers):
        n = int(min(rng.geometric(0.6), 6))
        start = t0 + int(rng.uniform(0, 20e6))
        payer = int(rng.integers(1, 60))
        payee = int(payer % 59 + 1)
        for a in range(1, n + 1):
            lat = float(rng.choice([rng.exponential(8.0) + 0.5, 3.0]))  # ties on purpose
            last = a == n
            outcome = (
                str(rng.choice(["committed", "committed", "ambiguous_committed", "insufficient_funds", "error"]))
                if last
                else str(rng.choice(outcomes))
            )
            state = {"conflict": "40001", "deadlock": "40P01", "lock_timeout": "55P03"}.get(outcome)
            step = None if outcome in ("committed", "ambiguous_committed") else str(rng.choice(["debit", "credit", "commit", "unknown"]))
            rows.append((f"{t:08x}-{seed}", a, start, lat, outcome, state, payer, payee, None if step == "unknown" else step))
            start += int(lat * 1000) + int(rng.integers(0, 3000))
    rows.sort(key=lambda r: r[2] + r[3] * 1000)  # recorded when each attempt ends
    cols = list(zip(*rows))
    return pa.table(
        {
            "run_id": pa.array(["r"] * len(rows)),
            "txn_id": pa.array(cols[0], pa.string()),
            "attempt": pa.array(cols[1], pa.int32()),
            "started_at": pa.array(cols[2], pa.timestamp("us", tz="UTC")),
            "latency_ms": pa.array(cols[3], pa.float64()),
            "outcome": pa.array(cols[4], pa.string()),
            "sqlstate": pa.array(cols[5], pa.string()),
            "payer": pa.array(cols[6], pa.int64()),
            "payee": pa.array(cols[7], pa.int64()),
            "failed_at": pa.array(cols[8], pa.string()),
        }
    )


def write_run(directory: Path, table: pa.Table, target: str = "embedded") -> Path:
    directory.mkdir(parents=True)
    pq.write_table(table, directory / "attempts.parquet", row_group_size=700)
    meta = {"format": 1, "run_id": directory.name, "completed": True, "target": {"kind": target}}
    meta["scenario"] = {"accounts": 60, "users": 16, "transaction": "update-returning", "commit_ms": 2.0}
    (directory / "run.json").write_text(json.dumps(meta))
    return directory


def test_percentiles_match_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    for values in (
        rng.exponential(20.0, 5000) + 2.0,
        np.full(3000, 3.5),  # one value: the selection must stop on the bucket, not read it all
        rng.integers(0, 4, 4000).astype(float),  # heavy ties
        rng.normal(0.0, 1e3, 4000),  # negative values
        np.array([42.0]),
    ):
        labels = rng.integers(0, 3, len(values))
        chunks = np.array_split(np.arange(len(values)), 9)

        def scan(v: np.ndarray = values, lab: np.ndarray = labels, ch: list[np.ndarray] = chunks):  # type: ignore[no-untyped-def]
            return ((v[c], lab[c]) for c in ch)

        counts = {ALL: len(values), 0: int((labels == 0).sum()), 2: int((labels == 2).sum()), 9: 0}
        got = percentiles_of(scan, counts, PCTS)
        assert got[ALL] == list(np.percentile(values, PCTS))
        for s in (0, 2):
            assert got[s] == (list(np.percentile(values[labels == s], PCTS)) if counts[s] else None)
        assert got[9] is None


@pytest.mark.parametrize("target", ["embedded", "dsql"])
def test_report_figures_unchanged(tmp_path: Path, target: str) -> None:
    run = load_run(write_run(tmp_path / "run", attempts_table(1), target))
    cell = analyse_run(run)  # out of core
    c = run.report_frame  # today's in-memory frame, on the same attempts
    txns = A.transactions(c)
    before = A.headline(c, txns)
    assert cell.headline.keys() == before.keys()
    for key, value in before.items():
        if key in FLOAT_SUMS:
            assert cell.headline[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert cell.headline[key] == value, key
    pd.testing.assert_frame_equal(cell.timeline, A.timeline(c, txns))
    pd.testing.assert_frame_equal(cell.distribution, A.attempts_distribution(txns))
    pd.testing.assert_frame_equal(cell.hot_keys, A.hot_keys(c))
    pd.testing.assert_frame_equal(cell.by_attempt, A.latency_by_attempt(c))
    assert cell.failures == by_step(run.attempts_table(["outcome", "failed_at"])) and len(cell.failures) == 4
    fit = fit_model(run, c, before, cell.collision)
    assert cell.fit is not None
    assert cell.fit.window_source == fit.window_source and cell.fit.commit_rate == fit.commit_rate
    for name in ("window_ms", "attempt_ms", "model_rate"):
        assert getattr(cell.fit, name) == pytest.approx(getattr(fit, name), rel=1e-12), name
    assert before["attempts"] > 2000 and before["retries"] > 500  # enough to span many batches and row groups
    assert {"deadlock", "ambiguous_committed", "error"} <= set(before["outcomes"])


def test_summary_unchanged_across_files(tmp_path: Path) -> None:
    table = attempts_table(2)
    files = []
    for i, start in enumerate(range(0, table.num_rows, 900)):  # parts, as a run streams them
        files.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(table.slice(start, 900), files[-1], row_group_size=300)
    summary, in_flight, span = summarize_files(files)
    frame = summary_frame(table.select(list(SUMMARY_COLUMNS)))
    assert summary == summarize(frame)
    assert in_flight == pytest.approx(in_flight_mean(frame), rel=1e-12)
    assert span == pytest.approx(attempt_span(frame), abs=1e-5)


def test_summary_of_nothing(tmp_path: Path) -> None:
    table = attempts_table(3).slice(0, 0)
    pq.write_table(table, tmp_path / "a.parquet")
    summary, in_flight, span = summarize_files([tmp_path / "a.parquet"])
    assert summary == summarize(summary_frame(table.select(list(SUMMARY_COLUMNS))))
    assert in_flight is None and span is None


def test_ledger_compared_out_of_core(tmp_path: Path) -> None:
    ids = ["a-1", "a-2", "a-3", "a-4", "dup"]
    table = pa.table(
        {
            "txn_id": ids + ["dup", "a-5"],
            "outcome": ["committed"] * 4 + ["ambiguous_committed", "committed", "conflict"],
        }
    )
    pages = [pa.array(["a-1", "a-2"]), pa.array(["dup", "zzz", "a-5"])]  # a-3, a-4 missing; zzz and a-5 extra
    table = table.append_column("attempt", pa.array([1] * 7, pa.int32()))
    table = table.append_column("started_at", pa.array([0] * 7, pa.timestamp("us", tz="UTC")))
    pq.write_table(table.append_column("latency_ms", pa.array([1.0] * 7)), tmp_path / "a.parquet")
    with Transactions([tmp_path / "a.parquet"]) as txns:
        got = compare_ledger(txns, iter(pages))
    assert got.as_tuple() == (5, 5, 2, 2, 1)


def test_a_kept_grouping_serves_the_next_reader_of_the_same_unchanged_files(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", attempts_table(5))
    fresh = analyse_run(load_run(run_dir)).headline
    path = run_dir / "attempts.parquet"
    with Transactions([path]) as finished:  # the finish's grouping, kept for the closing report
        finished.keep()
    try:
        assert Transactions.of([path]) is finished  # handed on once: the next reader groups anew
        assert Transactions._kept is None
        with Transactions([path]) as again:
            again.keep()
        assert analyse_run(load_run(run_dir)).headline == fresh and Transactions._kept is None
        # Files changed since the grouping: grouped anew, and the stale grouping closed.
        with Transactions([path]) as stale:
            stale.keep()
        pq.write_table(attempts_table(6), path, row_group_size=700)
        changed = Transactions.of([path])
        assert changed is not stale and not stale._dir.exists()
        changed.close()
    finally:
        Transactions.discard_kept()
        finished.close()


def test_whatif_durations_all_below_the_cap_a_sample_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = attempts_table(4)
    run = load_run(write_run(tmp_path / "run", table))
    committed = table.filter(pa.compute.is_in(table["outcome"], pa.array(["ambiguous_committed", "committed"])))
    everything = committed["latency_ms"].to_numpy()
    got, total = committed_latencies(run.attempt_files(), cap=10**6)
    assert total == len(everything) and np.array_equal(got, everything)
    got, total = committed_latencies(run.attempt_files(), cap=100)
    step = math.ceil(len(everything) / 100)
    assert np.array_equal(got, everything[::step][:100])
    inputs = inputs_from_run(run)
    assert f"the run's {len(everything):,} committed attempts" in inputs.window_source
