"""Transaction shapes: the one registry of how a transfer may talk to the database.

A row per shape: its name (the scenario's ``transaction.shape``, ``--shape``), what it
does, and what the OCC simulation needs to model it (statements before COMMIT, and
whether it writes only its payer and payees). The scenario model takes its choices
from here, the simulator its statement counts, and loadgen.db.shapes has a function
for every row (``SHAPE_FUNCTIONS``, checked against this table by tests/test_workload.py).

Adding a shape: a row here, its function in loadgen.db.shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TransactionShape", "TRANSACTION_SHAPES", "SHAPE_NAMES", "statements"]


@dataclass(frozen=True)
class TransactionShape:
    """One way a transfer talks to the database."""

    name: str
    summary: str
    #: Statements before COMMIT in one attempt (multi-leg: plus one per leg); None when the
    #: simulation does not model the shape (it writes rows other transfers read as a group).
    statements: int | None
    #: multi-leg: a statement per leg on top of ``statements``.
    per_leg: bool = False


#: Every shape, the talk's first.
TRANSACTION_SHAPES: dict[str, TransactionShape] = {
    s.name: s
    for s in (
        TransactionShape("update-returning", "debit ... RETURNING balance, credit, ledger row (the talk's)", 3),
        TransactionShape("select-then-update", "read the payer's balance, check it, then write both rows", 4),
        TransactionShape("single-statement", "both balances in one UPDATE ... CASE, then the ledger row", 2),
        TransactionShape("multi-leg", "one payer pays each of k payees; one ledger row", 2, per_leg=True),
        TransactionShape("read-modify-write", "read both balances, write them back as absolute values", 5),
        TransactionShape("joint-withdrawal", "check a customer's two accounts' joint minimum, debit one (write skew)", None),
        TransactionShape("joint-withdrawal-for-update", "joint-withdrawal with both accounts locked FOR UPDATE", None),
    )
}

#: The shapes' names, in the table's order (the scenario's choices).
SHAPE_NAMES: tuple[str, ...] = tuple(TRANSACTION_SHAPES)


def statements(shape: str, legs: int = 1) -> int | None:
    """Statements before COMMIT in one attempt of ``shape``; None for a shape the simulation does not model."""
    row = TRANSACTION_SHAPES.get(shape)
    if row is None or row.statements is None:
        return None
    return row.statements + (legs if row.per_leg else 0)
