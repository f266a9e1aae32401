"""What one attempt of a transfer is: the record the retry loop emits for every try.

The retry loop builds each record as a bare tuple in ``Attempt``'s field order: the
cheapest record Python has (``Attempt(...)`` costs about three times as much, on a
path taken for every attempt). ``Attempt`` names the fields; code on the hot path
that holds bare rows (the recorder, the live counters, a worker's rows arriving at
the master) reads a field by the index constants below, never by a bare number.
loadgen.results.recorder turns rows into attempts.parquet's columns.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = [
    "Attempt",
    "AttemptRow",
    "ATTEMPT_FIELDS",
    "TXN_ID",
    "ATTEMPT",
    "STARTED_AT",
    "LATENCY_MS",
    "OUTCOME",
    "SQLSTATE",
    "OC_CODE",
    "PAYER",
    "PAYEE",
    "AMOUNT",
    "BACKOFF_MS",
    "COMMIT_UNKNOWN",
    "CONN_WAIT_MS",
    "FAILED_AT",
]


class Attempt(NamedTuple):
    """One try of one transfer; ``Attempt._make(row)`` names a bare row's fields."""

    #: The transfer's id, the same across its retries (and its ledger row's key).
    txn_id: str
    #: 1 for the first try.
    attempt: int
    #: When the try began, in seconds since the epoch.
    started_at: float
    latency_ms: float
    #: committed, conflict, deadlock, lock_timeout, connection_error, ... (loadgen.results.recorder.OUTCOMES)
    outcome: str
    sqlstate: str | None
    #: DSQL's OCC code (OC000, OC001) when the error text carried one.
    oc_code: str | None
    payer: int
    payee: int
    amount: int
    #: The pause before this try.
    backoff_ms: float
    #: The connection was lost inside COMMIT: the ledger decides after the run.
    commit_unknown: bool
    #: The wait for a connection before the attempt: kept apart from ``latency_ms`` (which
    #: starts with the connection in hand) so that queueing never passes for database time.
    conn_wait_ms: float
    #: The step of the transaction shape at which the attempt failed (``begin``, ``debit``,
    #: ``credit``, ``ledger``, ``commit``, ... loadgen.db.steps); None when it committed.
    failed_at: str | None


#: The bare tuple the retry loop emits, in ``Attempt``'s field order.
AttemptRow = tuple[str, int, float, float, str, str | None, str | None, int, int, int, float, bool, float, str | None]
ATTEMPT_FIELDS: tuple[str, ...] = Attempt._fields

# Literal positions, so that a type checker knows each field's type; tests/results/test_records.py
# checks them against ``Attempt``'s fields.
TXN_ID: Final = 0
ATTEMPT: Final = 1
STARTED_AT: Final = 2
LATENCY_MS: Final = 3
OUTCOME: Final = 4
SQLSTATE: Final = 5
OC_CODE: Final = 6
PAYER: Final = 7
PAYEE: Final = 8
AMOUNT: Final = 9
BACKOFF_MS: Final = 10
COMMIT_UNKNOWN: Final = 11
CONN_WAIT_MS: Final = 12
FAILED_AT: Final = 13
