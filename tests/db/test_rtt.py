"""Emulated latency (--rtt-ms, --rtt-jitter-ms, --commit-ms): every round trip takes at least that much longer."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from commandline import run_cli

from loadgen.db.delay import with_latency
from loadgen.db.gwait import GeventConnection
from loadgen.db.occ import occ_shape
from loadgen.db.schema import reset
from loadgen.db.transfer import TransferRequest, transfer_once
from loadgen.engine import runner
from loadgen.errors import ConfigError
from loadgen.model.latency import Latency
from loadgen.model.scenario import Scenario
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres

RTT_MS = 25.0


class _Counting(GeventConnection):
    """Counts the round trips psycopg makes (every command goes through wait)."""

    round_trips = 0

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        _Counting.round_trips += 1
        return super().wait(gen, interval, timeout)


def test_no_latency_is_no_subclass() -> None:
    # Zero cost when off: the connection class is the one given, nothing in the path.
    assert with_latency(GeventConnection, Latency()) is GeventConnection
    assert with_latency(GeventConnection, Latency(rtt_ms=1)) is not GeventConnection


def test_every_round_trip_is_lengthened(embedded: EmbeddedPostgres, conn: psycopg.Connection) -> None:
    reset(conn, 10, 100)
    cls = with_latency(_Counting, Latency(rtt_ms=RTT_MS, commit_ms=10.0))
    with cls.connect(embedded.conninfo) as c:
        durations = []
        for _ in range(5):
            t0 = time.perf_counter()
            c.execute("SELECT 1").fetchone()  # BEGIN and the statement: two round trips
            durations.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            c.commit()
            commit_ms = (time.perf_counter() - t0) * 1000
            assert commit_ms >= RTT_MS + 10.0
        assert min(durations) >= 2 * RTT_MS

        # A whole transfer: BEGIN, debit, credit, ledger row, COMMIT, each delayed
        # (psycopg sends BEGIN within the debit's command: four commands, five round trips).
        _Counting.round_trips = 0
        t0 = time.perf_counter()
        transfer_once(c, TransferRequest.new(1, 2, 1))
        elapsed_ms = (time.perf_counter() - t0) * 1000
        assert _Counting.round_trips == 4
        assert elapsed_ms >= 5 * RTT_MS + 10.0

        # Ending no transaction sends nothing and costs nothing.
        t0 = time.perf_counter()
        c.rollback()
        c.commit()
        assert (time.perf_counter() - t0) * 1000 < RTT_MS


def test_jitter_only_adds() -> None:
    lat = Latency(rtt_ms=10, jitter_ms=5)
    rng = random.Random(1)
    draws = [lat.round_trip_s(rng) * 1000 for _ in range(20_000)]
    assert min(draws) >= 10.0
    assert abs(sum(draws) / len(draws) - 15.0) < 0.3  # the mean is rtt + jitter
    assert max(draws) > 30.0  # a tail, not a band


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_latency_refuses_nonsense(bad: float) -> None:
    with pytest.raises(ConfigError, match="rtt_ms"):
        Scenario(rtt_ms=bad)
    with pytest.raises(ConfigError, match="commit_ms"):
        Scenario(commit_ms=bad)


@pytest.mark.slow
def test_run_attempts_include_the_latency(target: EmbeddedTarget, tmp_path: Path) -> None:
    scenario = Scenario(accounts=100, users=10, spawn_rate=10, duration_s=2, seed=3, rtt_ms=RTT_MS, commit_ms=5.0)
    result = runner.run(scenario, target, tmp_path)
    df = pq.read_table(result.run_dir / "attempts.parquet").to_pandas()
    committed = df[df["outcome"] == "committed"]
    assert len(committed) > 0
    # Five round trips and the commit's extra: no committed attempt is shorter.
    assert committed["latency_ms"].min() >= 5 * RTT_MS + 5.0
    # A failed attempt made at least BEGIN and one statement.
    assert df["latency_ms"].min() >= 2 * RTT_MS
    doc = json.loads((result.run_dir / "run.json").read_text())
    assert (doc["scenario"]["rtt_ms"], doc["scenario"]["rtt_jitter_ms"], doc["scenario"]["commit_ms"]) == (RTT_MS, 0.0, 5.0)
    assert doc["latency_emulated"] is True


@pytest.mark.slow
def test_cli_rejects_negative_rtt(embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    done = run_cli("run", "--rtt-ms", "-5", "--duration", "1", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--rtt-ms" in done.stderr


def test_commit_time_is_commits_only(embedded: EmbeddedPostgres, conn: psycopg.Connection) -> None:
    # COMMIT's extra time stands for DSQL's commit: a rollback takes none (no spin guard:
    # under cc occ a conflict surfaces at COMMIT, after that time, as on DSQL).
    reset(conn, 10, 100)
    cls = with_latency(GeventConnection, Latency(commit_ms=40.0))
    with cls.connect(embedded.conninfo) as c:
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        t0 = time.perf_counter()
        c.rollback()
        assert (time.perf_counter() - t0) * 1000 < 40.0


def test_first_committer_wins_transfer_keeps_its_round_trips_lengthened(embedded: EmbeddedPostgres, conn: psycopg.Connection) -> None:
    # cc occ's transfer (loadgen.db.occ): BEGIN with its snapshot, debit read, credit read,
    # ledger row, and the writes pipelined with COMMIT: five round trips, each delayed, and COMMIT's extra.
    reset(conn, 10, 100)
    cls = with_latency(GeventConnection, Latency(rtt_ms=RTT_MS, commit_ms=10.0))
    with cls.connect(embedded.conninfo) as c:
        occ_shape("update-returning")(c, TransferRequest.new(1, 2, 1), None)  # prepares its statements first
        t0 = time.perf_counter()
        occ_shape("update-returning")(c, TransferRequest.new(1, 2, 1), None)
        elapsed_ms = (time.perf_counter() - t0) * 1000
    assert 5 * RTT_MS + 10.0 <= elapsed_ms < 6 * RTT_MS + 10.0
