"""The desk audit's findings, each met the way a user would meet it.

The data plane runs against the embedded PostgreSQL through ``--dialect dsql``, which
behaves like DSQL where it can (no lock waits, DSQL's conflict text, DSQL's refusals);
errors a real cluster sends that PostgreSQL never would (SQLSTATE ``OC000``) are raised
by the real server with ``RAISE ... USING ERRCODE``.
"""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors as pg_errors
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from commandline import run_cli, start_cli, wait_until
from offline_aws import ENDPOINT, NO_AWS_FILES
from roles import login_role

from loadgen.db import schema, shapes
from loadgen.db.classify import classify
from loadgen.db.schema import check_invariants, reset, sessions_left
from loadgen.db.shapes import JointRequest, joint_withdrawal_for_update
from loadgen.db.transfer import LEDGER, TransferRequest, run_transfer
from loadgen.errors import ConfigError
from loadgen.model.retry import RetryPolicy
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.connection import open_connection
from loadgen.targets.dialect import DSQL_CONFLICT_MESSAGE, DsqlDialectTarget, check_statement


@pytest.fixture
def rehearsal(embedded: Any) -> Any:
    target = DsqlDialectTarget(EmbeddedTarget(embedded))
    yield target
    target.audit.cleanup()


def _one_line(proc: Any) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- 7. OC000/OC001 as SQLSTATEs --------------------------------------------------


@pytest.mark.parametrize("code", ["OC000", "OC001"])
def test_an_occ_code_sent_as_the_sqlstate_is_a_retried_conflict(embedded: Any, code: str) -> None:
    """A server error with SQLSTATE OC000/OC001 (raised by a real server) is a conflict, retried."""
    with psycopg.connect(embedded.conninfo, autocommit=True) as c:
        reset(c, 10, 100)
    opened: list[psycopg.Connection[Any]] = []
    fail_first = [True]

    def transaction(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any) -> None:
        if fail_first.pop() if fail_first else False:
            conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'change conflicts with another transaction' USING ERRCODE = '{code}'; END $$")
        conn.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (req.payer,))
        conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (req.payee,))
        conn.execute(LEDGER, (req.txn_id, req.payer, req.payee, req.amount))
        conn.commit()

    def getconn() -> psycopg.Connection[Any]:
        opened.append(psycopg.connect(embedded.conninfo))
        return opened[-1]

    rows: list[tuple] = []
    result = run_transfer(
        TransferRequest.new(1, 2, 1), getconn, lambda c: c.close(), RetryPolicy(), random.Random(1), rows.append, transaction
    )
    assert result.outcome == "committed" and result.attempts == 2
    assert [(r[4], r[5], r[6]) for r in rows] == [("conflict", code, code), ("committed", None, None)]


# -- 1. the left-open count cannot wipe the invariants ----------------------------


def test_sessions_left_is_skipped_on_dsql_and_null_when_refused(embedded: Any, rehearsal: Any) -> None:
    with psycopg.connect(embedded.conninfo, autocommit=True) as plain:
        assert sessions_left(plain, "no-such-application", "postgresql") == 0
        assert sessions_left(plain, "no-such-application", "dsql") is None, "DSQL: not asked at all"
    with open_connection(rehearsal, autocommit=True) as c:
        # A server that refuses pg_stat_activity (the rehearsal refuses it, as DSQL may).
        assert sessions_left(c, "loadgen", "postgresql") is None
        assert c.execute("SELECT 1").fetchone() == (1,), "the connection is still usable afterwards"
    with open_connection(rehearsal) as c:  # not autocommit: the refusal must not leave a broken transaction
        assert sessions_left(c, "loadgen", "postgresql") is None
        reset(c, 4, 10, truncate=False)
        assert all(i.ok for i in check_invariants(c, 4, 10, []))


# -- 2. and 6. set-up batches and paged invariant reads ---------------------------


