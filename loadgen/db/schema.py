"""The bank: tables, seeding, reset and the invariants checked after every run (of every kind).

DSQL-compatible from day one: no foreign keys, no sequences, one DDL statement per
transaction, DDL never mixed with DML, and at most 3,000 rows written per
transaction when seeding or resetting.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from loadgen.db.shapes import customers_below_minimum

__all__ = ["BATCH_ROWS", "create_tables", "reset", "check_invariants", "Invariant", "ledger_ids"]

#: DSQL: a transaction modifies at most 3,000 rows.
BATCH_ROWS = 3000

DDL = (
    "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS transfers ("
    " id uuid PRIMARY KEY, payer bigint NOT NULL, payee bigint NOT NULL,"
    " amount bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now())",
)


def create_tables(conn: psycopg.Connection[Any]) -> None:
    """Each DDL statement in a transaction of its own (DSQL's rule)."""
    for statement in DDL:
        _one_statement(conn, statement)


#: Tries of one set-up statement that conflicts (DSQL OC000/OC001: a concurrent
#: change to the data or to the schema; PostgreSQL 40001).
SETUP_ATTEMPTS = 10


def _one_statement(conn: psycopg.Connection[Any], query: str, params: tuple = ()) -> int:
    """Run one statement in a transaction of its own, retried on 40001; its row count."""
    for attempt in range(1, SETUP_ATTEMPTS + 1):
        try:
            with conn.transaction():
                return conn.execute(query, params).rowcount
        except psycopg.errors.SerializationFailure:
            if attempt == SETUP_ATTEMPTS:
                raise
            time.sleep(min(1.0, 0.01 * 2**attempt))
    raise AssertionError("unreachable")


def _delete_in_batches(conn: psycopg.Connection[Any], table: str, where: str = "true", params: tuple = ()) -> int:
    # DSQL has no TRUNCATE and caps rows per transaction, so delete by key in slices.
    deleted = 0
    query = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {where} LIMIT {BATCH_ROWS})"
    while True:
        n = _one_statement(conn, query, params)
        deleted += n
        if n < BATCH_ROWS:
            return deleted


def reset(conn: psycopg.Connection[Any], accounts: int, initial_balance: int, *, truncate: bool = True) -> None:
    """Bring the bank to its initial state: ``accounts`` rows of ``initial_balance``, empty ledger.

    ``truncate`` (PostgreSQL) empties the ledger in one statement; without it
    (DSQL) rows are deleted in batches.
    """
    create_tables(conn)
    if truncate:
        _one_statement(conn, "TRUNCATE transfers")
    else:
        _delete_in_batches(conn, "transfers")
    _delete_in_batches(conn, "accounts", "id > %s OR id < 1", (accounts,))
    for first in range(1, accounts + 1, BATCH_ROWS):
        last = min(accounts, first + BATCH_ROWS - 1)
        _one_statement(
            conn,
            "INSERT INTO accounts (id, balance) SELECT g, %s FROM generate_series(%s::bigint, %s::bigint) g"
            " ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance",
            (initial_balance, first, last),
        )


@dataclass(frozen=True)
class Invariant:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ledger_ids(conn: psycopg.Connection[Any], ids: Iterable[str]) -> set[str]:
    """Which of these transfer ids the ledger holds (resolves ambiguous commits)."""
    wanted = list(ids)
    found: set[str] = set()
    for i in range(0, len(wanted), BATCH_ROWS):
        rows = conn.execute("SELECT id::text FROM transfers WHERE id = ANY(%s::uuid[])", (wanted[i : i + BATCH_ROWS],)).fetchall()
        found.update(r[0] for r in rows)
    return found


def check_invariants(
    conn: psycopg.Connection[Any],
    accounts: int,
    initial_balance: int,
    committed_ids: list[str],
    *,
    joint_minimum: int | None = None,
) -> list[Invariant]:
    """The bank's invariants after a run, against the commits loadgen recorded.

    ``joint_minimum``: the joint-withdrawal shapes' rule, that every customer's two
    accounts still sum to at least this (broken by write skew).
    """
    total, negatives, rows = conn.execute(
        "SELECT coalesce(sum(balance), 0), count(*) FILTER (WHERE balance < 0), count(*) FROM accounts"
    ).fetchone() or (0, 0, 0)
    expected_total = accounts * initial_balance
    ledger = {r[0] for r in conn.execute("SELECT id::text FROM transfers")}
    recorded = set(committed_ids)
    duplicates = len(committed_ids) - len(recorded)
    missing = recorded - ledger  # recorded as committed, absent from the ledger
    extra = ledger - recorded  # in the ledger, never recorded as committed
    conn.rollback()
    checks = [
        Invariant(
            "money_conserved",
            total == expected_total and rows == accounts,
            f"total balance {total} over {rows} accounts, expected {expected_total} over {accounts}",
        ),
        Invariant("no_negative_balance", negatives == 0, f"{negatives} accounts below zero"),
        Invariant(
            "ledger_matches_commits",
            not missing and not extra,
            f"{len(ledger)} ledger rows, {len(recorded)} recorded commits"
            + (f", {len(missing)} recorded but not in the ledger" if missing else "")
            + (f", {len(extra)} in the ledger but not recorded" if extra else ""),
        ),
        Invariant("no_duplicate_transfer", duplicates == 0, f"{duplicates} transfer ids committed twice"),
    ]
    if joint_minimum is not None:
        below, customers = customers_below_minimum(conn, accounts, joint_minimum)
        checks.append(
            Invariant(
                "joint_minimum_kept",
                below == 0,
                f"{below} of {customers} customers below the joint minimum {joint_minimum}" + (" (write skew)" if below else ""),
            )
        )
    return checks
