"""loadgen.db.prepared: the talk's transfer as prepared statements over libpq, same effects as transfer_once."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator

import gevent
import psycopg
import pytest
from psycopg import IsolationLevel

from loadgen.db.classify import InsufficientFunds, NoSuchAccount
from loadgen.db.gwait import GeventConnection
from loadgen.db.prepared import STATEMENTS, begin_statement, transfer_prepared
from loadgen.db.schema import reset
from loadgen.db.transfer import CREDIT, DEBIT, LEDGER, AttemptProgress, TransferRequest, new_txn_id, run_transfer
from loadgen.model.retry import RetryPolicy
from loadgen.targets.embedded import EmbeddedPostgres


@pytest.fixture
def gconn(embedded: EmbeddedPostgres, conn: psycopg.Connection) -> Iterator[GeventConnection]:
    reset(conn, 10, 100)
    c = GeventConnection.connect(embedded.conninfo)
    c.isolation_level = IsolationLevel.REPEATABLE_READ
    try:
        yield c
    finally:
        c.close()


def _balances(conn: psycopg.Connection) -> dict[int, int]:
    return dict(conn.execute("SELECT id, balance FROM accounts").fetchall())  # type: ignore[arg-type]


def test_the_statements_are_transfer_onces(gconn: GeventConnection) -> None:
    # Same SQL as the cursor path, in libpq's placeholder style: the comparison with pgbench stays fair.
    def numbered(sql: str) -> bytes:
        n = iter(range(1, 10))
        return re.sub("%s", lambda _: f"${next(n)}", sql).encode()

    assert list(STATEMENTS.values()) == [numbered(DEBIT), numbered(CREDIT), numbered(LEDGER)]
    assert begin_statement(gconn) == b"BEGIN ISOLATION LEVEL REPEATABLE READ"


def test_a_transfer_moves_money_and_writes_the_ledger(gconn: GeventConnection, conn: psycopg.Connection) -> None:
    phase = AttemptProgress()
    req = TransferRequest(new_txn_id(), 1, 2, 7)
    for _ in range(3):  # the first prepares, the others reuse
        transfer_prepared(gconn, TransferRequest(new_txn_id(), 3, 4, 1))
    transfer_prepared(gconn, req, phase)
    assert phase.in_commit
    assert gconn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    b = _balances(conn)
    assert (b[1], b[2], b[3], b[4], sum(b.values())) == (93, 107, 97, 103, 1000)
    row = conn.execute("SELECT payer, payee, amount FROM transfers WHERE id = %s", (req.txn_id,)).fetchone()
    assert row == (1, 2, 7)


def test_refusals_roll_back_and_leave_the_connection_clean(gconn: GeventConnection, conn: psycopg.Connection) -> None:
    with pytest.raises(InsufficientFunds):
        transfer_prepared(gconn, TransferRequest(new_txn_id(), 1, 2, 101))
    assert gconn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with pytest.raises(NoSuchAccount):
        transfer_prepared(gconn, TransferRequest(new_txn_id(), 1, 99, 1))
    with pytest.raises(NoSuchAccount):
        transfer_prepared(gconn, TransferRequest(new_txn_id(), 99, 1, 1))
    assert gconn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert sum(_balances(conn).values()) == 1000 and _balances(conn)[1] == 100
    assert conn.execute("SELECT count(*) FROM transfers").fetchone() == (0,)


def test_a_conflict_is_psycopgs_serialization_failure(gconn: GeventConnection, conn: psycopg.Connection) -> None:
    snap = GeventConnection.connect(conn.info.dsn)
    snap.isolation_level = IsolationLevel.REPEATABLE_READ
    try:
        snap.execute("SELECT balance FROM accounts WHERE id = 3")  # snapshot taken
        transfer_prepared(gconn, TransferRequest(new_txn_id(), 3, 4, 1))
        snap.pgconn.send_query(b"UPDATE accounts SET balance = balance - 1 WHERE id = 3")
        with pytest.raises(psycopg.errors.SerializationFailure) as info:
            snap.exchange()
        assert info.value.sqlstate == "40001"
        snap.rollback()
    finally:
        snap.close()


def test_run_transfer_counts_a_conflict_and_retries(gconn: GeventConnection, conn: psycopg.Connection, embedded: EmbeddedPostgres) -> None:
    # A second session holds a changed row 1 until the first try has failed on its lock timeout.
    gconn.execute("SELECT set_config('lock_timeout', '50ms', false)")
    gconn.commit()
    holder = psycopg.connect(embedded.conninfo)
    holder.execute("UPDATE accounts SET balance = balance WHERE id = 1")
    rows: list[tuple] = []

    def record(row: tuple) -> None:
        rows.append(row)
        holder.rollback()  # let the next try through

    result = run_transfer(
        TransferRequest(new_txn_id(), 1, 2, 1),
        lambda: gconn,
        lambda c: None,
        RetryPolicy(max_attempts=3),
        random.Random(1),
        record,
        transfer_prepared,
    )
    holder.close()
    assert [r[4] for r in rows] == ["lock_timeout", "committed"]
    assert rows[0][5] == "55P03"
    assert (result.outcome, result.attempts) == ("committed", 2)


def test_a_killed_backend_is_a_connection_error(gconn: GeventConnection, conn: psycopg.Connection) -> None:
    transfer_prepared(gconn, TransferRequest(new_txn_id(), 1, 2, 1))
    pid = gconn.info.backend_pid
    gconn.pgconn.send_query(b"SELECT pg_sleep(30)")
    job = gevent.spawn(gconn.exchange)
    gevent.sleep(0.3)
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        job.get(timeout=10)


def test_other_connections_take_the_cursor_path(embedded: EmbeddedPostgres, conn: psycopg.Connection) -> None:
    reset(conn, 10, 100)
    with psycopg.connect(embedded.conninfo) as plain:
        transfer_prepared(plain, TransferRequest(new_txn_id(), 1, 2, 3))
    assert _balances(conn)[2] == 103


def test_transfer_ids_are_unique_version_4_uuids() -> None:
    ids = [new_txn_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids[:100]]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == i for u, i in zip(parsed, ids))
