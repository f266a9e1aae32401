"""cc occ: first committer wins, decided at COMMIT, as on DSQL, for every built-in shape.

Two real sessions on the embedded server, interleaved by the test: each runs its
shape (loadgen.db.occ) in a greenlet that stops just before its COMMIT round trip
until the test lets it go, so the order of the writes and of the commits is the
test's to choose.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import gevent
import psycopg
import pytest
from gevent.event import Event

from loadgen.db.cc import session_settings, with_session_settings
from loadgen.db.gwait import GeventConnection
from loadgen.db.occ import OCC_SHAPES, Snapshot, occ_shape
from loadgen.db.schema import reset
from loadgen.db.shapes import JointRequest, MultiLegRequest, audit, read_balance
from loadgen.db.transfer import TransferRequest, new_txn_id, run_transfer
from loadgen.engine import runner
from loadgen.model.attempt import Attempt
from loadgen.model.occsim import OCC_STATEMENTS, statements
from loadgen.model.retry import RetryPolicy
from loadgen.model.scenario import Scenario
from loadgen.report.data import load_run
from loadgen.report.failures import COLUMNS, occ_fidelity
from loadgen.report.whatif import inputs_from_run, predict
from loadgen.targets.base import EmbeddedTarget
from loadgen.targets.embedded import EmbeddedPostgres

INITIAL = 1000


class GatedConnection(GeventConnection):
    """A run's connection that stops before its COMMIT round trip until ``go`` is set."""

    at_commit: Event
    go: Event

    def delay(self, commit: bool = False) -> None:
        if commit:
            self.at_commit.set()
            self.go.wait(10)


class Session:
    """One session running one transfer in its own greenlet, up to COMMIT and then on the test's word."""

    def __init__(self, conninfo: str) -> None:
        self.conn = GatedConnection.connect(conninfo)
        self.conn.at_commit, self.conn.go = Event(), Event()
        self.rows: list[Attempt] = []
        self.greenlet: gevent.Greenlet | None = None

    def start(self, shape: str, req: TransferRequest) -> None:
        """Run ``req`` until it is about to COMMIT (every statement of it done)."""
        self.greenlet = gevent.spawn(
            run_transfer,
            req,
            lambda: self.conn,
            lambda c: None,
            RetryPolicy(max_attempts=1),
            random.Random(0),
            lambda row: self.rows.append(Attempt._make(row)),
            occ_shape(shape),
        )
        assert self.conn.at_commit.wait(10), "the transfer never reached COMMIT"
        assert not self.rows, f"a statement failed before COMMIT: {self.rows}"

    def commit(self) -> Attempt:
        assert self.greenlet is not None
        self.conn.go.set()
        self.greenlet.join(10)
        assert len(self.rows) == 1
        return self.rows[0]


@pytest.fixture
def conninfo(embedded: EmbeddedPostgres) -> str:
    with psycopg.connect(embedded.conninfo, autocommit=True) as c:
        reset(c, 20, INITIAL)
    return with_session_settings(embedded.conninfo, session_settings(Scenario(), sets_isolation=True, takes_row_locks=True))


@pytest.fixture
def two(conninfo: str) -> Iterator[tuple[Session, Session]]:
    a, b = Session(conninfo), Session(conninfo)
    yield a, b
    a.conn.close()
    b.conn.close()


def _balances(conninfo: str) -> dict[int, int]:
    with psycopg.connect(conninfo, autocommit=True) as c:
        return dict(c.execute("SELECT id, balance FROM accounts").fetchall())  # type: ignore[arg-type]


def _request(shape: str, payer: int, payee: int, amount: int) -> TransferRequest:
    """A request of the type ``shape`` takes; customers own accounts 1-10 (two each), merchants 11-20."""
    if shape == "multi-leg":
        return MultiLegRequest(new_txn_id(), payer, payee, amount, (payee,))
    if shape.startswith("joint-withdrawal"):
        return JointRequest(new_txn_id(), payer, payee, amount, minimum=0)
    return TransferRequest(new_txn_id(), payer, payee, amount)


def _lost_at_commit(row: Attempt) -> None:
    assert (row.outcome, row.sqlstate, row.failed_at) == ("conflict", "40001", "commit"), row


def _committed(row: Attempt) -> None:
    assert (row.outcome, row.failed_at) == ("committed", None), row


@pytest.mark.parametrize("shape", list(OCC_SHAPES))
def test_writes_a_then_b_commits_b_then_a_the_later_committer_fails(shape: str, two: tuple[Session, Session], conninfo: str) -> None:
    a, b = two
    a.start(shape, _request(shape, 1, 11, 1))  # A writes payer 1 first ...
    b.start(shape, _request(shape, 1, 12, 5))  # ... then B writes it too: neither waits, neither fails
    _committed(b.commit())  # B commits first and wins
    _lost_at_commit(a.commit())  # A, the later committer, fails at its COMMIT
    balances = _balances(conninfo)
    assert (balances[1], balances[11], balances[12]) == (INITIAL - 5, INITIAL, INITIAL + 5)  # B's write, and only B's


