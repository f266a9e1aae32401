"""A connection lost inside COMMIT, made to happen on purpose: the server committed, the client never heard.

The COMMIT goes out, the test waits until another session sees the ledger row (so
the server has certainly committed), then shuts the socket down before psycopg
reads the answer. The retry loop must neither lose the transfer nor run it twice:
the next try finds its id in the ledger and records ``ambiguous_committed``.
"""

from __future__ import annotations

import locust  # noqa: F401  - gevent's patching before psycopg

# isort: split

import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from loadgen.db.schema import check_invariants, reset
from loadgen.db.transfer import ATTEMPT_FIELDS, AttemptRow, TransferRequest, run_transfer, transfer_once
from loadgen.model.retry import RetryPolicy
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres


class LosesCommitReply(psycopg.Connection[Any]):
    """A real connection whose COMMIT reaches the server but whose reply never reaches the client."""

    observer: psycopg.Connection[Any]
    txn_id: str

    def commit(self) -> None:
        self.pgconn.send_query(b"COMMIT")
        self.pgconn.flush()
        deadline = time.monotonic() + 30
        while self.observer.execute("SELECT count(*) FROM transfers WHERE id = %s", (self.txn_id,)).fetchone() != (1,):
            assert time.monotonic() < deadline, "the server never committed"
            time.sleep(0.01)
        # The same descriptor (not a copy), shut down both ways, then handed back to libpq.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=self.fileno())
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.detach()
        super().commit()  # the reply is gone: psycopg reports a lost connection


@pytest.fixture
def run_target(embedded: EmbeddedPostgres) -> Iterator[EmbeddedTarget]:
    target = EmbeddedTarget(embedded)
    target.begin_run("run-ambiguous", 2)
    with psycopg.connect(target.conninfo(), autocommit=True) as c:
        reset(c, 10, 100)
    try:
        yield target
    finally:
        target.end_run()


def test_commit_whose_reply_is_lost_is_ambiguous_committed_once(run_target: EmbeddedTarget) -> None:
    req = TransferRequest.new(1, 2, 5)
    rows: list[AttemptRow] = []
    with psycopg.connect(run_target.conninfo(), autocommit=True) as observer:
        first = LosesCommitReply.connect(run_target.conninfo())
        first.observer, first.txn_id = observer, req.txn_id
        conns: list[psycopg.Connection[Any]] = [first]

        def getconn() -> psycopg.Connection[Any]:
            return conns.pop(0) if conns else psycopg.connect(run_target.conninfo())

        result = run_transfer(req, getconn, lambda c: c.close(), RetryPolicy(), random.Random(1), rows.append, transfer_once)

        attempts = [dict(zip(ATTEMPT_FIELDS, r)) for r in rows]
        assert [(a["attempt"], a["outcome"], a["commit_unknown"]) for a in attempts] == [
            (1, "connection_error", True),
            (2, "ambiguous_committed", False),
        ]
        assert result.outcome == "ambiguous_committed" and result.attempts == 2
        # Exactly one ledger row, and the money moved once.
        assert observer.execute("SELECT count(*) FROM transfers WHERE id = %s", (req.txn_id,)).fetchone() == (1,)
        assert observer.execute("SELECT balance FROM accounts WHERE id IN (1, 2) ORDER BY id").fetchall() == [(95,), (105,)]
        checks = {i.name: i for i in check_invariants(observer, 10, 100, [req.txn_id])}
        assert all(i.ok for i in checks.values()), checks
