"""The steps of a transaction shape: where an attempt can end, named as attempts.parquet's ``failed_at`` says.

A step is one round trip of the shape as the user wrote it (loadgen.db.shapes, and
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
    "SHAPE_STEPS",
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
SHAPE_STEPS: dict[str, tuple[str, ...]] = {
    "update-returning": (BEGIN, DEBIT, CREDIT, LEDGER, COMMIT),
    "select-then-update": (BEGIN, READ, DEBIT, CREDIT, LEDGER, COMMIT),
    "single-statement": (BEGIN, TRANSFER, LEDGER, COMMIT),
    "multi-leg": (BEGIN, DEBIT, CREDIT, LEDGER, COMMIT),
    "read-modify-write": (BEGIN, READ, READ_PAYEE, DEBIT, CREDIT, LEDGER, COMMIT),
    "joint-withdrawal": (BEGIN, CHECK, DEBIT, CREDIT, LEDGER, COMMIT),
    "joint-withdrawal-for-update": (BEGIN, LOCK, DEBIT, CREDIT, LEDGER, COMMIT),
}


def step_order(names: list[str] | set[str]) -> list[str]:
    """``names`` in the order attempts meet them (connect first, commit last, unknown ones after)."""
    order = {CONNECT: 0}
    for steps in SHAPE_STEPS.values():
        for i, step in enumerate(steps):
            order.setdefault(step, 1 + i)
    order[COMMIT] = 99
    return sorted(names, key=lambda s: (order.get(s, 100), s))