@pytest.mark.parametrize("shape", list(OCC_SHAPES))
def test_writes_and_commits_in_the_same_order_the_later_fails(shape: str, two: tuple[Session, Session], conninfo: str) -> None:
    a, b = two
    a.start(shape, _request(shape, 1, 11, 1))
    b.start(shape, _request(shape, 1, 12, 5))
    _committed(a.commit())
    _lost_at_commit(b.commit())
    balances = _balances(conninfo)
    assert (balances[1], balances[11], balances[12]) == (INITIAL - 1, INITIAL + 1, INITIAL)


@pytest.mark.parametrize("shape", list(OCC_SHAPES))
def test_disjoint_rows_both_commit(shape: str, two: tuple[Session, Session], conninfo: str) -> None:
    a, b = two
    a.start(shape, _request(shape, 1, 11, 1))
    b.start(shape, _request(shape, 3, 12, 5))
    _committed(b.commit())
    _committed(a.commit())
    balances = _balances(conninfo)
    assert (balances[1], balances[3], balances[11], balances[12]) == (INITIAL - 1, INITIAL - 5, INITIAL + 1, INITIAL + 5)


def test_write_skew_commits_both_and_for_update_makes_the_later_fail(two: tuple[Session, Session], conninfo: str) -> None:
    # Accounts 1 and 2 belong to one customer: without FOR UPDATE, payments from each
    # account write different rows, and both commit (snapshot isolation's write skew).
    a, b = two
    a.start("joint-withdrawal", _request("joint-withdrawal", 1, 11, 1))
    b.start("joint-withdrawal", _request("joint-withdrawal", 2, 12, 1))
    _committed(b.commit())
    _committed(a.commit())
    # With FOR UPDATE on both accounts, each locks the other's row: the later committer fails.
    a.rows.clear(), b.rows.clear()
    a.conn.at_commit.clear(), b.conn.at_commit.clear(), a.conn.go.clear(), b.conn.go.clear()
    a.start("joint-withdrawal-for-update", _request("joint-withdrawal-for-update", 1, 11, 1))
    b.start("joint-withdrawal-for-update", _request("joint-withdrawal-for-update", 2, 12, 1))
    _committed(b.commit())
    _lost_at_commit(a.commit())


@pytest.mark.parametrize("locker_commits_first", [True, False])
def test_for_update_against_update_of_the_same_row(two: tuple[Session, Session], conninfo: str, locker_commits_first: bool) -> None:
    # A locks accounts 1 and 2 (FOR UPDATE) and pays from 1; B only writes account 2 (it pays from it).
    a, b = two
    a.start("joint-withdrawal-for-update", _request("joint-withdrawal-for-update", 1, 11, 1))
    b.start("update-returning", _request("update-returning", 2, 12, 1))
    first, second = (a, b) if locker_commits_first else (b, a)
    _committed(first.commit())
    _lost_at_commit(second.commit())


def test_read_only_transactions_never_fail(two: tuple[Session, Session], conninfo: str) -> None:
    a, b = two
    with GeventConnection.connect(conninfo) as reader:
        reader.execute("SELECT 1").fetchone()  # a snapshot from before both commits
        a.start("update-returning", _request("update-returning", 1, 11, 1))
        b.start("update-returning", _request("update-returning", 1, 12, 5))
        _committed(b.commit())
        _lost_at_commit(a.commit())
        assert reader.execute("SELECT balance FROM accounts WHERE id = 1").fetchone() == (INITIAL,)  # its snapshot's
        reader.commit()
        assert read_balance(reader, 1) == INITIAL - 5
        assert audit(reader) == (20 * INITIAL, 20)


def test_snapshot_is_taken_at_begin(conninfo: str) -> None:
    # DSQL takes the snapshot at BEGIN; PostgreSQL at the first statement. A commit that
    # lands after BEGIN but before the first read must not be seen.
    with GeventConnection.connect(conninfo) as conn, psycopg.connect(conninfo, autocommit=True) as other:
        t = Snapshot(conn)
        other.execute("UPDATE accounts SET balance = 1 WHERE id = 4")
        assert t.balance(4) == INITIAL
        t.write(4, INITIAL + 1)
        with pytest.raises(psycopg.errors.SerializationFailure):
            t.commit()
        conn.rollback()
        assert conn.pgconn.pipeline_status == 0  # the pipeline was left: the connection is usable
        assert conn.execute("SELECT balance FROM accounts WHERE id = 4").fetchone() == (1,)
        conn.rollback()


