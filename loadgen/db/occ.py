"""First-committer-wins on PostgreSQL: each transaction shape as an OCC engine runs it (``--cc occ``).

Aurora DSQL takes no locks: a transaction reads at the snapshot it took at BEGIN, its
statements never wait on nor fail another's, and at COMMIT it fails with 40001 if
another transaction committed, after that snapshot, a row it wrote or locked (FOR
UPDATE). The later committer loses, whatever the order of the writes. PostgreSQL's
REPEATABLE READ decides the same question, but at the *statement* that writes, by
taking the row's lock there. So here, as OCC engines do:

- BEGIN ISOLATION LEVEL REPEATABLE READ travels with ``SELECT 1`` in one simple-query
  message: the snapshot is taken at BEGIN (PostgreSQL takes it at a transaction's
  first statement, DSQL at BEGIN), with no round trip more;
- reads are plain SELECTs at that snapshot: they never wait and never fail;
- an attempt's writes are computed here from what it read (so a debit still "returns"
  the new balance it checks) and kept until COMMIT;
- at COMMIT the kept writes go in one pipeline with COMMIT itself (libpq pipeline
  mode: one round trip), each row set to the value computed, in account-id order.
  PostgreSQL's own REPEATABLE READ check then fails the first UPDATE of a row another
  transaction committed after the snapshot with 40001; the later committer loses, at
  COMMIT. Two committers take their rows in the same order, so they cannot deadlock;
  one that finds a row still locked by another's COMMIT waits for that pipeline only
  (microseconds on the server), bounded by the safety net ``OCC_COMMIT_LOCK_TIMEOUT_MS``
  (loadgen.db.cc): a 55P03 there means the server stalled inside another's COMMIT, and
  is recorded as ``lock_timeout`` at ``commit``, not as a conflict;
- a row read FOR UPDATE is written back unchanged at COMMIT (``balance = balance``):
  a new row version, so a locked row counts as a write at commit, as on DSQL
  (PostgreSQL's row lock of a committed locker would fail no later writer);
- the ledger row is inserted at its own statement: its key is the transfer's id, so it
  never meets another transaction's.

The round trips of each shape stay as the user wrote it (the talk's: BEGIN, debit,
credit, ledger, COMMIT), except that a write whose value is already known from an
earlier read needs none. Emulated latency (loadgen.db.delay) waits before each round
trip, and before COMMIT also for ``commit_ms``, which stands for DSQL's commit.
Statements are prepared once per connection; the connection must be a
loadgen.db.gevent_connection.GeventConnection (the run's users' own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import psycopg

from loadgen.db.classify import InsufficientFunds, NoSuchAccount
from loadgen.db.gevent_connection import GeventConnection
from loadgen.db.shapes import sibling
from loadgen.db.transfer import AttemptProgress, TransferRequest
from loadgen.model import steps
from loadgen.model.shapes import functions_by_shape

__all__ = ["Snapshot", "OCC_SHAPE_FUNCTIONS", "occ_shape", "BEGIN_SNAPSHOT", "STATEMENTS"]

#: BEGIN and a statement that takes the snapshot, in one simple-query message (one round trip).
BEGIN_SNAPSHOT = b"BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1"
#: Statement name -> SQL, prepared once per connection.
STATEMENTS = {
    b"loadgen_occ_read": b"SELECT balance FROM accounts WHERE id = $1",
    b"loadgen_occ_read_many": b"SELECT id, balance FROM accounts WHERE id = ANY($1::bigint[])",
    b"loadgen_occ_ledger": b"INSERT INTO transfers (id, payer, payee, amount) VALUES ($1, $2, $3, $4)",
    b"loadgen_occ_write": b"UPDATE accounts SET balance = $1 WHERE id = $2",
    # A locked row written back as it is: a new row version, so it conflicts as a write does.
    b"loadgen_occ_touch": b"UPDATE accounts SET balance = balance WHERE id = $1",
}
_READ, _READ_MANY, _LEDGER, _WRITE, _TOUCH = STATEMENTS
_COMMIT, _ROLLBACK = b"COMMIT", b"ROLLBACK"


def _prepare(conn: GeventConnection) -> None:
    """Prepare the statements on ``conn`` in one pipelined round trip (once per connection)."""
    pg = conn.pgconn
    pg.enter_pipeline_mode()
    for name, sql in STATEMENTS.items():
        pg.send_prepare(name, sql)
    pg.pipeline_sync()
    conn.exchange_pipeline()
    conn._lg_occ_prepared = True


class Snapshot:
    """One attempt's transaction under first-committer-wins: snapshot reads, writes kept for COMMIT."""

    __slots__ = ("conn", "pg", "phase", "values", "written", "locked")

    def __init__(self, conn: psycopg.Connection[Any], phase: AttemptProgress | None = None) -> None:
        if not isinstance(conn, GeventConnection):
            raise TypeError("cc occ runs on loadgen's own connections (loadgen.db.gevent_connection.GeventConnection)")
        if not conn._lg_occ_prepared:
            _prepare(conn)
        self.conn = conn
        self.pg = conn.pgconn
        self.phase = phase if phase is not None else AttemptProgress()
        #: Each account's balance as this transaction sees it: read at the snapshot, then its own writes.
        self.values: dict[int, int] = {}
        self.written: set[int] = set()
        self.locked: set[int] = set()
        self.phase.step = steps.BEGIN
        conn.delay()
        self.pg.send_query(BEGIN_SNAPSHOT)
        conn.exchange()

    def balance(self, account: int) -> int | None:
        """``account``'s balance at the snapshot (or as this transaction last set it); None if there is no such row."""
        known = self.values.get(account)
        if known is not None:
            return known
        self.conn.delay()
        self.pg.send_query_prepared(_READ, (str(account).encode(),))
        res = self.conn.exchange()
        if res.ntuples == 0:
            return None
        value = self.values[account] = int(res.get_value(0, 0))  # type: ignore[arg-type]
        return value

    def balances(self, accounts: Iterable[int]) -> dict[int, int]:
        """Several accounts' balances in one round trip (those that exist)."""
        wanted = [a for a in accounts if a not in self.values]
        if wanted:
            self.conn.delay()
            self.pg.send_query_prepared(_READ_MANY, (("{" + ",".join(map(str, wanted)) + "}").encode(),))
            res = self.conn.exchange()
            for i in range(res.ntuples):
                self.values[int(res.get_value(i, 0))] = int(res.get_value(i, 1))  # type: ignore[arg-type]
        return {a: self.values[a] for a in accounts if a in self.values}

    def lock(self, account: int) -> int | None:
        """``SELECT ... FOR UPDATE``: the balance at the snapshot; the row counts as written at COMMIT."""
        value = self.balance(account)
        if value is not None:
            self.locked.add(account)
        return value

    def write(self, account: int, balance: int) -> None:
        """Set ``account``'s balance, at COMMIT (no round trip now)."""
        self.values[account] = balance
        self.written.add(account)

    def ledger(self, req: TransferRequest, payee: int, amount: int) -> None:
        """The transfer's ledger row, inserted now (keyed by the transfer's id: nobody else's)."""
        self.conn.delay()
        self.pg.send_query_prepared(_LEDGER, (req.txn_id.encode(), str(req.payer).encode(), str(payee).encode(), str(amount).encode()))
        self.conn.exchange()

    def commit(self) -> None:
        """The kept writes and COMMIT, pipelined in one round trip; 40001 if a row changed since the snapshot."""
        self.phase.step = steps.COMMIT
        conn, pg = self.conn, self.pg
        conn.delay(commit=True)
        pg.enter_pipeline_mode()
        written, values = self.written, self.values
        # In id order: two committers lock their common rows in the same order, so never in a cycle.
        for account in sorted(written | self.locked):
            if account in written:
                pg.send_query_prepared(_WRITE, (str(values[account]).encode(), str(account).encode()))
            else:
                pg.send_query_prepared(_TOUCH, (str(account).encode(),))
        pg.send_query_params(_COMMIT, None)
        pg.pipeline_sync()
        conn.exchange_pipeline()

    def fail(self, exc: Exception) -> NoReturn:
        """Roll back (one round trip) and raise ``exc``: the shape's own refusal (no such account, no funds)."""
        self.conn.delay()
        self.pg.send_query(_ROLLBACK)
        self.conn.exchange()
        raise exc


