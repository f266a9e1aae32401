"""``--dialect dsql``: the rules checker bites, and loadgen's whole DSQL path passes it on real PostgreSQL."""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from commandline import run_cli

from loadgen.db.schema import BATCH_ROWS, reset
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.connection import open_connection
from loadgen.targets.dialect import DsqlDialectTarget, check_statement, check_trace

# A hand-written trace in libpq's format (tabs between fields), one transaction per block.
BAD_TRACE = "\n".join(
    [
        'F\t10\tQuery\t "BEGIN ISOLATION LEVEL SERIALIZABLE"',
        "B\t5\tReadyForQuery\t T",
        'F\t40\tQuery\t "CREATE TABLE a (id int)"',
        'B\t17\tCommandComplete\t "CREATE TABLE"',
        'F\t40\tQuery\t "INSERT INTO a SELECT generate_series(1, 3001)"',
        'B\t17\tCommandComplete\t "INSERT 0 3001"',
        'F\t11\tQuery\t "COMMIT"',
        "B\t5\tReadyForQuery\t I",
        'F\t40\tParse\t "_pg3_0" "CREATE TABLE b (id int REFERENCES a (id))" 0',
        'F\t22\tBind\t "" "_pg3_0" 0 0 1 0',
        "F\t4\tSync",
        'B\t17\tCommandComplete\t "CREATE TABLE"',
        "B\t5\tReadyForQuery\t I",
        'F\t20\tQuery\t "TRUNCATE a; SAVEPOINT s1"',
        "B\t5\tReadyForQuery\t I",
    ]
)


def test_checker_finds_every_kind_of_rule_breaking() -> None:
    report = check_trace(BAD_TRACE, "conn-x")
    rules = sorted(v.rule for v in report.violations)
    assert any("isolation" in r for r in rules)
    assert any("DDL never mixed" in r for r in rules)
    assert any("3000 rows" in r and "3001 written" in r for r in rules)
    assert not any("foreign" in r for r in rules), "DSQL accepts foreign keys"
    assert "no TRUNCATE" in rules and "no SAVEPOINT" in rules
    assert report.transactions == 3


def test_two_ddl_in_one_transaction_are_one_too_many() -> None:
    trace = "\n".join(
        [
            'F\t1\tQuery\t "BEGIN"',
            'F\t1\tQuery\t "CREATE TABLE a (id int)"',
            'F\t1\tQuery\t "CREATE INDEX ON a (id)"',
            'F\t1\tQuery\t "COMMIT"',
            "B\t5\tReadyForQuery\t I",
        ]
    )
    assert [v.rule for v in check_trace(trace).violations] == ["one DDL statement per transaction"]


@pytest.mark.parametrize(
    "sql",
    [
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "START TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "CREATE TEMP TABLE t (a int)",
        "CREATE EXTENSION pgcrypto",
        "ROLLBACK TO SAVEPOINT s",
        "SELECT a FROM t WHERE id = 1 FOR SHARE",
        "SELECT a FROM t WHERE id = 1 FOR NO KEY UPDATE",
    ],
)
def test_statement_rules(sql: str) -> None:
    assert check_statement(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN",
        "BEGIN ISOLATION LEVEL REPEATABLE READ",  # DSQL's own level, accepted (recorded on a live cluster)
        "ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES u (a)",  # accepted too
        "SELECT a FROM t WHERE id = 1 FOR KEY SHARE",
        "COMMIT",
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING balance",
    ],
)
def test_statements_dsql_accepts_pass(sql: str) -> None:
    assert check_statement(sql) == []


def test_set_up_on_the_dsql_path_keeps_the_rules_and_postgres_path_does_not(embedded: Any) -> None:
    # 7,001 accounts: eight seeding batches, the last of one row.
    target = DsqlDialectTarget(EmbeddedTarget(embedded))
    try:
        with open_connection(target, autocommit=True) as c:
            assert c.execute("SHOW transaction_isolation").fetchone() == ("repeatable read",)
            reset(c, 7001, 100, truncate=False)
            reset(c, 7001, 100, truncate=False)  # and once more over existing rows
            assert c.execute("SELECT count(*), sum(balance) FROM accounts").fetchone() == (7001, 700100)
        clean = target.audit.check()
        assert clean.ok, clean.violations
        assert clean.transactions >= 2 + 1 + 8  # two DDL, ledger delete, eight batches
        assert clean.max_rows_written <= BATCH_ROWS == 1000, "set-up batches stay at 1,000 rows, well below DSQL's 3,000"
        # The PostgreSQL path (TRUNCATE) is refused before it is sent, as DSQL would refuse it.
        with open_connection(target, autocommit=True) as c:
            with pytest.raises(psycopg.errors.FeatureNotSupported, match="no TRUNCATE"):
                reset(c, 10, 100, truncate=True)
        assert target.audit.check().ok, "a refused statement never reaches the server"
    finally:
        target.audit.cleanup()


def test_set_up_retries_a_conflict(embedded: Any) -> None:
    """A set-up statement that meets a concurrent update gets 40001 (as DSQL's OC000/OC001) and is tried again:
    here the reset's DROP of the accounts (the DSQL path drops and remakes the tables) meets the row lock."""
    import threading

    target = DsqlDialectTarget(EmbeddedTarget(embedded))
    try:
        with open_connection(target, autocommit=True) as c:
            reset(c, 10, 100, truncate=False)
        holder = psycopg.connect(embedded.conninfo)
        holder.execute("UPDATE accounts SET balance = 7 WHERE id = 3")  # row lock held, uncommitted
        done = threading.Event()

        def release() -> None:
            import time

            time.sleep(0.5)
            holder.commit()  # the waiting repeatable-read upsert now fails with 40001
            done.set()

        threading.Thread(target=release).start()
        with open_connection(target, autocommit=True) as c:
            reset(c, 10, 100, truncate=False)
            assert c.execute("SELECT balance FROM accounts WHERE id = 3").fetchone() == (100,)
        done.wait(5)
        holder.close()
        assert target.audit.check().ok
        traffic = "".join(p.read_text() for p in target.audit.directory.glob("*.trace"))
        assert '"55P03"' in traffic, "the DROP met the conflict (no lock waits: lock not granted, reported as 40001 OC000)"
        assert traffic.count('"DROP TABLE IF EXISTS accounts"') >= 3, "first reset, then the conflicted DROP and its retry"
    finally:
        target.audit.cleanup()


@pytest.mark.slow
def test_whole_run_in_dsql_dialect_breaks_no_rule(tmp_path: Path) -> None:
    result = run_cli(
        "run", "--dialect", "dsql", "--accounts", "3500", "--users", "8", "--duration", "2",
        "--out", str(tmp_path), "-q", "--seed", "7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    run_dir = next(tmp_path.iterdir())
    check = json.loads((run_dir / "dialect-check.json").read_text())
    assert check["violations"] == []
    assert check["transactions"] > 50 and check["connections"] >= 8
    run = json.loads((run_dir / "run.json").read_text())
    assert run["target"]["dialect"] == "dsql" and run["invariants_hold"]
    assert "0 breaking DSQL's rules" in result.stdout