def test_a_commit_waiting_on_a_stalled_commit_gives_up_with_lock_timeout(conninfo: str) -> None:
    # A COMMIT meeting a row another transaction holds waits at most the safety net, then
    # fails with 55P03 (recorded as lock_timeout at commit, not as a conflict).
    with psycopg.connect(conninfo) as holder, GeventConnection.connect(conninfo) as conn:
        holder.execute("UPDATE accounts SET balance = balance WHERE id = 5")  # holds row 5 (a commit that stalled)
        rows: list[Attempt] = []
        req = TransferRequest(new_txn_id(), 5, 6, 1)
        run_transfer(
            req,
            lambda: conn,
            lambda c: None,
            RetryPolicy(max_attempts=1),
            random.Random(0),
            lambda r: rows.append(Attempt._make(r)),
            occ_shape("update-returning"),
        )
        holder.rollback()
    assert [(r.outcome, r.sqlstate, r.failed_at) for r in rows] == [("lock_timeout", "55P03", "commit")]


def test_occ_refuses_another_isolation_level() -> None:
    from loadgen.errors import ConfigError

    with pytest.raises(ConfigError, match="cc = occ reads at a snapshot"):
        Scenario(isolation="read-committed")
    assert Scenario(isolation="read-committed", cc="nowait").cc == "nowait"


@pytest.mark.slow
def test_a_hot_run_fails_like_dsql_and_agrees_with_the_simulation(target: EmbeddedTarget, tmp_path: Path) -> None:
    # Issue 20, item 4, on a hot bank (20 accounts x 40 users) with 5 ms per round trip.
    scenario = Scenario(accounts=20, users=40, duration_s=4, rtt_ms=5, seed=1)
    result = runner.run(scenario, target, tmp_path)
    assert result.invariants_hold
    run = load_run(result.run_dir)
    frame = run.attempts(COLUMNS)
    fid = occ_fidelity(frame)
    assert fid.contention_failures > 200
    assert fid.at_commit_40001 is not None and fid.at_commit_40001 >= 0.95, fid
    assert fid.failed_over_committed is not None and fid.failed_over_committed >= 0.85, fid
    assert fid.with_winner_inside == 1.0, fid  # every loser had a winner on one of its accounts, inside its window
    summary = json.loads((result.run_dir / "run.json").read_text())["summary"]
    predicted = predict(inputs_from_run(run), 20, 40)
    assert predicted.conflict_rate and predicted.retries_per_commit
    assert abs(summary["conflict_rate"] / predicted.conflict_rate - 1) <= 0.15, (summary["conflict_rate"], predicted)
    assert abs(summary["retries_per_commit"] / predicted.retries_per_commit - 1) <= 0.20, (summary["retries_per_commit"], predicted)


@pytest.mark.parametrize("shape", list(OCC_SHAPES))
def test_each_shape_moves_money_once_and_refuses_to_overdraw(shape: str, conninfo: str) -> None:
    rows: list[Attempt] = []
    with GeventConnection.connect(conninfo) as conn:
        for amount in (INITIAL + 1, 7):  # more than the payer has, then a transfer that fits
            req = _request(shape, 1, 11, amount)
            run_transfer(
                req,
                lambda: conn,
                lambda c: None,
                RetryPolicy(max_attempts=1),
                random.Random(0),
                lambda r: rows.append(Attempt._make(r)),
                occ_shape(shape),
            )
            assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    refused, done = rows
    assert refused.outcome == "insufficient_funds" and refused.failed_at not in (None, "commit"), refused
    _committed(done)
    balances = _balances(conninfo)
    assert (balances[1], balances[11], sum(balances.values())) == (INITIAL - 7, INITIAL + 7, 20 * INITIAL)
    with psycopg.connect(conninfo) as c:
        assert c.execute("SELECT count(*) FROM transfers").fetchone() == (1,)


class CountingConnection(GeventConnection):
    """Counts round trips: loadgen.db.occ calls ``delay`` once before each."""

    trips = 0

    def delay(self, commit: bool = False) -> None:
        self.trips += 1


@pytest.mark.parametrize("shape", list(OCC_STATEMENTS))
def test_the_simulation_knows_each_shapes_round_trips(shape: str, conninfo: str) -> None:
    # loadgen predict and the model cut the snapshot-to-COMMIT window by round trips: BEGIN, the
    # statements (occsim.OCC_STATEMENTS), COMMIT with the writes.
    with CountingConnection.connect(conninfo) as conn:
        occ_shape(shape)(conn, _request(shape, 1, 11, 1), None)  # prepares the statements (not counted)
        conn.trips = 0
        occ_shape(shape)(conn, _request(shape, 1, 11, 1), None)
        assert conn.trips == statements(shape, 1, first_committer_wins=True) + 2  # type: ignore[operator]
