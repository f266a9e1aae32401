"""Set-up on the real embedded PostgreSQL as DSQL would need it: conflicts retried, what exists not created,
a least-privilege role that can run, a reset whose cost does not grow with the ledger."""

from __future__ import annotations

import locust  # noqa: F401  - must precede psycopg

# isort: split

import uuid
from collections.abc import Iterator

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
