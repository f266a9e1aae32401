"""How an attempt ends: every outcome name, and the sets the code decides by.

The names are the ``outcome`` column of ``attempts.parquet`` (the data contract: users
script against them), so a member's value never changes. ``Outcome`` is a ``StrEnum``:
a member *is* its name as a string, so rows, JSON, msgpack and pandas see plain text,
and ``row.outcome == Outcome.CONFLICT`` holds for a value read back from a file.

Write ``Outcome.CONNECTION_ERROR``, never the literal: a typo then fails at import,
not as a silently empty count.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Outcome", "OUTCOMES", "COMMITTED", "CONTENTION", "RETRYABLE", "FAILED"]


class Outcome(StrEnum):
    """One attempt's outcome, classified at the source (loadgen.db.classify, loadgen.db.transfer)."""

    #: The transfer is in the ledger.
    COMMITTED = "committed"
    #: The COMMIT's answer was lost, and the ledger shows the transfer landed (settled after the run).
    AMBIGUOUS_COMMITTED = "ambiguous_committed"
    #: SQLSTATE 40001: an OCC conflict (DSQL's OC000/OC001) or PostgreSQL's serialization failure.
    CONFLICT = "conflict"
    #: SQLSTATE 40P01: PostgreSQL found a cycle of lock waits (DSQL has no locks).
    DEADLOCK = "deadlock"
    #: SQLSTATE 55P03: PostgreSQL gave up a row-lock wait (``lock_timeout``).
    LOCK_TIMEOUT = "lock_timeout"
    #: The payer's balance would go negative: rolled back, never retried.
    INSUFFICIENT_FUNDS = "insufficient_funds"
    #: The connection, not the transaction, failed (08xxx, 57P0x, 53300/53400, socket errors).
    CONNECTION_ERROR = "connection_error"
    #: Anything else: not retried.
    ERROR = "error"
    #: The user was stopped mid-attempt (end of run, Ctrl-C).
    INTERRUPTED = "interrupted"


#: Every outcome name, in a stable order (tables and charts list them so).
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
#: The transfer is in the ledger.
COMMITTED: frozenset[str] = frozenset({Outcome.COMMITTED.value, Outcome.AMBIGUOUS_COMMITTED.value})
#: Another transaction got in the way: an OCC conflict, a deadlock, a lock wait given up.
CONTENTION: frozenset[str] = frozenset({Outcome.CONFLICT.value, Outcome.DEADLOCK.value, Outcome.LOCK_TIMEOUT.value})
#: After these the retry loop tries the whole transaction again.
RETRYABLE: frozenset[str] = CONTENTION | {Outcome.CONNECTION_ERROR.value}
#: Every outcome that is not a commit.
FAILED: frozenset[str] = frozenset(OUTCOMES) - COMMITTED
