"""Transaction shapes: the same transfer, talking to the database in different ways.

Each shape is a function ``(conn, request, commit_phase)`` that runs one attempt
and commits, as ``run_transfer``'s ``transaction`` parameter expects. Conflicts
surface as psycopg errors (classified by the retry loop); a payer who would go
negative rolls back and raises InsufficientFunds.

- ``update-returning``: the talk's: debit ... RETURNING balance, credit, ledger row.
- ``select-then-update``: read the payer's balance, check it, then write both rows
  (a read-modify-write, so the snapshot read is what conflicts).
- ``single-statement``: both balances in one ``UPDATE ... CASE`` (CockroachDB's bank).
- ``multi-leg``: one payer pays each of k payees ``amount``; one ledger row for the
  whole transfer (its payee column holds the first payee, its amount the total).
- ``read-modify-write``: read both balances, then write the new balances as absolute
  values. Safe under snapshot isolation (the second writer gets 40001); under READ
  COMMITTED concurrent transfers overwrite each other and money appears or vanishes
  (the ``lost-update`` demonstration).
- ``joint-withdrawal`` / ``joint-withdrawal-for-update``: the first half of the
  accounts belongs to customers, two each (2c-1 and 2c), who pay merchants (the
  second half) and must keep a joint minimum (the initial balance) across their
  two accounts. The transfer reads both of the payer's accounts, checks the rule,
  and debits only one. Under snapshot isolation two such transfers from the two accounts of
  one customer both pass the check and both commit: write skew (the ``write-skew``
  demonstration). ``SELECT ... FOR UPDATE`` on both accounts, one by its key at a
  time in id order (DSQL's rule), makes them collide.

Read-only transactions for the read mix are here too: one balance, or an audit
that sums every balance in one snapshot and checks the bank's total (Jepsen's bank).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from loadgen.db.classify import InsufficientFunds, NoSuchAccount
from loadgen.db.prepared import transfer_prepared
from loadgen.db.schema import customers_below_minimum, joint_customers_accounts
from loadgen.db.transfer import CREDIT, LEDGER, AttemptProgress, TransferRequest
from loadgen.model import steps
from loadgen.model.shapes import functions_by_shape

__all__ = [
    "MultiLegRequest",
    "JointRequest",
    "sibling",
    "customers_below_minimum",
    "joint_customers_accounts",
    "Shape",
    "SHAPE_FUNCTIONS",
    "shape",
    "update_returning",
    "select_then_update",
    "single_statement",
    "multi_leg",
    "read_modify_write",
    "read_balance",
    "audit",
]

Shape = Callable[[psycopg.Connection[Any], TransferRequest, Any], None]

SELECT_BALANCE = "SELECT balance FROM accounts WHERE id = %s"
DEBIT_PLAIN = "UPDATE accounts SET balance = balance - %s WHERE id = %s"
DEBIT_RETURNING = "UPDATE accounts SET balance = balance - %s WHERE id = %s RETURNING balance"
BOTH = (
    "UPDATE accounts SET balance = balance + CASE WHEN id = %(payer)s THEN -%(amount)s::bigint"
    " ELSE %(amount)s::bigint END WHERE id IN (%(payer)s, %(payee)s) RETURNING id, balance"
)
SET_BALANCE = "UPDATE accounts SET balance = %s WHERE id = %s"
AUDIT = "SELECT coalesce(sum(balance), 0), count(*) FROM accounts"


@dataclass(frozen=True, slots=True)
class MultiLegRequest(TransferRequest):
    """A payer paying ``amount`` to each of several payees (``payee`` is the first)."""

    payees: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class JointRequest(TransferRequest):
    """A transfer from one of a customer's two accounts, who must keep ``minimum`` across both."""

    minimum: int = 0


def _at(phase: Any, step: str) -> Any:
    """Mark the attempt as having reached ``step`` (loadgen.model.steps); the progress object, made if none came."""
    if phase is None:
        phase = AttemptProgress()
    phase.step = step
    return phase


def _commit(conn: psycopg.Connection[Any], phase: Any) -> None:
    _at(phase, steps.COMMIT)
    conn.commit()


def _fail(conn: psycopg.Connection[Any], exc: Exception) -> None:
    conn.rollback()
    raise exc


