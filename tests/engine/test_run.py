"""Real runs against the embedded PostgreSQL: conflicts, retries, records and invariants."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gevent
import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest

import loadgen.cli.main as cli
from loadgen.db.transfer import CREDIT, transfer_once
from loadgen.engine import runner
from loadgen.engine.users import Bench
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import ATTEMPT_SCHEMA
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres


def _attempts(result: runner.RunResult) -> pd.DataFrame:
    return pq.read_table(result.run_dir / "attempts.parquet").to_pandas()


@pytest.mark.slow
def test_hot_run_records_conflicts_and_retries(target: EmbeddedTarget, tmp_path: Path) -> None:
    scenario = Scenario(accounts=10, users=50, spawn_rate=50, duration_s=4, seed=1)
    result = runner.run(scenario, target, tmp_path)
    df = _attempts(result)

    # Every attempt is in the file, exactly as Locust counted it.
    assert len(df) == result.locust_counts["attempts"] > 0
    assert df["txn_id"].nunique() == result.locust_counts["transactions"]
    assert pq.read_schema(result.run_dir / "attempts.parquet").equals(ATTEMPT_SCHEMA, check_metadata=False)

    # Real contention: more attempts than commits, retried transactions, 40001s.
    commits = df["outcome"].isin(["committed", "ambiguous_committed"]).sum()
    assert len(df) > commits > 0
    assert (df["attempt"] >= 2).any()
    conflicts = df[df["outcome"] == "conflict"]
    assert len(conflicts) > 0 and set(conflicts["sqlstate"]) == {"40001"}
    assert set(df.loc[df["outcome"] == "deadlock", "sqlstate"]) <= {"40P01"}
    assert df.loc[df["outcome"] == "committed", "sqlstate"].isna().all()

    # Attempt numbers run 1..k without gaps within each transaction, and only the last may commit.
    for _, g in df.groupby("txn_id"):
        assert list(g["attempt"].sort_values()) == list(range(1, len(g) + 1))
        ordered = g.sort_values("attempt")
        assert not ordered["outcome"].iloc[:-1].isin(["committed", "insufficient_funds", "error"]).any()
    assert (df["payer"] != df["payee"]).all()
    assert df["payer"].between(1, 10).all() and df["payee"].between(1, 10).all()
    assert (df["latency_ms"] > 0).all()

    assert result.invariants_hold, result.invariants
    doc = json.loads((result.run_dir / "run.json").read_text())
    assert doc["completed"] is True and doc["invariants_hold"] is True
    assert doc["summary"]["attempts"] == len(df)
    assert doc["summary"]["commits"] == commits
    # The one conflict rate: every contention failure (40001, 55P03, 40P01) over all attempts.
    contention = df["outcome"].isin(["conflict", "lock_timeout", "deadlock"]).sum()
    assert contention >= len(conflicts)
    assert doc["summary"]["conflict_rate"] == pytest.approx(contention / len(df))
    assert doc["scenario"]["accounts"] == 10 and doc["target"]["kind"] == "embedded"
    assert doc["versions"]["server"].startswith("PostgreSQL 18")


@pytest.mark.slow
def test_insufficient_funds_is_recorded_and_not_retried(target: EmbeddedTarget, tmp_path: Path) -> None:
    scenario = Scenario(accounts=5, users=4, spawn_rate=10, duration_s=1.5, initial_balance=0)
    result = runner.run(scenario, target, tmp_path)
    df = _attempts(result)
    assert len(df) > 0
    # In cc occ a debit that meets another's row lock fails at once (and is retried);
    # every transaction ends in insufficient funds, on which nothing is retried.
    assert set(df["outcome"]) <= {"insufficient_funds", "lock_timeout"}
    last = df.sort_values("attempt").groupby("txn_id").tail(1)
    assert (last["outcome"] == "insufficient_funds").all()
    assert (df.loc[df["outcome"] == "insufficient_funds"].groupby("txn_id").size() == 1).all()
    assert result.summary["commits"] == 0
    assert result.invariants_hold
    with psycopg.connect(target.conninfo()) as c:
        left = c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'loadgen/%'").fetchone()
    assert left == (0,), "the run left connections open"


def _rigged_transfer(conn: psycopg.Connection[Any], req: Any, phase: Any) -> None:
    """Credits the payee twice: money is created, which the invariants must catch."""
    conn.execute(CREDIT, (req.amount, req.payee))
    transfer_once(conn, req, phase)


@pytest.mark.slow
def test_broken_invariant_exits_1(
    embedded: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(Bench, "transaction", staticmethod(_rigged_transfer))
    # cc nowait: Bench's own transaction runs (cc occ takes the shape's first-committer-wins form).
    code = cli.main(["run", "--accounts", "100", "--users", "4", "--duration", "1.5", "--cc", "nowait", "--out", str(tmp_path), "-q"])
    out = capsys.readouterr().out
    assert code == 1
    assert "money_conserved VIOLATED" in out


@pytest.mark.slow
def test_killed_backends_are_connection_errors_and_retried(target: EmbeddedTarget, embedded: EmbeddedPostgres, tmp_path: Path) -> None:
    scenario = Scenario(accounts=1000, users=10, spawn_rate=100, duration_s=4)
    killed: list[int] = []

    def killer() -> None:
        gevent.sleep(1.0)
        with psycopg.connect(embedded.conninfo, autocommit=True) as c:
            for _ in range(3):
                rows = c.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name LIKE 'loadgen/%%' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    " AND state <> 'idle'"
                ).fetchall()
                killed.append(sum(1 for r in rows if r[0]))
                gevent.sleep(0.7)

    g = gevent.spawn(killer)
    result = runner.run(scenario, target, tmp_path)
    g.join()
    df = _attempts(result)
    assert sum(killed) > 0
    errors = df[df["outcome"] == "connection_error"]
    assert len(errors) > 0
    # Each broken attempt was followed by another try of the same transfer, which went through.
    retried = df[df["txn_id"].isin(errors["txn_id"])]
    assert retried["outcome"].isin(["committed", "ambiguous_committed"]).groupby(retried["txn_id"]).any().all()
    assert result.invariants_hold, result.invariants


def test_users_wait_concurrently_under_gevent(target: EmbeddedTarget, tmp_path: Path) -> None:
    """psycopg cooperates with gevent: 40 users each in pg_sleep(0.5) finish together."""
    users = 40
    scenario = Scenario(accounts=100, users=users, spawn_rate=users)
    target.prepare(users)
    bench = Bench(scenario, target, recorder=None)  # type: ignore[arg-type]
    try:
        # Open the connections first, so the timing below is about waiting, not connecting.
        slots = [bench.connections.for_user() for _ in range(users)]
        for slot in slots:
            slot.putconn(slot.getconn())

        def sleeper(slot: Any) -> None:
            c = slot.getconn()
            c.execute("SELECT pg_sleep(0.5)")
            c.rollback()
            slot.putconn(c)

        t0 = time.perf_counter()
        gevent.joinall([gevent.spawn(sleeper, slot) for slot in slots], raise_error=True)
        elapsed = time.perf_counter() - t0
    finally:
        bench.close()
    assert elapsed < 1.5, f"{users} concurrent pg_sleep(0.5) took {elapsed:.2f} s: waits were serialized"


@pytest.mark.slow
def test_lock_timeout_stops_waiting(target: EmbeddedTarget, tmp_path: Path) -> None:
    scenario = Scenario(accounts=4, users=20, spawn_rate=20, duration_s=2, cc="locking", lock_timeout_ms=1)
    result = runner.run(scenario, target, tmp_path)
    df = _attempts(result)
    timeouts = df[df["outcome"] == "lock_timeout"]
    assert len(timeouts) > 0 and set(timeouts["sqlstate"]) == {"55P03"}
    assert (df["outcome"] == "deadlock").sum() == 0  # nobody waits, so nobody deadlocks
    assert result.invariants_hold


@pytest.mark.slow
def test_timed_stop_lets_every_transaction_finish(target: EmbeddedTarget, tmp_path: Path) -> None:
    """Many users, a CPU-bound client: the end of the run still cuts no transaction off.

    Regression: Locust kills a user it finds "waiting" between tasks at once, and with
    no wait time the kill landed inside the next transaction (outcome "interrupted").
    """
    users = 300
    scenario = Scenario(accounts=1000, users=users, spawn_rate=users, duration_s=3)
    result = runner.run(scenario, target, tmp_path)
    assert "interrupted" not in result.summary["outcomes"], result.summary["outcomes"]
    assert result.connections["opened"] == users  # one connection per user: all really in flight
    assert result.connections["returned_broken"] == 0
    assert result.invariants_hold