def _credit(t: Snapshot, payee: int, amount: int) -> None:
    balance = t.balance(payee)
    if balance is None:
        t.fail(NoSuchAccount(f"account {payee} does not exist"))
    t.write(payee, balance + amount)


def _debit(t: Snapshot, payer: int, amount: int) -> None:
    """Debit with the check an ``UPDATE ... RETURNING balance`` makes: the new balance must not be negative."""
    balance = t.balance(payer)
    if balance is None:
        t.fail(NoSuchAccount(f"account {payer} does not exist"))
    if balance - amount < 0:
        t.fail(InsufficientFunds(f"account {payer} would go to {balance - amount}"))
    t.write(payer, balance - amount)


def update_returning(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    """The talk's transfer: BEGIN (snapshot), debit, credit, ledger row, COMMIT with the writes."""
    t = Snapshot(conn, phase)
    t.phase.step = steps.DEBIT
    _debit(t, req.payer, req.amount)
    t.phase.step = steps.CREDIT
    _credit(t, req.payee, req.amount)
    t.phase.step = steps.LEDGER
    t.ledger(req, req.payee, req.amount)
    t.commit()


def _read_checked(t: Snapshot, req: TransferRequest) -> int:
    """Read the payer's balance; refuse the transfer if it is short (select-then-update, read-modify-write)."""
    balance = t.balance(req.payer)
    if balance is None:
        t.fail(NoSuchAccount(f"account {req.payer} does not exist"))
    if balance < req.amount:
        t.fail(InsufficientFunds(f"account {req.payer} has {balance}, needs {req.amount}"))
    return balance


def _debit_known_credit_record(t: Snapshot, req: TransferRequest, balance: int) -> None:
    """The tail of the shapes that read the payer's balance first: its new balance written (no
    round trip: the value is known), credit, ledger row, COMMIT."""
    t.phase.step = steps.DEBIT
    t.write(req.payer, balance - req.amount)
    t.phase.step = steps.CREDIT
    _credit(t, req.payee, req.amount)
    t.phase.step = steps.LEDGER
    t.ledger(req, req.payee, req.amount)
    t.commit()


def select_then_update(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    t = Snapshot(conn, phase)
    t.phase.step = steps.READ
    balance = _read_checked(t, req)
    _debit_known_credit_record(t, req, balance)


def single_statement(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    t = Snapshot(conn, phase)
    t.phase.step = steps.TRANSFER
    both = t.balances((req.payer, req.payee))
    if len(both) != 2:
        t.fail(NoSuchAccount(f"accounts {req.payer} and {req.payee} are not both there"))
    if both[req.payer] - req.amount < 0:
        t.fail(InsufficientFunds(f"account {req.payer} would go to {both[req.payer] - req.amount}"))
    t.write(req.payer, both[req.payer] - req.amount)
    t.write(req.payee, both[req.payee] + req.amount)
    t.phase.step = steps.LEDGER
    t.ledger(req, req.payee, req.amount)
    t.commit()


def multi_leg(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    payees = getattr(req, "payees", ()) or (req.payee,)
    total = req.amount * len(payees)
    t = Snapshot(conn, phase)
    t.phase.step = steps.DEBIT
    _debit(t, req.payer, total)
    t.phase.step = steps.CREDIT
    for payee in payees:
        _credit(t, payee, req.amount)
    t.phase.step = steps.LEDGER
    t.ledger(req, payees[0], total)
    t.commit()


def read_modify_write(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    t = Snapshot(conn, phase)
    t.phase.step = steps.READ
    payer = _read_checked(t, req)
    t.phase.step = steps.READ_PAYEE
    payee = t.balance(req.payee)
    if payee is None:
        t.fail(NoSuchAccount(f"account {req.payee} does not exist"))
    t.phase.step = steps.DEBIT
    t.write(req.payer, payer - req.amount)
    t.phase.step = steps.CREDIT
    t.write(req.payee, payee + req.amount)
    t.phase.step = steps.LEDGER
    t.ledger(req, req.payee, req.amount)
    t.commit()


def _joint_withdrawal(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any, lock: bool) -> None:
    pair = (req.payer, sibling(req.payer))
    t = Snapshot(conn, phase)
    if lock:
        t.phase.step = steps.LOCK
        balances: dict[int, int] = {}
        for account in sorted(pair):  # one key per statement, as DSQL's FOR UPDATE asks
            value = t.lock(account)
            if value is not None:
                balances[account] = value
    else:
        t.phase.step = steps.CHECK
        balances = t.balances(pair)
    if len(balances) != 2:
        t.fail(NoSuchAccount(f"customer of account {req.payer} lacks an account"))
    own, joint = balances[req.payer], sum(balances.values())
    minimum = getattr(req, "minimum", 0)
    if own < req.amount or joint - req.amount < minimum:
        t.fail(InsufficientFunds(f"customer of account {req.payer} would drop below the joint minimum {minimum}"))
    _debit_known_credit_record(t, req, own)


def joint_withdrawal(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    _joint_withdrawal(conn, req, phase, lock=False)


def joint_withdrawal_for_update(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    _joint_withdrawal(conn, req, phase, lock=True)


#: Every shape's function (loadgen.model.shapes.TRANSACTION_SHAPES, by name) in its first-committer-wins form.
OCC_SHAPE_FUNCTIONS: dict[str, Callable[[psycopg.Connection[Any], TransferRequest, Any], None]] = functions_by_shape(globals(), __name__)


def occ_shape(name: str) -> Callable[[psycopg.Connection[Any], TransferRequest, Any], None]:
    """The first-committer-wins transaction function of a shape's name."""
    return OCC_SHAPE_FUNCTIONS[name]
