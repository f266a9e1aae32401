"""Concurrency-control modes: cc occ (first committer wins, tests/db/test_fcw.py), cc nowait (the later writer fails at once), cc locking (waits)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import psycopg.errors as pg_errors
import pyarrow.parquet as pq
import pytest
from commandline import run_cli

from loadgen.db.cc import session_settings, with_session_settings
from loadgen.db.classify import classify
from loadgen.db.schema import reset
from loadgen.engine import runner
from loadgen.errors import ConfigError
from loadgen.model.scenario import Scenario
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres

UPDATE = "UPDATE accounts SET balance = balance - 1 WHERE id = %s"


def _session(embedded: EmbeddedPostgres, scenario: Scenario) -> psycopg.Connection:
    settings = session_settings(scenario, sets_isolation=True, takes_row_locks=True)
    return psycopg.connect(with_session_settings(embedded.conninfo, settings))


def test_sessions_start_with_snapshot_isolation_and_their_lock_timeout(embedded: EmbeddedPostgres) -> None:
    with _session(embedded, Scenario(cc="nowait")) as nowait, _session(embedded, Scenario(cc="locking")) as locking:
        assert nowait.execute("SHOW transaction_isolation").fetchone() == ("repeatable read",)
        assert nowait.execute("SHOW lock_timeout").fetchone() == ("1ms",)
        assert locking.execute("SHOW transaction_isolation").fetchone() == ("repeatable read",)
        assert locking.execute("SHOW lock_timeout").fetchone() == ("0",)
    with _session(embedded, Scenario()) as occ:  # first committer wins: only COMMIT can meet a held row, briefly
        assert occ.execute("SHOW lock_timeout").fetchone() == ("50ms",)


def test_nowait_second_writer_fails_at_once_and_locking_waits(embedded: EmbeddedPostgres, conn: psycopg.Connection) -> None:
    reset(conn, 10, 100)
    with psycopg.connect(embedded.conninfo) as holder:
        holder.execute(UPDATE, (1,))  # holds row 1's lock until the end of the test
        with _session(embedded, Scenario(cc="nowait")) as nowait:
            with pytest.raises(pg_errors.LockNotAvailable) as err:
                nowait.execute(UPDATE, (1,))
            # nowait mode's immediate failure is a contention outcome, as DSQL's 40001 is.
            assert classify(err.value).outcome == "lock_timeout"
            assert err.value.sqlstate == "55P03"
        with _session(embedded, Scenario(cc="locking")) as locking:
            locking.execute("SET statement_timeout = '300ms'")
            with pytest.raises(pg_errors.QueryCanceled):  # it queued on the lock until cancelled
                locking.execute(UPDATE, (1,))
        holder.rollback()


def test_nowait_cannot_deadlock(embedded: EmbeddedPostgres, conn: psycopg.Connection) -> None:
    # The classic deadlock: A holds 1 and wants 2, B holds 2 and wants 1. In nowait the
    # first to want a held row fails at once, so the cycle never closes.
    reset(conn, 10, 100)
    with _session(embedded, Scenario(cc="nowait")) as a, _session(embedded, Scenario(cc="nowait")) as b:
        a.execute(UPDATE, (1,))
        b.execute(UPDATE, (2,))
        with pytest.raises(pg_errors.LockNotAvailable):
            a.execute(UPDATE, (2,))
        a.rollback()
        b.execute(UPDATE, (1,))  # A's lock is gone: B goes on and commits
        b.commit()


def test_lock_timeout_is_for_locking_mode() -> None:
    with pytest.raises(ConfigError, match="lock_timeout_ms is for cc = locking"):
        Scenario(lock_timeout_ms=5)
    assert Scenario(cc="locking", lock_timeout_ms=5).lock_timeout_ms == 5
    assert Scenario(cc="locking", lock_timeout_ms=0).lock_timeout_ms == 0  # 0: wait, PostgreSQL's default
    with pytest.raises(ConfigError, match="lock_timeout_ms is for cc = locking"):
        Scenario(cc="nowait", lock_timeout_ms=5)
    with pytest.raises(ConfigError, match="occ, nowait, locking"):
        Scenario(cc="optimistic")


@pytest.mark.slow
def test_hot_run_in_nowait_mode_has_no_deadlock_and_no_lock_wait(target: EmbeddedTarget, tmp_path: Path) -> None:
    result = runner.run(Scenario(accounts=10, users=50, spawn_rate=50, duration_s=3, seed=1, cc="nowait"), target, tmp_path)
    df = pq.read_table(result.run_dir / "attempts.parquet").to_pandas()
    doc = json.loads((result.run_dir / "run.json").read_text())
    assert doc["cc"]["mode"] == "nowait" and doc["scenario"]["cc"] == "nowait" and "fails at its statement" in doc["cc"]["how"]
    assert "deadlock" not in set(df["outcome"])
    assert doc["lock_waits"] == {"longer_than_ms": 10, "count": 0, "source": "server log"}
    # Hot data: writers did collide, and failed at once, at a statement, rather than waited.
    timeouts = df[df["outcome"] == "lock_timeout"]
    assert len(timeouts) > 0 and set(timeouts["failed_at"]) <= {"debit", "credit", "ledger"}
    # Row locks are taken at debit and credit. The ledger INSERT takes no row lock another
    # transfer holds; with 50 writers appending it most likely waited on the table's extension
    # lock, and at a 1 ms lock_timeout that wait too ends in 55P03 (seen once in 11,494).
    assert timeouts["failed_at"].isin(["debit", "credit"]).mean() >= 0.99
    assert result.invariants_hold


@pytest.mark.slow
def test_locking_mode_waits_on_row_locks(target: EmbeddedTarget, tmp_path: Path) -> None:
    # The same hot run with PostgreSQL's waits: the server logs them (the check above can fail).
    result = runner.run(Scenario(accounts=10, users=50, spawn_rate=50, duration_s=3, seed=1, cc="locking"), target, tmp_path)
    doc = json.loads((result.run_dir / "run.json").read_text())
    assert doc["cc"]["mode"] == "locking"
    assert doc["lock_waits"]["count"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cc", "optimistic"], "occ, nowait, locking"),
        (["--lock-timeout-ms", "1"], "lock_timeout_ms is for cc = locking"),
        (["--isolation", "read-committed"], "cc = occ reads at a snapshot"),
        (["--cc", "locking", "--lock-timeout-ms", "-1"], "at least 0"),
    ],
)
def test_cli_refuses_bad_cc(embedded: EmbeddedPostgres, tmp_path: Path, args: list[str], needle: str) -> None:
    done = run_cli("run", *args, "--duration", "1", "--out", str(tmp_path), timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and needle in done.stderr
