"""The talk's transfer over libpq directly: named prepared statements, one gevent wait per round trip.

The same statements and round trips as ``loadgen.db.transfer.transfer_once`` (BEGIN,
debit ... RETURNING, credit, ledger row, COMMIT; ROLLBACK when the payer would go
negative), as ``pgbench -M prepared`` sends them. What it leaves out is psycopg's
Python layer per statement (cursor, query conversion, adapters, the prepared-statement
cache, the generator that drives the wait): measured over TCP, that layer was about
half of the client's CPU per transfer (benchmarks/psycopg_floor.py, BENCHMARKS.md).

Parameters go as text, the one result read is the debit's new balance. The statements
are prepared once per connection, on its first transfer. A connection that is not a
``GeventConnection`` (a target's own class, or no gevent) takes ``transfer_once``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import IsolationLevel

from loadgen.db.classify import InsufficientFunds, NoSuchAccount
from loadgen.db.gevent_connection import GeventConnection
from loadgen.db.transfer import TransferRequest, transfer_once
from loadgen.model import steps

__all__ = ["transfer_prepared", "begin_statement", "STATEMENTS"]

#: Statement name -> SQL, prepared once per connection. The SQL is transfer.py's, in libpq's $n style.
STATEMENTS = {
    b"loadgen_debit": b"UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING balance",
    b"loadgen_credit": b"UPDATE accounts SET balance = balance + $1 WHERE id = $2",
    b"loadgen_ledger": b"INSERT INTO transfers (id, payer, payee, amount) VALUES ($1, $2, $3, $4)",
}
_DEBIT, _CREDIT, _LEDGER = STATEMENTS
_COMMIT, _ROLLBACK = b"COMMIT", b"ROLLBACK"


def begin_statement(conn: psycopg.Connection[Any]) -> bytes:
    """The BEGIN psycopg itself would send for ``conn``'s transaction settings."""
    parts = ["BEGIN"]
    if conn.isolation_level is not None:
        parts.append("ISOLATION LEVEL " + IsolationLevel(conn.isolation_level).name.replace("_", " "))
    if conn.read_only is not None:
        parts.append("READ ONLY" if conn.read_only else "READ WRITE")
    if conn.deferrable is not None:
        parts.append("DEFERRABLE" if conn.deferrable else "NOT DEFERRABLE")
    return " ".join(parts).encode()


def _prepare(conn: GeventConnection) -> bytes:
    """Prepare the statements on this connection; return its BEGIN (kept on the connection)."""
    pg = conn.pgconn
    for name, sql in STATEMENTS.items():
        pg.send_prepare(name, sql)
        conn.exchange()
    begin = conn._lg_begin = begin_statement(conn)
    return begin


def transfer_prepared(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    """``transfer_once``, five round trips of prepared statements sent straight through libpq."""
    if not isinstance(conn, GeventConnection):
        transfer_once(conn, req, phase)
        return
    begin = conn._lg_begin or _prepare(conn)
    pg, exchange = conn.pgconn, conn.exchange
    amount, payer, payee = str(req.amount).encode(), str(req.payer).encode(), str(req.payee).encode()
    pg.send_query(begin)
    exchange()
    if phase is not None:
        phase.step = steps.DEBIT
    pg.send_query_prepared(_DEBIT, (amount, payer))
    res = exchange()
    if res.ntuples == 0:
        _rollback(conn)
        raise NoSuchAccount(f"account {req.payer} does not exist")
    balance = int(res.get_value(0, 0))  # type: ignore[arg-type]
    if balance < 0:
        _rollback(conn)
        raise InsufficientFunds(f"account {req.payer} would go to {balance}")
    if phase is not None:
        phase.step = steps.CREDIT
    pg.send_query_prepared(_CREDIT, (amount, payee))
    if exchange().command_tuples != 1:
        _rollback(conn)
        raise NoSuchAccount(f"account {req.payee} does not exist")
    if phase is not None:
        phase.step = steps.LEDGER
    pg.send_query_prepared(_LEDGER, (req.txn_id.encode(), payer, payee, amount))
    exchange()
    if phase is not None:
        phase.step = steps.COMMIT
    pg.send_query(_COMMIT)
    exchange()


def _rollback(conn: GeventConnection) -> None:
    conn.pgconn.send_query(_ROLLBACK)
    conn.exchange()
