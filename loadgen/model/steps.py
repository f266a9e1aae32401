"""The steps of a transaction shape: where an attempt can end, named as attempts.parquet's ``failed_at`` says.

A step is one round trip of a shape (each shape's steps are its row in
loadgen.model.shapes) as the user wrote it (loadgen.db.shapes, and
its first-committer-wins form loadgen.db.occ, which keeps the names even where a
write is buffered until COMMIT). ``connect`` is before any: no connection came.
On psycopg's own path BEGIN travels with the first statement, so a failure there
is named after that statement.
"""

from __future__ import annotations

__all__ = [
    "CONNECT",
    "BEGIN",
    "DEBIT",
    "CREDIT",
    "LEDGER",
    "COMMIT",
    "READ",
    "READ_PAYEE",
    "CHECK",
    "LOCK",
    "TRANSFER",
    "STEP_ORDER",
    "step_order",
]

CONNECT = "connect"
BEGIN = "begin"
#: The payer's balance read (select-then-update, read-modify-write).
READ = "read"
#: The payee's balance read (read-modify-write).
READ_PAYEE = "read-payee"
#: Both of a customer's balances read (joint-withdrawal).
CHECK = "check"
#: Both of a customer's accounts locked, SELECT ... FOR UPDATE (joint-withdrawal-for-update).
LOCK = "lock"
DEBIT = "debit"
CREDIT = "credit"
#: Both balances in one statement (single-statement).
TRANSFER = "transfer"
LEDGER = "ledger"
COMMIT = "commit"

#: Each built-in shape's steps, in the order an attempt takes them (loadgen.model.scenario.SHAPES).
#: Every step in the order attempts meet them; each shape's steps (loadgen.model.shapes) follow it.
STEP_ORDER: tuple[str, ...] = (CONNECT, BEGIN, READ, READ_PAYEE, CHECK, LOCK, DEBIT, TRANSFER, CREDIT, LEDGER, COMMIT)


def step_order(names: list[str] | set[str]) -> list[str]:
    """``names`` in the order attempts meet them (connect first, commit last, unknown ones after)."""
    order = {step: i for i, step in enumerate(STEP_ORDER)}
    return sorted(names, key=lambda s: (order.get(s, len(order)), s))
