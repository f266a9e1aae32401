"""Set-up on the real embedded PostgreSQL as DSQL would need it: conflicts retried, what exists not created,
a least-privilege role that can run, a reset whose cost does not grow with the ledger."""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from loadgen.db import schema
from loadgen.targets.embedded import EmbeddedPostgres


@pytest.fixture
def db(embedded: EmbeddedPostgres) -> Iterator[str]:
    """A database of its own for one test; its connection string."""
    name = f"lg_setup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(embedded.conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    try:
        yield embedded.conninfo_for(name)
    finally:
        with psycopg.connect(embedded.conninfo, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)".encode())


@pytest.mark.parametrize(
    ("sqlstate", "text"),
    [
        ("OC000", "mutation conflicts with another transaction, retry as needed (OC000)"),
        ("OC001", "schema has been updated by another transaction, please retry: (OC001)"),
    ],
)
def test_setup_retries_dsql_conflicts_that_arrive_as_plain_database_errors(db: str, sqlstate: str, text: str) -> None:
    """DSQL may send OC000/OC001 as the SQLSTATE itself: psycopg knows no class for it (a plain DatabaseError)."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE tries")
        # Fails twice with the OCC code as SQLSTATE (the sequence counts across rolled-back tries), then passes.
        flaky = f"DO $$ BEGIN IF nextval('tries') < 3 THEN RAISE EXCEPTION '{text}' USING ERRCODE = '{sqlstate}'; END IF; END $$"
        with pytest.raises(psycopg.DatabaseError) as seen:
            conn.execute(flaky)
        assert type(seen.value) is psycopg.DatabaseError and seen.value.sqlstate == sqlstate  # what set-up meets
        schema._one_statement(conn, flaky)  # the third try passes: retried, not raised
        row = conn.execute("SELECT last_value FROM tries").fetchone()
        assert row is not None and row[0] == 3


def test_setup_does_not_retry_other_errors(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE tries")
        broken = "DO $$ BEGIN PERFORM nextval('tries'); RAISE EXCEPTION 'no' USING ERRCODE = 'XX000'; END $$"
        with pytest.raises(psycopg.errors.InternalError_):
            schema._one_statement(conn, broken)
        row = conn.execute("SELECT last_value FROM tries").fetchone()
        assert row is not None and row[0] == 1


def test_a_connection_lifetime_counts_from_its_opening_not_from_its_first_user(target) -> None:  # type: ignore[no-untyped-def]
    """DSQL ends a connection 60 minutes after it opened: a warmed-up connection taken late must not outlive that."""
    import time

    from loadgen.targets.connection import UserConnections

    target.max_lifetime_s = 0.5  # stands for DSQL's 60 minutes (50 with loadgen's margin)
    connections = UserConnections(target)
    try:
        connections.prewarm(2)
        early = connections.for_user()
        first = early.getconn()  # taken at once: kept
        assert early.getconn() is first and connections.opened == 2
        time.sleep(0.6)  # both warmed connections are now past their lifetime
        late = connections.for_user()
        fresh = late.getconn()
        assert connections.opened == 3, "the spare that waited past its lifetime was replaced, not handed over"
        assert early.getconn() is not first, "the early user's connection expired too"
        assert connections.opened == 4 and late.getconn() is fresh
    finally:
        connections.close()


# -- set-up a least-privilege role can run (issue 22, point 3) -------------------

RUNNER = "lg_least_privilege"


@pytest.fixture
def restricted(embedded: EmbeddedPostgres, db: str) -> Iterator[str]:
    """The tables made by their owner; a login role with USAGE on the schema and data privileges
    on them, and nothing else (no CREATE anywhere, no TRUNCATE, not the owner); its DSN."""
    with psycopg.connect(db, autocommit=True) as owner:
        schema.reset(owner, 10, 100)
        owner.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        if owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (RUNNER,)).fetchone():
            owner.execute(f"DROP OWNED BY {RUNNER}".encode())
            owner.execute(f"DROP ROLE {RUNNER}".encode())
        owner.execute(f"CREATE ROLE {RUNNER} LOGIN".encode())
        owner.execute(f"GRANT USAGE ON SCHEMA public TO {RUNNER}".encode())
        owner.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, transfers TO {RUNNER}".encode())
        owner.execute("INSERT INTO transfers (id, payer, payee, amount) SELECT gen_random_uuid(), 1, 2, 1 FROM generate_series(1, 5)")
    try:
        yield db.replace("user=postgres", f"user={RUNNER}")
    finally:
        with psycopg.connect(db, autocommit=True) as owner:
            owner.execute(f"DROP OWNED BY {RUNNER}".encode())  # its grants in this database
        with psycopg.connect(embedded.conninfo, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {RUNNER}".encode())


@pytest.mark.parametrize("truncate", [True, False], ids=["postgresql", "dsql-path"])
def test_a_role_with_data_privileges_only_can_reset(restricted: str, truncate: bool) -> None:
    """PostgreSQL checks CREATE on the schema before IF NOT EXISTS skips: the catalogue is asked first.
    Not the owner: DROP and TRUNCATE are refused, and the tables are emptied by DELETE instead."""
    with psycopg.connect(restricted, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(schema.DDL["accounts"])  # what every reset used to send
        schema.reset(conn, 20, 50, truncate=truncate)
        assert conn.execute("SELECT count(*), sum(balance) FROM accounts").fetchone() == (20, 1000)
        assert conn.execute("SELECT count(*) FROM transfers").fetchone() == (0,)


@pytest.mark.slow
def test_a_least_privilege_role_runs_loadgen_on_postgresql(restricted: str, tmp_path: Path) -> None:
    """The whole run as that role (the run's schema falls back to where it stands: public)."""
    from commandline import run_cli

    proc = run_cli(
        "run", "--target", "postgres", "--dsn", restricted, "--accounts", "30", "--users", "3",
        "--duration", "1", "--out", str(tmp_path), "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads(next(tmp_path.iterdir()).joinpath("run.json").read_text())
    assert run["target"]["schema"] == "public"
    assert all(i["ok"] for i in run["invariants"]), run["invariants"]
    assert run["summary"]["commits"] > 0


# -- reset in constant time, on a connection replaced when lost (point 4) ---------


class CountingSetup(schema.SetupConnection):
    """Counts the set-up statements a reset sends."""

    sent = 0

    def statement(self, query: str, params: tuple = ()) -> int:
        self.sent += 1
        return super().statement(query, params)


@pytest.mark.parametrize("truncate", [True, False], ids=["postgresql", "dsql-path"])
def test_reset_costs_the_same_whatever_the_ledger_holds(db: str, truncate: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DSQL path drops and remakes both tables (before: 1,000-row DELETEs, one transaction each, a
    statement per 1,000 ledger rows); PostgreSQL truncates both. Batches of 10 rows stand for DSQL's 1,000."""
    monkeypatch.setattr(schema, "BATCH_ROWS", 10)
    with psycopg.connect(db, autocommit=True) as conn:
        counts = []
        for ledger in (0, 95):
            schema.reset(conn, 30, 100, truncate=truncate)
            conn.execute(
                "INSERT INTO transfers (id, payer, payee, amount) SELECT gen_random_uuid(), 1, 2, 1 FROM generate_series(1, %s)", (ledger,)
            )
            conn.execute("INSERT INTO accounts (id, balance) SELECT g, 1 FROM generate_series(31, 75) g")  # a bigger bank before
            setup = CountingSetup(conn)
            schema.reset(setup, 30, 100, truncate=truncate)
            counts.append(setup.sent)
            assert conn.execute("SELECT count(*), sum(balance) FROM accounts").fetchone() == (30, 3000)
            assert conn.execute("SELECT count(*) FROM transfers").fetchone() == (0,)
        assert counts[0] == counts[1], f"statements with an empty ledger and with 95 rows: {counts}"
        # drop both, create both, three account batches (or one TRUNCATE and three batches)
        assert counts[1] == (1 + 3 if truncate else 2 + 2 + 3)


def test_a_lost_set_up_connection_is_replaced(embedded: EmbeddedPostgres, db: str) -> None:
    """DSQL ends a connection at 60 minutes (and networks fail): set-up opens another and goes on."""
    opened: list[psycopg.Connection] = []

    def reconnect() -> psycopg.Connection:
        opened.append(psycopg.connect(db, autocommit=True))
        return opened[-1]

    with psycopg.connect(embedded.conninfo, autocommit=True) as admin:
        for reconnecting in (None, reconnect):
            with psycopg.connect(db, autocommit=True) as victim:
                admin.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
                if reconnecting is None:
                    with pytest.raises(psycopg.OperationalError):  # nothing to replace it with
                        schema.reset(victim, 10, 100, truncate=False)
                else:
                    setup = schema.reset(victim, 10, 100, truncate=False, reconnect=reconnecting)
                    assert setup.replaced == 1 and setup.conn is opened[0]
                    assert setup.conn.execute("SELECT count(*) FROM accounts").fetchone() == (10,)
    for c in opened:
        c.close()


@pytest.mark.parametrize("truncate", [True, False], ids=["postgresql", "dsql-path"])
def test_set_up_without_an_answer_from_the_catalogue_falls_back_to_if_exists(
    db: str, truncate: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a server lack the catalogue function (not known for DSQL: it needs a cluster to find out), set-up
    still runs as before: IF [NOT] EXISTS statements that need no answer."""
    monkeypatch.setattr(schema, "CATALOGUE_QUERY", "SELECT no_such_catalogue_function('accounts'), true")
    with psycopg.connect(db, autocommit=True) as conn:
        assert schema.SetupConnection(conn).existing_tables() is None
        schema.reset(conn, 12, 5, truncate=truncate)  # on an empty database
        conn.execute("INSERT INTO transfers (id, payer, payee, amount) VALUES (gen_random_uuid(), 1, 2, 1)")
        conn.execute("UPDATE accounts SET balance = 0 WHERE id = 1")
        schema.reset(conn, 12, 5, truncate=truncate)  # over the tables and rows of a run
        assert conn.execute("SELECT count(*), sum(balance) FROM accounts").fetchone() == (12, 60)
        assert conn.execute("SELECT count(*) FROM transfers").fetchone() == (0,)
