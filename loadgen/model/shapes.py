"""Transaction shapes: the one registry of how a transfer may talk to the database.

A row per shape: its name (the scenario's ``transaction.shape``, ``--shape``), what it
does, its steps (where an attempt can end: attempts.parquet's ``failed_at``), and what
the OCC simulation needs to model it (statements before COMMIT). The scenario model
takes its choices from here, the simulator its statement counts, the report its steps;
the database code's tables of functions, in both its forms (loadgen.db.shapes and
its first-committer-wins form loadgen.db.occ), are built from these rows by
:func:`functions_by_shape`, so a shape without its function fails at import.

Adding a shape: a row here, and a function named as the shape (``multi_leg`` for
``multi-leg``) in loadgen.db.shapes and in loadgen.db.occ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadgen.model.steps import BEGIN, CHECK, COMMIT, CREDIT, DEBIT, LEDGER, LOCK, READ, READ_PAYEE, TRANSFER

__all__ = ["TransactionShape", "TRANSACTION_SHAPES", "SHAPE_NAMES", "statements", "functions_by_shape"]


@dataclass(frozen=True)
class TransactionShape:
    """One way a transfer talks to the database."""

    name: str
    summary: str
    #: Its steps in order (loadgen.model.steps), as a failed attempt's ``failed_at`` names them.
    steps: tuple[str, ...]
    #: Statements before COMMIT in one attempt (multi-leg: plus one per leg); None when the
    #: simulation does not model the shape (it writes rows other transfers read as a group).
    statements: int | None
    #: The same in the shape's first-committer-wins form (cc occ on PostgreSQL, loadgen.db.occ):
    #: round trips before COMMIT after BEGIN; a write whose value an earlier read gave takes none.
    occ_statements: int | None
    #: multi-leg: a statement per leg on top of ``statements`` (and ``occ_statements``).
    per_leg: bool = False

    @property
    def function_name(self) -> str:
        """The Python name of its functions in loadgen.db.shapes and loadgen.db.occ."""
        return self.name.replace("-", "_")


#: Every shape, the talk's first: name, summary, steps, statements (plain, first-committer-wins).
# fmt: off
TRANSACTION_SHAPES: dict[str, TransactionShape] = {
    s.name: s
    for s in (
        TransactionShape("update-returning", "debit ... RETURNING balance, credit, ledger row (the talk's)",
                         (BEGIN, DEBIT, CREDIT, LEDGER, COMMIT), 3, 3),
        TransactionShape("select-then-update", "read the payer's balance, check it, then write both rows",
                         (BEGIN, READ, DEBIT, CREDIT, LEDGER, COMMIT), 4, 3),
        TransactionShape("single-statement", "both balances in one UPDATE ... CASE, then the ledger row",
                         (BEGIN, TRANSFER, LEDGER, COMMIT), 2, 2),
        TransactionShape("multi-leg", "one payer pays each of k payees; one ledger row",
                         (BEGIN, DEBIT, CREDIT, LEDGER, COMMIT), 2, 2, per_leg=True),
        TransactionShape("read-modify-write", "read both balances, write them back as absolute values",
                         (BEGIN, READ, READ_PAYEE, DEBIT, CREDIT, LEDGER, COMMIT), 5, 3),
        TransactionShape("joint-withdrawal", "check a customer's two accounts' joint minimum, debit one (write skew)",
                         (BEGIN, CHECK, DEBIT, CREDIT, LEDGER, COMMIT), None, None),
        TransactionShape("joint-withdrawal-for-update", "joint-withdrawal with both accounts locked FOR UPDATE",
                         (BEGIN, LOCK, DEBIT, CREDIT, LEDGER, COMMIT), None, None),
    )
}
# fmt: on

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


def functions_by_shape(namespace: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every shape's function in a module's ``namespace`` (its ``globals()``), by shape name, in the
    registry's order; a shape without its function (``where`` names the module) is an ImportError."""
    missing = [row.function_name for row in TRANSACTION_SHAPES.values() if not callable(namespace.get(row.function_name))]
    if missing:
        raise ImportError(f"{where} lacks the function of shape(s): {', '.join(missing)}")
    return {name: namespace[row.function_name] for name, row in TRANSACTION_SHAPES.items()}