def test_invariants_are_read_in_key_pages_and_add_up(embedded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(embedded.conninfo, autocommit=True) as c:
        reset(c, 25, 100)
        ids = [str(r[0]) for r in c.execute("SELECT gen_random_uuid() FROM generate_series(1, 23)")]
        for i, txn in enumerate(ids):
            payer, payee = i % 25 + 1, (i + 7) % 25 + 1
            c.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (payer,))
            c.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (payee,))
            c.execute(LEDGER, (txn, payer, payee, 1))
        whole = {i.name: (i.ok, i.detail) for i in check_invariants(c, 25, 100, ids)}
        for page in (1, 7, 10, 25, 26):
            monkeypatch.setattr(schema, "READ_PAGE_ROWS", page)
            paged = {i.name: (i.ok, i.detail) for i in check_invariants(c, 25, 100, ids)}
            assert paged == whole, f"pages of {page}"
        assert all(ok for ok, _ in whole.values()), whole
        c.execute("UPDATE accounts SET balance = balance + 5 WHERE id = 25")  # the last row of the last page
        monkeypatch.setattr(schema, "READ_PAGE_ROWS", 7)
        broken = {i.name: i for i in check_invariants(c, 25, 100, ids[:-1])}
        assert not broken["money_conserved"].ok and "2505" in broken["money_conserved"].detail
        assert not broken["ledger_matches_commits"].ok and "1 in the ledger but not recorded" in broken["ledger_matches_commits"].detail
        # Commits as an Arrow array (what a finishing run passes): one twice, one the ledger never saw.
        odd = {i.name: i for i in check_invariants(c, 25, 100, pa.array([*ids, ids[0], str(uuid.uuid4())]))}
        assert odd["ledger_matches_commits"].detail == "23 ledger rows, 24 recorded commits, 1 recorded but not in the ledger"
        assert not odd["no_duplicate_transfer"].ok and odd["no_duplicate_transfer"].detail == "1 transfer ids committed twice"


def test_joint_minimum_is_read_in_pages_of_whole_customers(embedded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(embedded.conninfo, autocommit=True) as c:
        reset(c, 40, 100)  # customers own accounts 1..20
        c.execute("UPDATE accounts SET balance = 40 WHERE id IN (5, 6, 19)")  # customers 3 and 10 below 200
        whole = schema.customers_below_minimum(c, 40, 200)
        monkeypatch.setattr(schema, "READ_PAGE_ROWS", 4)
        assert schema.customers_below_minimum(c, 40, 200) == whole == (2, 10)


# -- 5. FOR UPDATE by primary key, one row at a time ------------------------------


def test_for_update_needs_a_key_equality() -> None:
    assert check_statement("SELECT id, balance FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE")
    assert check_statement("SELECT balance FROM accounts WHERE id IN (1, 2) FOR UPDATE")
    assert check_statement(shapes.SELECT_FOR_UPDATE.replace("%s", "$1")) == []


def test_joint_withdrawal_for_update_runs_under_the_rehearsal(rehearsal: Any) -> None:
    with open_connection(rehearsal, autocommit=True) as c:
        reset(c, 8, 100, truncate=False)
    with open_connection(rehearsal) as c:
        joint_withdrawal_for_update(c, JointRequest("00000000-0000-4000-8000-000000000001", 4, 6, 1, minimum=100), None)
        assert c.execute("SELECT balance FROM accounts WHERE id IN (4, 6) ORDER BY id").fetchall() == [(99,), (101,)]
        c.rollback()
    audit = rehearsal.audit.check()
    assert audit.ok, audit.violations


# -- the rehearsal behaves like DSQL --------------------------------------------


def test_rehearsal_conflicts_without_waiting_and_says_oc000(rehearsal: Any) -> None:
    with open_connection(rehearsal, autocommit=True) as c:
        reset(c, 4, 100, truncate=False)
    with open_connection(rehearsal) as first, open_connection(rehearsal) as second:
        first.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        with pytest.raises(pg_errors.SerializationFailure) as caught:
            second.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1")  # no lock wait
        assert str(caught.value) == DSQL_CONFLICT_MESSAGE
        c = classify(caught.value)
        assert (c.outcome, c.sqlstate, c.oc_code) == ("conflict", "40001", "OC000")
        first.commit()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT set_config('lock_timeout', '1ms', false)",
        "SET lock_timeout = '1ms'",
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "SELECT count(*) FROM pg_stat_activity",
        "TRUNCATE transfers",
        "LOCK TABLE accounts IN ACCESS SHARE MODE",
        "SET statement_timeout = 0",
    ],
)
def test_rehearsal_refuses_what_dsql_refuses(rehearsal: Any, sql: str) -> None:
    with open_connection(rehearsal, autocommit=True) as c:
        with pytest.raises(pg_errors.FeatureNotSupported, match="DSQL refuses"):
            c.execute(sql)
        c.execute("SET application_name = 'loadgen-test'")  # an allowed setting
    assert rehearsal.audit.check().ok, "nothing refused reached the server"