def update_returning(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    """The talk's transaction (loadgen.db.transfer.transfer_once, sent as prepared statements by loadgen.db.prepared)."""
    transfer_prepared(conn, req, phase)


def _debit_credit_record(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any) -> None:
    """The tail of the shapes that check the balance first: debit, credit, ledger row, COMMIT."""
    phase = _at(phase, steps.DEBIT)
    conn.execute(DEBIT_PLAIN, (req.amount, req.payer))
    phase.step = steps.CREDIT
    if conn.execute(CREDIT, (req.amount, req.payee)).rowcount != 1:
        _fail(conn, NoSuchAccount(f"account {req.payee} does not exist"))
    phase.step = steps.LEDGER
    conn.execute(LEDGER, (req.txn_id, req.payer, req.payee, req.amount))
    _commit(conn, phase)


def select_then_update(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    phase = _at(phase, steps.READ)
    row = conn.execute(SELECT_BALANCE, (req.payer,)).fetchone()
    if row is None:
        _fail(conn, NoSuchAccount(f"account {req.payer} does not exist"))
    assert row is not None
    if row[0] < req.amount:
        _fail(conn, InsufficientFunds(f"account {req.payer} has {row[0]}, needs {req.amount}"))
    _debit_credit_record(conn, req, phase)


def single_statement(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    phase = _at(phase, steps.TRANSFER)
    rows = conn.execute(BOTH, {"payer": req.payer, "payee": req.payee, "amount": req.amount}).fetchall()
    if len(rows) != 2:
        _fail(conn, NoSuchAccount(f"accounts {req.payer} and {req.payee} are not both there"))
    balance = dict(rows)[req.payer]
    if balance < 0:
        _fail(conn, InsufficientFunds(f"account {req.payer} would go to {balance}"))
    phase.step = steps.LEDGER
    conn.execute(LEDGER, (req.txn_id, req.payer, req.payee, req.amount))
    _commit(conn, phase)


def multi_leg(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    payees = getattr(req, "payees", ()) or (req.payee,)
    total = req.amount * len(payees)
    phase = _at(phase, steps.DEBIT)
    row = conn.execute(DEBIT_RETURNING, (total, req.payer)).fetchone()
    if row is None:
        _fail(conn, NoSuchAccount(f"account {req.payer} does not exist"))
    assert row is not None
    if row[0] < 0:
        _fail(conn, InsufficientFunds(f"account {req.payer} would go to {row[0]}"))
    phase.step = steps.CREDIT
    for payee in payees:
        if conn.execute(CREDIT, (req.amount, payee)).rowcount != 1:
            _fail(conn, NoSuchAccount(f"account {payee} does not exist"))
    phase.step = steps.LEDGER
    conn.execute(LEDGER, (req.txn_id, req.payer, payees[0], total))
    _commit(conn, phase)


def read_modify_write(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    phase = _at(phase, steps.READ)
    payer = conn.execute(SELECT_BALANCE, (req.payer,)).fetchone()
    phase.step = steps.READ_PAYEE
    payee = conn.execute(SELECT_BALANCE, (req.payee,)).fetchone()
    if payer is None or payee is None:
        _fail(conn, NoSuchAccount(f"accounts {req.payer} and {req.payee} are not both there"))
    assert payer is not None and payee is not None
    if payer[0] < req.amount:
        _fail(conn, InsufficientFunds(f"account {req.payer} has {payer[0]}, needs {req.amount}"))
    phase.step = steps.DEBIT
    conn.execute(SET_BALANCE, (payer[0] - req.amount, req.payer))
    phase.step = steps.CREDIT
    conn.execute(SET_BALANCE, (payee[0] + req.amount, req.payee))
    phase.step = steps.LEDGER
    conn.execute(LEDGER, (req.txn_id, req.payer, req.payee, req.amount))
    _commit(conn, phase)


def sibling(account: int) -> int:
    """The customer's other account: accounts 2c-1 and 2c belong to customer c."""
    return account + 1 if account % 2 else account - 1


#: One row locked by its primary key: DSQL takes ``FOR UPDATE`` only with an equality
#: predicate on the key, so the two rows are locked one statement each.
SELECT_FOR_UPDATE = "SELECT balance FROM accounts WHERE id = %s FOR UPDATE"


def _joint_withdrawal(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any, lock: bool) -> None:
    pair = (req.payer, sibling(req.payer))
    balances: dict[int, int] = {}
    phase = _at(phase, steps.LOCK if lock else steps.CHECK)
    if lock:
        # In id order, so two payments of one customer queue rather than deadlock.
        for account in sorted(pair):
            row = conn.execute(SELECT_FOR_UPDATE, (account,)).fetchone()
            if row is not None:
                balances[account] = row[0]
    else:
        balances = dict(conn.execute("SELECT id, balance FROM accounts WHERE id = ANY(%s)", (list(pair),)).fetchall())
    if len(balances) != 2:
        _fail(conn, NoSuchAccount(f"customer of account {req.payer} lacks an account"))
    own, joint = balances[req.payer], sum(balances.values())
    minimum = getattr(req, "minimum", 0)
    if own < req.amount or joint - req.amount < minimum:
        _fail(conn, InsufficientFunds(f"customer of account {req.payer} would drop below the joint minimum {minimum}"))
    _debit_credit_record(conn, req, phase)


def joint_withdrawal(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    _joint_withdrawal(conn, req, phase, lock=False)


def joint_withdrawal_for_update(conn: psycopg.Connection[Any], req: TransferRequest, phase: Any = None) -> None:
    _joint_withdrawal(conn, req, phase, lock=True)


#: The function of every shape in the registry (loadgen.model.shapes.TRANSACTION_SHAPES), by name.
SHAPE_FUNCTIONS: dict[str, Shape] = functions_by_shape(globals(), __name__)


def shape(name: str) -> Shape:
    """The transaction function of a shape's name (names as in loadgen.model.shapes)."""
    return SHAPE_FUNCTIONS[name]


def read_balance(conn: psycopg.Connection[Any], account: int) -> int | None:
    """A read-only transaction: one account's balance."""
    row = conn.execute(SELECT_BALANCE, (account,)).fetchone()
    conn.commit()
    return None if row is None else int(row[0])


def audit(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """A read-only transaction: (sum of all balances, number of accounts), from one snapshot."""
    row = conn.execute(AUDIT).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), int(row[1])
