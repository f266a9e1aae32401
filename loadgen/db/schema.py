"""The bank: tables, seeding, reset and the invariants checked after every run (of every kind).

DSQL-compatible from day one: no foreign keys, no sequences, one DDL statement per
transaction, DDL never mixed with DML, at most 1,000 rows written per transaction
when seeding or resetting, and invariants read in primary-key pages. Set-up creates
only what is missing and resets in constant time (see :func:`reset`), so a role with
data privileges alone can run it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from loadgen.db.classify import classify
from loadgen.model.idgroups import id_groups, last_bytes
from loadgen.model.outcomes import Outcome

__all__ = [
    "BATCH_ROWS",
    "READ_PAGE_ROWS",
    "create_tables",
    "reset",
    "SetupConnection",
    "check_invariants",
    "Invariant",
    "ledger_ids",
    "sessions_left",
    "joint_customers_accounts",
    "customers_below_minimum",
]

#: Rows written per set-up transaction. DSQL refuses a transaction that modifies more
#: than 3,000 rows (54000, not retried); AWS's samples and the talk's set-up use 1,000,
#: which also leaves room below DSQL's 10 MiB per transaction.
BATCH_ROWS = 1000
#: Rows one invariant read covers, each read its own transaction: far below DSQL's
#: 128 MiB per query (a page of ledger ids is about 4 MB of text) and 5 minutes per
#: transaction, however large the bank or ledger. 100,000 rather than 10,000: a tenth of the
#: round trips, and the ledger check of 5 M attempts 3.6 -> 3.0 s (BENCHMARKS.md).
READ_PAGE_ROWS = 100_000
#: Compares the ledger's pages of ids with the commits recorded: (ledger rows, recorded ids, missing, extra, duplicates).
LedgerComparer = Callable[[Iterator[pa.Array]], tuple[int, int, int, int, int]]

#: The bank's tables, each created by one statement (IF NOT EXISTS: a retried or raced creation is harmless).
DDL = {
    "accounts": "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)",
    "transfers": "CREATE TABLE IF NOT EXISTS transfers ("
    " id uuid PRIMARY KEY, payer bigint NOT NULL, payee bigint NOT NULL,"
    " amount bigint NOT NULL, committed_at timestamptz NOT NULL DEFAULT now())",
}

#: Tries of one set-up statement that conflicts (DSQL OC000/OC001: a concurrent
#: change to the data or to the schema; PostgreSQL 40001), or whose connection was lost.
SETUP_ATTEMPTS = 10

Connect = Callable[[], "psycopg.Connection[Any]"]
#: Whether each table exists where the run's unqualified names resolve (the search path).
CATALOGUE_QUERY = "SELECT to_regclass('accounts') IS NOT NULL, to_regclass('transfers') IS NOT NULL"


class SetupConnection:
    """loadgen's own connection for set-up, replaced when lost (DSQL ends every connection
    at 60 minutes; networks fail), through ``reconnect`` when one is given.

    Every set-up statement is idempotent (IF [NOT] EXISTS, upserts, deletes by key), so a
    statement whose connection broke is simply run again on the new one.
    """

    def __init__(self, conn: psycopg.Connection[Any], reconnect: Connect | None = None) -> None:
        self.conn = conn
        self.reconnect = reconnect
        #: Connections replaced so far.
        self.replaced = 0

    def statement(self, query: str, params: tuple = ()) -> int:
        """Run one statement in a transaction of its own, retried on a conflict or a lost connection; its row count.

        A conflict as the retry loop knows it (loadgen.db.classify): 40001, and DSQL's
        OC000/OC001, which may arrive as their own SQLSTATE in a plain ``DatabaseError``
        (OC001 follows DDL: the schema changed under the statement).
        """
        for attempt in range(1, SETUP_ATTEMPTS + 1):
            try:
                with self.conn.transaction():
                    # Not prepared: after a DROP, psycopg would send DEALLOCATE ALL inside the DDL's
                    # transaction (its cache of prepared statements is cleared), mixing it with the DDL.
                    return self.conn.execute(query, params, prepare=False).rowcount
            except psycopg.Error as e:
                if attempt == SETUP_ATTEMPTS or not self._recovered(e):
                    raise
                if not self.conn.closed:
                    time.sleep(min(1.0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    def _recovered(self, e: psycopg.Error) -> bool:
        """Whether the statement that raised ``e`` may be tried again: a conflict, or a lost
        connection now replaced."""
        if self.conn.closed:
            if self.reconnect is None:
                return False
            self.conn = self.reconnect()
            self.replaced += 1
            return True
        return classify(e).outcome == Outcome.CONFLICT

    def existing_tables(self) -> set[str] | None:
        """Which of the bank's tables the run's names resolve to already (the catalogue, not CREATE, decides:
        PostgreSQL checks the CREATE privilege before IF NOT EXISTS, so a role without it could not run).

        None when the server will not say (a catalogue function it lacks): set-up then
        falls back to statements that need no answer (IF [NOT] EXISTS).
        """
        for attempt in range(1, SETUP_ATTEMPTS + 1):
            try:
                row = self.conn.execute(CATALOGUE_QUERY, prepare=False).fetchone()
                self.conn.rollback()  # a no-op in autocommit
                assert row is not None
                return {name for name, there in zip(("accounts", "transfers"), row) if there}
            except psycopg.Error as e:
                if not self.conn.closed and classify(e).outcome != Outcome.CONFLICT:
                    self.conn.rollback()  # the server refused the question, not the connection
                    return None
                if attempt == SETUP_ATTEMPTS or not self._recovered(e):
                    raise
        raise AssertionError("unreachable")


def _setup(conn: psycopg.Connection[Any] | SetupConnection) -> SetupConnection:
    return conn if isinstance(conn, SetupConnection) else SetupConnection(conn)


def create_tables(conn: psycopg.Connection[Any] | SetupConnection) -> None:
    """The tables that do not exist yet, each DDL statement in a transaction of its own (DSQL's rule).

    Nothing that exists is created again: a role with only USAGE on the schema and data
    privileges on tables made for it (docs/dsql.md) runs set-up without a CREATE privilege.
    """
    setup = _setup(conn)
    existing = setup.existing_tables() or set()  # unknown: IF NOT EXISTS decides
    for table, statement in DDL.items():
        if table not in existing:
            setup.statement(statement)


def _one_statement(conn: psycopg.Connection[Any] | SetupConnection, query: str, params: tuple = ()) -> int:
    """One set-up statement in a transaction of its own (:meth:`SetupConnection.statement`); its row count."""
    return _setup(conn).statement(query, params)


def _delete_in_batches(setup: SetupConnection, table: str, where: str = "true", params: tuple = ()) -> int:
    # DSQL caps rows per transaction, so delete by key in slices.
    deleted = 0
    query = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {where} LIMIT {BATCH_ROWS})"
    while True:
        n = setup.statement(query, params)
        deleted += n
        if n < BATCH_ROWS:
            return deleted


def _drop(setup: SetupConnection, table: str) -> bool:
    """Drop ``table`` (one DDL statement, its own transaction); False when this role may not (not its owner)."""
    try:
        setup.statement(f"DROP TABLE IF EXISTS {table}")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def _truncate(setup: SetupConnection) -> bool:
    """Empty both tables in one statement; False when this role lacks the TRUNCATE privilege."""
    try:
        setup.statement("TRUNCATE transfers, accounts")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def reset(
    conn: psycopg.Connection[Any] | SetupConnection,
    accounts: int,
    initial_balance: int,
    *,
    truncate: bool = True,
    reconnect: Connect | None = None,
) -> SetupConnection:
    """Bring the bank to its initial state: ``accounts`` rows of ``initial_balance``, empty ledger.

    In constant time whatever the previous run left (an hour at 4,000 transfers/s leaves
    some 15 million ledger rows): ``truncate`` (PostgreSQL) empties both tables with one
    TRUNCATE; without it (DSQL, which has none) both tables are dropped and made again,
    one DDL statement per transaction (DSQL's rule; OC001 on the statement after a DDL is
    retried). Only a role that may not do that (data privileges on tables another role
    owns) empties them by DELETE, in batches of :data:`BATCH_ROWS` on DSQL: then the cost
    grows with the ledger. Then the accounts are written in batches.

    ``reconnect`` opens a new set-up connection when this one is lost. Returns the set-up
    connection, which may be a new one.
    """
    setup = conn if isinstance(conn, SetupConnection) else SetupConnection(conn, reconnect)
    emptied: set[str] = set()
    if truncate:
        create_tables(setup)
        if _truncate(setup):
            emptied = {"accounts", "transfers"}
    else:
        known = setup.existing_tables()
        existing = set(DDL) if known is None else known  # unknown: DROP IF EXISTS either way
        emptied = {table for table in ("transfers", "accounts") if table in existing and _drop(setup, table)}
        create_tables(setup)
        emptied |= set(DDL) - existing  # made just now: empty
    if "transfers" not in emptied:
        if truncate:
            setup.statement("DELETE FROM transfers")
        else:
            _delete_in_batches(setup, "transfers")
    if "accounts" not in emptied:
        _delete_in_batches(setup, "accounts", "id > %s OR id < 1", (accounts,))
    for first in range(1, accounts + 1, BATCH_ROWS):
        last = min(accounts, first + BATCH_ROWS - 1)
        setup.statement(
            "INSERT INTO accounts (id, balance) SELECT g, %s FROM generate_series(%s::bigint, %s::bigint) g"
            " ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance",
            (initial_balance, first, last),
        )
    return setup


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
    committed_ids: Sequence[str] | pa.Array | pa.ChunkedArray,
    *,
    joint_minimum: int | None = None,
    compare_ledger: LedgerComparer | None = None,
) -> list[Invariant]:
    """The bank's invariants after a run, against the commits loadgen recorded.

    Read in primary-key pages, each its own transaction: called once every writer
    has stopped, so the pages add up to one consistent picture.

    The ledger and the recorded commits are compared as Arrow strings (some 40 bytes an
    id, where a Python set costs about 130), a sixteenth at a time: hashing every id at
    once would cost about 180 bytes an id at its peak, at the end of a run of hours.

    ``joint_minimum``: the joint-withdrawal shapes' rule, that every customer's two
    accounts still sum to at least this (broken by write skew).

    ``compare_ledger``: given, the ledger's pages are handed to it as they are read and
    ``committed_ids`` is not used; it returns (ledger rows, recorded ids, missing, extra,
    duplicates). A run of hours compares out of core (loadgen.results.outofcore.compare_ledger).
    """
    total, negatives, rows = _account_totals(conn)
    expected_total = accounts * initial_balance
    if compare_ledger is not None:
        ledger_rows, recorded_ids, missing, extra, duplicates = compare_ledger(_ledger_pages(conn))
        return _checks(
            conn, accounts, expected_total, total, negatives, rows, ledger_rows, recorded_ids, missing, extra, duplicates, joint_minimum
        )
    ledger = _ledger(conn)  # unique: the ledger's primary key
    given = committed_ids if isinstance(committed_ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(committed_ids), pa.string())
    # Compared a group at a time (loadgen.model.idgroups: equal ids share their last byte).
    stored_groups = dict(id_groups(last_bytes(ledger)))
    recorded_ids = missing = extra = 0
    for key, positions in id_groups(last_bytes(given)):
        recorded = pc.unique(pc.take(given, positions))
        stored = pc.take(ledger, stored_groups.pop(key, np.empty(0, dtype=np.int64)))
        recorded_ids += len(recorded)
        missing += len(recorded) - _count_true(pc.is_in(recorded, value_set=stored))  # recorded as committed, not in the ledger
        extra += len(stored) - _count_true(pc.is_in(stored, value_set=recorded))  # in the ledger, never recorded as committed
    extra += sum(len(group) for group in stored_groups.values())  # groups of the ledger nobody recorded
    duplicates = len(given) - recorded_ids
    ledger_rows = len(ledger)
    del given, ledger, stored_groups
    return _checks(
        conn, accounts, expected_total, total, negatives, rows, ledger_rows, recorded_ids, missing, extra, duplicates, joint_minimum
    )


def _checks(
    conn: psycopg.Connection[Any],
    accounts: int,
    expected_total: int,
    total: int,
    negatives: int,
    rows: int,
    ledger_rows: int,
    recorded_ids: int,
    missing: int,
    extra: int,
    duplicates: int,
    joint_minimum: int | None,
) -> list[Invariant]:
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
            f"{ledger_rows} ledger rows, {recorded_ids} recorded commits"
            + (f", {missing} recorded but not in the ledger" if missing else "")
            + (f", {extra} in the ledger but not recorded" if extra else ""),
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


_ACCOUNTS_PAGE = (
    "SELECT max(id), coalesce(sum(balance), 0), count(*) FILTER (WHERE balance < 0), count(*)"
    " FROM (SELECT id, balance FROM accounts WHERE id > %s ORDER BY id LIMIT %s) page"
)


def _account_totals(conn: psycopg.Connection[Any]) -> tuple[int, int, int]:
    """(sum of balances, accounts below zero, accounts), a page of ids at a time."""
    total = negatives = rows = 0
    after = -(2**63)  # below every bigint id
    while True:
        row = conn.execute(_ACCOUNTS_PAGE, (after, READ_PAGE_ROWS)).fetchone()
        conn.rollback()  # each page its own transaction (a no-op in autocommit)
        assert row is not None
        last, page_total, page_negatives, page_rows = row
        total, negatives, rows = total + int(page_total), negatives + int(page_negatives), rows + int(page_rows)
        if page_rows < READ_PAGE_ROWS:
            return total, negatives, rows
        after = int(last)


#: A page of the ledger's ids walks the primary key. The text is named ``txn``: named ``id``, ORDER BY
#: would sort the text output instead, and every page would scan and sort the whole ledger.
LEDGER_FIRST_PAGE = "SELECT id::text AS txn FROM transfers ORDER BY id LIMIT %s"
LEDGER_NEXT_PAGE = "SELECT id::text AS txn FROM transfers WHERE id > %s::uuid ORDER BY id LIMIT %s"


def _ledger(conn: psycopg.Connection[Any]) -> pa.ChunkedArray:
    """Every transfer id in the ledger (as text), a page of ids at a time in key order."""
    return pa.chunked_array(list(_ledger_pages(conn)), pa.string())


def _ledger_pages(conn: psycopg.Connection[Any]) -> Iterator[pa.Array]:
    """The ledger's transfer ids (as text), a page at a time in key order (:data:`LEDGER_NEXT_PAGE`)."""
    after: str | None = None
    while True:
        if after is None:
            page = conn.execute(LEDGER_FIRST_PAGE, (READ_PAGE_ROWS,)).fetchall()
        else:
            page = conn.execute(LEDGER_NEXT_PAGE, (after, READ_PAGE_ROWS)).fetchall()
        conn.rollback()
        yield pa.array([r[0] for r in page], pa.string())
        if len(page) < READ_PAGE_ROWS:
            return
        after = page[-1][0]


def _count_true(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(mask).as_py() or 0)


def sessions_left(conn: psycopg.Connection[Any], application_name: str, dialect: str) -> int | None:
    """loadgen's sessions still open on the server after its connections closed (should be 0).

    ``None`` when it cannot be known: on DSQL (``pg_stat_activity`` is not known to
    work there; AWS's own connector tests avoid it), or when the server refuses the
    query. Never raises a database error: a side count must not cost the invariants.
    """
    if dialect == "dsql":
        return None
    try:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchone()
        conn.rollback()
    except psycopg.Error:
        if not conn.closed:
            try:
                conn.rollback()
            except psycopg.Error:
                pass
        return None
    return int(row[0]) if row else 0


def joint_customers_accounts(accounts: int) -> int:
    """How many of the accounts belong to customers (an even number, about half)."""
    return max(2, (accounts // 2) // 2 * 2)


def customers_below_minimum(conn: psycopg.Connection[Any], accounts: int, minimum: int) -> tuple[int, int]:
    """(customers whose two accounts sum below ``minimum``, customers): the write-skew check.

    Read in pages of account ids (a customer's two accounts always in one page), each
    its own transaction, so a large bank stays within DSQL's per-query and
    per-transaction limits; called once the writers have stopped.
    """
    last = joint_customers_accounts(accounts)
    below = customers = 0
    for first in range(1, last + 1, READ_PAGE_ROWS):  # READ_PAGE_ROWS is even: pages hold whole customers
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE s < %s), count(*) FROM"
            " (SELECT (id + 1) / 2 AS customer, sum(balance) AS s FROM accounts WHERE id BETWEEN %s AND %s GROUP BY 1) t",
            (minimum, first, min(last, first + READ_PAGE_ROWS - 1)),
        ).fetchone()
        conn.rollback()
        assert row is not None
        below, customers = below + int(row[0]), customers + int(row[1])
    return below, customers