# -- 3. every cell checked against the target before any work ---------------------


@pytest.mark.slow
def test_lost_update_cells_are_refused_on_dsql_before_any_work(tmp_path: Path) -> None:
    line = _one_line(run_cli("run", "lost-update", "--dialect", "dsql", "--out", str(tmp_path)))
    assert "cell isolation=read-committed" in line and "DSQL has one isolation level" in line
    assert not any(tmp_path.iterdir()), "no run directory: refused before any work"


@pytest.mark.slow
def test_a_scenario_files_lock_timeout_is_refused_on_dsql(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('users = 2\nduration = "1s"\ncc = "locking"\n[postgres]\nlock_timeout_ms = [0, 1]\n')
    line = _one_line(run_cli("run", str(scenario), "--dialect", "dsql", "--out", str(tmp_path / "out")))
    assert "lock_timeout_ms" in line and "DSQL" in line


@pytest.mark.slow
def test_a_scenario_file_names_a_dsql_endpoint(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'users = 2\n[target]\nkind = "dsql"\nendpoint = "{ENDPOINT}"\nregion = "eu-west-1"\n')
    line = _one_line(run_cli("run", str(scenario), "--out", str(tmp_path / "out")))
    assert "disagrees with the endpoint's Region us-east-1" in line, "the file's endpoint and region reached the target"
    scenario.write_text(f'users = 2\n[target]\nkind = "postgres"\nendpoint = "{ENDPOINT}"\n')
    assert "--endpoint is only for --target dsql" in _one_line(run_cli("run", str(scenario), "--out", str(tmp_path / "out")))


@pytest.mark.slow
def test_ephemeral_checks_every_cell_before_creating_a_cluster(tmp_path: Path) -> None:
    line = _one_line(run_cli("run", "lost-update", "--target", "dsql", "--ephemeral", "--region", "us-east-1", "--out", str(tmp_path)))
    assert "DSQL has one isolation level" in line


@pytest.mark.slow
def test_a_whole_rehearsed_run_records_left_open_as_not_counted(tmp_path: Path) -> None:
    proc = run_cli("run", "--dialect", "dsql", "--accounts", "30", "--users", "4", "--duration", "1", "--out", str(tmp_path), "-q")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    run = json.loads(next(tmp_path.iterdir()).joinpath("run.json").read_text())
    assert run["connections"]["left_open"] is None and run["invariants_hold"]
    assert "left open after the run not counted" in proc.stdout


# -- 9. and 10. failure paths of a whole run, rehearsed on a real server ------------


@pytest.mark.slow
def test_more_users_than_the_connection_limit_are_refused_before_the_run(embedded: Any, tmp_path: Path) -> None:
    """The target cannot hold the users asked: the warm-up says so in one line, naming the limit (issue 13, item 7)."""
    dsn = login_role(embedded, "lg_capped", "CONNECTION LIMIT 4")
    proc = run_cli(
        "run", "--target", "postgres", "--dsn", dsn, "--dialect", "dsql", "--users", "7", "--accounts", "50",
        "--duration", "2", "--out", str(tmp_path), "-q",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr + proc.stdout
    line = _one_line(proc)
    assert "of the 7 connections" in line and "too many connections for role" in line


def _sessions(c: psycopg.Connection, role: str) -> int:
    """The loadgen sessions ``role`` holds on the server now."""
    row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND application_name LIKE 'loadgen/%%'", (role,)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_a_connection_limit_met_mid_run_is_recorded_per_attempt_and_retried(embedded: Any, tmp_path: Path) -> None:
    """A connection lost mid-run whose reopening the limit refuses: the refused attempts record 53300
    (PostgreSQL's own text, recovered), back off and retry; the run completes with nothing lost."""
    # 4 users and the session holding the schema's advisory lock (loadgen.targets.base.PostgresTarget).
    dsn = login_role(embedded, "lg_capped", "CONNECTION LIMIT 5")
    proc = start_cli(
        "run", "--target", "postgres", "--dsn", dsn, "--dialect", "dsql",
        "--users", "4", "--accounts", "50", "--duration", "4", "--deadline", "3s", "--out", str(tmp_path), "-q",
    )  # fmt: skip
    try:
        with psycopg.connect(embedded.conninfo, autocommit=True) as c:
            wait_until(lambda: _sessions(c, "lg_capped") == 4, proc, "the users' four connections", timeout=60, every=0.05)
            c.execute("ALTER ROLE lg_capped CONNECTION LIMIT 4")  # now one connection too many
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'lg_capped' AND application_name LIKE 'loadgen/%' LIMIT 1"
            )
            time.sleep(1.0)
            c.execute("ALTER ROLE lg_capped CONNECTION LIMIT 5")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err + out
    run_dir = next(tmp_path.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    attempts = pq.read_table(run_dir / "attempts.parquet").to_pandas()
    refused = attempts[attempts["sqlstate"] == "53300"]
    assert len(refused) > 0 and set(refused["outcome"]) == {"connection_error"}
    assert (refused["backoff_ms"] > 0).any(), "refusals are retried after a pause"
    assert run["summary"]["commits"] > 0 and run["invariants_hold"]
    assert run["connections"]["connect_errors"] >= len(refused) and run["connections"]["peak_open"] <= 4


@pytest.mark.slow
def test_credentials_refused_mid_run_end_it_in_one_line_with_results_written(embedded: Any, tmp_path: Path) -> None:
    """The role loses its login mid-run (as expired credentials would); loadgen's connections are
    cut, and the reconnects are refused: one line says so, the attempts so far are written."""
    dsn = login_role(embedded, "lg_expiring")
    proc = start_cli(
        "run", "--target", "postgres", "--dsn", dsn, "--dialect", "dsql",
        "--users", "4", "--accounts", "50", "--duration", "60", "--out", str(tmp_path), "-q",
    )  # fmt: skip
    try:
        with psycopg.connect(embedded.conninfo, autocommit=True) as c:
            wait_until(lambda: _sessions(c, "lg_expiring") == 4, proc, "the users' four connections", timeout=60, every=0.1)
            time.sleep(0.5)
            c.execute("ALTER ROLE lg_expiring NOLOGIN")
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'lg_expiring'")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "refused loadgen's credentials" in lines[0] and "28000" in lines[0] and "expired" in lines[0]
    run_dir = next(tmp_path.iterdir())
    run = json.loads((run_dir / "run.json").read_text())
    assert run["aborted"] and "28000" in run["aborted"]
    attempts = pq.read_table(run_dir / "attempts.parquet").to_pandas()
    assert (attempts["outcome"] == "committed").sum() > 0 and (attempts["sqlstate"] == "28000").any()


NO_AWS = {**NO_AWS_FILES, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}


@pytest.mark.slow
def test_missing_credentials_fail_in_one_line_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    line = _one_line(run_cli("run", "--target", "dsql", "--endpoint", ENDPOINT, "--out", str(tmp_path), env=NO_AWS, timeout=60))
    assert "cannot sign a DSQL auth token: NoCredentialsError" in line


@pytest.mark.slow
def test_the_connection_quota_is_an_option(tmp_path: Path) -> None:
    line = _one_line(
        run_cli("run", "--target", "dsql", "--endpoint", ENDPOINT, "--users", "20", "--max-connections", "10", "--out", str(tmp_path))
    )
    assert "the cluster allows 10" in line
    line = _one_line(run_cli("run", "--max-connections", "10", "--out", str(tmp_path)))
    assert "--max-connections is only for --target dsql" in line


def test_a_bare_cluster_id_takes_the_region_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadgen.targets.dsql import make_dsql_target

    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")  # what boto3 reads (not AWS_REGION)
    target = make_dsql_target("abcdefghijklmnopqrstuvwxyz")
    assert (target.endpoint, target.region) == ("abcdefghijklmnopqrstuvwxyz.dsql.eu-west-2.on.aws", "eu-west-2")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="needs a Region"):
        make_dsql_target("abcdefghijklmnopqrstuvwxyz")


@pytest.mark.slow
def test_the_write_skew_scenario_runs_whole_under_the_rehearsal(tmp_path: Path) -> None:
    """A whole scenario file through --dialect dsql: both cells run the DSQL path with no rule broken;
    FOR UPDATE (one key at a time) keeps the joint minimum, its collisions reported as DSQL's OC000."""
    proc = run_cli("run", "write-skew", "--dialect", "dsql", "--duration", "2", "--out", str(tmp_path), "-q")
    assert proc.returncode in (0, 1), proc.stderr  # 1: the plain cell showed write skew, as it may
    (sweep,) = tmp_path.iterdir()
    assert json.loads((sweep / "dialect-check.json").read_text())["violations"] == []
    locked = sweep / "02_shape-joint-withdrawal-for-update"
    run = json.loads((locked / "run.json").read_text())
    assert {i["name"]: i["ok"] for i in run["invariants"]}["joint_minimum_kept"] is True
    attempts = pq.read_table(locked / "attempts.parquet").to_pandas()
    conflicts = attempts[attempts["outcome"] == "conflict"]
    assert len(conflicts) > 0 and set(conflicts["sqlstate"]) == {"40001"} and set(conflicts["oc_code"]) == {"OC000"}


# -- the rehearsal against cases recorded on a live cluster (issue 22, point 6) ---


def test_rehearsal_accepts_what_dsql_accepts(rehearsal: Any) -> None:
    """DSQL accepts BEGIN ISOLATION LEVEL REPEATABLE READ (its own level) and foreign keys."""
    table = f"child_{uuid.uuid4().hex[:8]}"
    with open_connection(rehearsal, autocommit=True) as c:
        reset(c, 4, 100, truncate=False)
        c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert c.execute("SELECT balance FROM accounts WHERE id = 1").fetchone() == (100,)
        c.execute("COMMIT")
        c.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, account bigint REFERENCES accounts (id))")
        c.execute(f"DROP TABLE {table}")
        for level in ("SERIALIZABLE", "READ COMMITTED"):
            with pytest.raises(pg_errors.FeatureNotSupported, match="DSQL refuses"):
                c.execute(f"BEGIN ISOLATION LEVEL {level}")
    audit = rehearsal.audit.check()
    assert audit.ok, audit.violations


