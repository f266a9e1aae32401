"""Transaction shapes: the one registry of how a transfer may talk to the database.

A row per shape: its name (the scenario's ``transaction.shape``, ``--shape``), what it
does, and what the OCC simulation needs to model it (statements before COMMIT, and
whether it writes only its payer and payees). The scenario model takes its choices
from here, the simulator its statement counts, and the database code has a function
for every row in both its forms (loadgen.db.shapes.SHAPE_FUNCTIONS, loadgen.db.occ.OCC_SHAPES),
as loadgen.model.steps has its steps (SHAPE_STEPS): tests/db/test_workload.py checks they agree.

Adding a shape: a row here, its functions in loadgen.db.shapes and loadgen.db.occ, its steps.
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
    #: The same in the shape's first-committer-wins form (cc occ on PostgreSQL, loadgen.db.occ):
    #: round trips before COMMIT after BEGIN; a write whose value an earlier read gave takes none.
    occ_statements: int | None
    #: multi-leg: a statement per leg on top of ``statements`` (and ``occ_statements``).
    per_leg: bool = False


#: Every shape, the talk's first.
TRANSACTION_SHAPES: dict[str, TransactionShape] = {
    s.name: s
    for s in (
        TransactionShape("update-returning", "debit ... RETURNING balance, credit, ledger row (the talk's)", 3, 3),
        TransactionShape("select-then-update", "read the payer's balance, check it, then write both rows", 4, 3),
        TransactionShape("single-statement", "both balances in one UPDATE ... CASE, then the ledger row", 2, 2),
        TransactionShape("multi-leg", "one payer pays each of k payees; one ledger row", 2, 2, per_leg=True),
        TransactionShape("read-modify-write", "read both balances, write them back as absolute values", 5, 3),
        TransactionShape("joint-withdrawal", "check a customer's two accounts' joint minimum, debit one (write skew)", None, None),
        TransactionShape("joint-withdrawal-for-update", "joint-withdrawal with both accounts locked FOR UPDATE", None, None),
    )
}

#: The shapes' names, in the table's order (the scenario's choices).
SHAPE_NAMES: tuple[str, ...] = tuple(TRANSACTION_SHAPES)


def statements(shape: str, legs: int = 1, first_committer_wins: bool = False) -> int | None:
    """Statements before COMMIT in one attempt of ``shape`` (in its loadgen.db.occ form if asked);
    None for a shape the simulation does not model."""
    row = TRANSACTION_SHAPES.get(shape)
    n = None if row is None else row.occ_statements if first_committer_wins else row.statements
    if row is None or n is None:
        return None
    return n + (legs if row.per_leg else 0)
