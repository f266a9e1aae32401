"""loadgen.db.gevent_connection: psycopg waiting through gevent's loop stays cooperative, correct and honest about failures."""

from __future__ import annotations

import time
from pathlib import Path

import gevent
import psycopg
import pytest

from loadgen.db.gevent_connection import GeventConnection, wait_gevent
from loadgen.engine.users import SharedUserState
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import AttemptRecorder
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres


def test_queries_wait_cooperatively(embedded: EmbeddedPostgres) -> None:
    conns = [GeventConnection.connect(embedded.conninfo, autocommit=True) for _ in range(4)]
    try:
        t0 = time.monotonic()
        jobs = [gevent.spawn(c.execute, "SELECT pg_sleep(0.5)") for c in conns]
        gevent.joinall(jobs, raise_error=True)
        # Four half-second queries at once take about half a second, not two.
        assert time.monotonic() - t0 < 1.5
        # Results, parameters and big rows come back intact.
        row = conns[0].execute("SELECT %s::int + 1, repeat('x', 200000)", (41,)).fetchone()
        assert row is not None and row[0] == 42 and len(row[1]) == 200000
    finally:
        for c in conns:
            c.close()


def test_a_killed_backend_is_an_error_not_a_hang(embedded: EmbeddedPostgres, conn: psycopg.Connection) -> None:
    victim = GeventConnection.connect(embedded.conninfo, autocommit=True)
    pid = victim.info.backend_pid
    job = gevent.spawn(victim.execute, "SELECT pg_sleep(30)")
    gevent.sleep(0.3)
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        job.get(timeout=10)
    victim.close()


def test_wait_timeout_is_psycopgs(embedded: EmbeddedPostgres) -> None:
    from psycopg.generators import fetch_many

    c = GeventConnection.connect(embedded.conninfo, autocommit=True)
    try:
        c.pgconn.send_query(b"SELECT pg_sleep(5)")
        with pytest.raises(psycopg.errors._WaitTimeout):
            wait_gevent(fetch_many(c.pgconn), c.pgconn.socket, timeout=0.3)
    finally:
        c.pgconn.finish()  # mid-query: nothing to say to the server
        c.close()


def test_the_users_shared_connections_use_it(target: EmbeddedTarget, tmp_path: Path) -> None:
    shared = SharedUserState(Scenario(users=2), target, AttemptRecorder("r"))
    try:
        slot = shared.connections.for_user()
        assert isinstance(slot.getconn(), GeventConnection)
    finally:
        shared.close()