@pytest.mark.parametrize("lock", ["FOR SHARE", "FOR NO KEY UPDATE"])
def test_rehearsal_refuses_the_locking_reads_dsql_refuses(rehearsal: Any, lock: str) -> None:
    with open_connection(rehearsal, autocommit=True) as c:
        reset(c, 4, 100, truncate=False)
        with pytest.raises(pg_errors.FeatureNotSupported, match="FOR SHARE or FOR NO KEY UPDATE"):
            c.execute(f"SELECT balance FROM accounts WHERE id = 1 {lock}")
        # FOR UPDATE and FOR KEY SHARE by key are DSQL's locking reads: let through.
        for allowed in ("FOR UPDATE", "FOR KEY SHARE"):
            c.execute("BEGIN")
            assert c.execute(f"SELECT balance FROM accounts WHERE id = 1 {allowed}").fetchone() == (100,)
            c.execute("COMMIT")


@pytest.mark.parametrize("autocommit", [False, True])
def test_a_refused_statement_aborts_the_transaction_as_on_dsql(rehearsal: Any, autocommit: bool) -> None:
    """Later statements get 25P02 and COMMIT answers ROLLBACK: the write before the refusal is lost."""
    with open_connection(rehearsal, autocommit=True) as c:
        reset(c, 4, 100, truncate=False)
    with open_connection(rehearsal, autocommit=autocommit) as c:
        if autocommit:
            c.execute("BEGIN")
        c.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        with pytest.raises(pg_errors.FeatureNotSupported):
            c.execute("SAVEPOINT before_the_rest")
        with pytest.raises(pg_errors.InFailedSqlTransaction):
            c.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 2")
        cur = c.execute("COMMIT") if autocommit else None
        if cur is not None:
            assert cur.statusmessage == "ROLLBACK"
        else:
            c.commit()  # psycopg sends COMMIT; the server answers ROLLBACK
        assert c.execute("SELECT balance FROM accounts WHERE id = 1").fetchone() == (100,), "nothing of it committed"
        c.rollback()
    # Outside a transaction, a refusal costs nothing more.
    with open_connection(rehearsal, autocommit=True) as c:
        with pytest.raises(pg_errors.FeatureNotSupported):
            c.execute("TRUNCATE transfers")
        assert c.execute("SELECT 1").fetchone() == (1,)
    audit = rehearsal.audit.check()
    assert audit.ok, audit.violations  # the stand-in the server failed is not a statement the run sent


def test_rehearsal_conflict_reads_as_dsqls_current_text() -> None:
    assert DSQL_CONFLICT_MESSAGE == "mutation conflicts with another transaction, retry as needed (OC000)"
    c = classify(pg_errors.SerializationFailure(DSQL_CONFLICT_MESSAGE))
    assert (c.outcome, c.sqlstate, c.oc_code) == ("conflict", "40001", "OC000")
