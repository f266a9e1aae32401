"""The Locust side: a thin User that runs transfers in a closed loop.

Import this module only after Locust has patched the standard library (importing
``locust`` does that): psycopg then waits on sockets through gevent, so a thousand
users are a thousand concurrent transactions, not one at a time.
"""

from __future__ import annotations

import itertools
import random
import resource
import time
from datetime import UTC, datetime
from typing import Any

import locust  # noqa: F401  - first: gevent's monkey-patching must precede psycopg

# isort: split
import gevent
import psycopg
import psycopg.waiting
from locust import User, constant, task
from locust.env import Environment
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_STOPPING

from loadgen.db.cc import first_committer_wins, session_settings
from loadgen.db.delay import with_latency
from loadgen.db.gevent_connection import GeventConnection
from loadgen.db.occ import occ_shape
from loadgen.db.prepared import transfer_prepared
from loadgen.db.shapes import Shape, shape
from loadgen.db.transfer import TransferRequest, run_transfer, transfer_once
from loadgen.errors import ConfigError, TargetError
from loadgen.model.attempt import LATENCY_MS, OUTCOME, SQLSTATE, AttemptRow
from loadgen.model.keys import KeyDistribution, distribution_for
from loadgen.model.outcomes import COMMITTED, Outcome
from loadgen.model.scenario import Scenario
from loadgen.results.recorder import AttemptRecorder
from loadgen.targets.base import Target, dialect_of, scenario_problem
from loadgen.targets.connection import UserConnection, UserConnections

__all__ = ["SharedUserState", "TransferUser", "AttemptFailed", "ATTEMPT", "TRANSACTION", "share_user_state", "shared_user_state"]

#: Locust request types: every attempt, and every whole transaction (retries included).
ATTEMPT = "attempt"
TRANSACTION = "transaction"
NAME = "transfer"


class AttemptFailed(Exception):
    """How a failed attempt or transaction shows in Locust's failure tables."""


class SharedUserState:
    """What every user of one process shares: settings, connections, keys, recorder."""

    #: The transaction each attempt runs (a function of connection, request, commit phase):
    #: by default the talk's, as prepared statements straight through libpq.
    transaction: Shape = staticmethod(transfer_prepared)

    def __init__(
        self, scenario: Scenario, target: Target, recorder: AttemptRecorder, first_user_id: int = 1, *, users: int | None = None
    ) -> None:
        """``users``: how many of the scenario's users this process runs (a worker's share); all by default."""
        _check_gevent_cooperation()
        self.scenario = scenario
        self.target = target
        self.recorder = recorder
        self.keys: KeyDistribution = distribution_for(scenario)
        fcw = first_committer_wins(scenario, takes_row_locks=target.takes_row_locks, dialect=target.dialect)
        if fcw:
            # cc occ on PostgreSQL: the shape as an OCC engine runs it (loadgen.db.occ).
            self.transaction = occ_shape(scenario.transaction)
        elif scenario.transaction != "update-returning":  # the class default is the talk's shape
            self.transaction = shape(scenario.transaction)
        elif scenario.latency.active:
            # Emulated latency hooks psycopg's Connection.wait, where a transaction's
            # first command carries BEGIN and COMMIT is known; the prepared path saves
            # tens of microseconds, nothing beside milliseconds of emulated round trips.
            self.transaction = transfer_once
        #: User ids (and so per-user random streams) start here: distinct across worker processes.
        self._user_ids = itertools.count(first_user_id)
        #: When an attempt last reached the database (monotonic seconds): the watchdog's clock.
        self.last_reached = time.monotonic()
        problem = scenario_problem(dialect_of(target), scenario)  # the knob table's refusals: one place
        if problem:
            raise ConfigError(problem)
        #: The users this process runs, so the connections it opens.
        self.users = scenario.users if users is None else users
        check_client_capacity(self.users)
        # One connection per user (opened before the measured period by warm_up, or
        # else by the user's first attempt), so a refused connection is that attempt's
        # error and a process holds only its users' connections. Named after the
        # run, so that this run's sessions (and no other run's) can be told apart in
        # pg_stat_activity; a target may add
        # per-connection arguments (DSQL: a fresh IAM token, paced). Isolation level and
        # lock timeout (the concurrency-control mode, loadgen.db.cc) travel as startup
        # parameters: no round trip, no statement. Emulated latency, if any, is a
        # connection subclass that waits before each round trip (loadgen.db.delay).
        # Queries wait through gevent's loop directly (loadgen.db.gevent_connection), unless the target has its own class.
        base_class = target.connection_class or GeventConnection
        if fcw and not issubclass(base_class, GeventConnection):
            raise ConfigError(f"cc = occ runs on loadgen's own connections; {target.kind} brings its own: run it with cc = nowait")
        self.connections = UserConnections(
            target,
            {"application_name": target.application_name()},
            connection_class=with_latency(base_class, scenario.latency, scenario.seed),
            server_settings=session_settings(
                scenario, sets_isolation=target.sets_isolation, takes_row_locks=target.takes_row_locks, dialect=target.dialect
            ),
        )
        #: The warm-up: connections opened before the measured period, and how long it took.
        self.warmup: dict[str, Any] = {}

    def warm_up(self, users: int | None = None) -> dict[str, Any]:
        """Open every user's connection now, before the measured period starts.

        Users that queue for a connection are not transactions in flight, and the
        connecting would be counted in the first attempts. The target's own pacing
        (DSQL's connection-rate budget) applies here, to the opening of connections
        only: users then start as fast as the scenario's spawn rate says, each on a
        warm connection, so the measured period starts at full concurrency. A target
        that cannot open them all ends the run here, in one line saying what it
        answered (its connection limit, usually).
        """
        n = self.users if users is None else users
        t0, started = time.monotonic(), datetime.now(UTC)
        try:
            self.connections.prewarm(n, concurrency=WARMUP_CONCURRENCY)
        except psycopg.Error as e:
            lines = str(e).strip().splitlines()
            said = lines[0] if lines else type(e).__name__
            raise TargetError(
                f"opened only {self.connections.opened:,} of the {n:,} connections the run needs (one per user): "
                f"the target says: {said}; run fewer users"
            ) from None
        # When the measured period may start: no attempt begins before this.
        self.warmup = {
            "connections": n,
            "seconds": round(time.monotonic() - t0, 3),
            "started_at": started.isoformat(),
            "ended_at": datetime.now(UTC).isoformat(),
        }
        return self.warmup

    def next_user_id(self) -> int:
        return next(self._user_ids)

    def close(self) -> dict[str, int]:
        """Close every connection; return the connection counters."""
        return self.connections.close()


class TransferUser(User):
    """Runs transfers back to back; reports attempts and transactions to Locust."""

    wait_time = constant(0)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        shared = self.shared = shared_user_state(environment)
        self.user_id = shared.next_user_id()
        seed = shared.scenario.seed
        self.rng = random.Random(None if seed is None else seed * 1_000_003 + self.user_id)
        self._fire = environment.events.request.fire
        #: When the transaction under way was due to start (perf_counter seconds; the open loop sets it).
        self.intended_start: float | None = None
        #: This user's own connection, opened by its first attempt, closed when it stops.
        self.connection: UserConnection = shared.connections.for_user()

    def on_stop(self) -> None:
        self.connection.close()

    def _on_attempt(self, row: AttemptRow) -> None:
        self.shared.recorder.add(row, self.user_id)
        outcome = row[OUTCOME]
        if outcome != Outcome.CONNECTION_ERROR:
            self.shared.last_reached = time.monotonic()
        ok = outcome in COMMITTED
        self._fire(
            request_type=ATTEMPT,
            name=NAME,
            response_time=row[LATENCY_MS],
            response_length=0,
            exception=None if ok else AttemptFailed(_label(outcome, row[SQLSTATE])),
            context={},
        )

    @task
    def closed_loop(self) -> None:
        """Transactions back to back until Locust asks this user to stop.

        The loop is here, not in Locust's scheduler, so the user is never in Locust's
        "waiting" state between transactions: Locust kills a waiting user at once, and
        with no wait time that kill can land inside the next transaction, cutting it
        off mid-COMMIT. A user asked to stop here finishes its transaction first.
        """
        # Locust has no public "asked to stop" flag: User.stop() sets the private _state
        # (pinned by tests/test_private_api.py; pyproject.toml bounds Locust below 3).
        while self._state != LOCUST_STATE_STOPPING:
            self.step()
            think = self.wait_time()
            if think > 0:
                # With no think time, no sleep(0) either: the transaction's round trips
                # gave the other users their turns, and a sleep(0) costs a trip round the loop.
                gevent.sleep(think)
        raise StopUser()

    def step(self) -> None:
        """One unit of work of the load model: here, one transfer."""
        self.transfer()

    def transfer(self) -> None:
        """One of the talk's transfers between two accounts the key distribution picks."""
        shared = self.shared
        payer, payee = shared.keys.pair(self.rng)
        self.run_request(TransferRequest.new(payer, payee, shared.scenario.amount), shared.transaction)

    def run_request(self, req: TransferRequest, transaction: Any) -> None:
        """Run ``req`` in the retry loop; report the whole transaction to Locust."""
        shared = self.shared
        conn = self.connection
        result = run_transfer(req, conn.getconn, conn.putconn, shared.scenario.retry, self.rng, self._on_attempt, transaction)
        ok = result.outcome in COMMITTED
        due = self.intended_start
        self._fire(
            request_type=TRANSACTION,
            name=NAME,
            # An open loop's transaction counts from when it was due to start (no coordinated omission).
            response_time=result.latency_ms if due is None else (time.perf_counter() - due) * 1000.0,
            response_length=0,
            exception=None if ok else AttemptFailed(_label(result.outcome, result.sqlstate)),
            context={"attempts": result.attempts},
        )


#: Where this process's shared user state hangs on Locust's Environment, for each new user to find.
_SHARED_ATTRIBUTE = "loadgen"


def share_user_state(env: Environment, shared: SharedUserState | None) -> None:
    """Give the users Locust will start in ``env`` this shared state (None: no test is running)."""
    setattr(env, _SHARED_ATTRIBUTE, shared)


def shared_user_state(env: Environment) -> SharedUserState:
    shared = getattr(env, _SHARED_ATTRIBUTE, None)
    if not isinstance(shared, SharedUserState):
        raise RuntimeError("a loadgen user started without the users' shared state: the test did not start (see the log)")
    return shared


#: Connections the warm-up opens at once (a DSQL target paces them further itself).
WARMUP_CONCURRENCY = 32


#: File descriptors a process needs beyond one per connection (logs, Parquet, the web UI).
FD_RESERVE = 100


def check_client_capacity(users: int) -> None:
    """Refuse, in one line, more connections than this process may open (a file descriptor each).

    Raises the soft limit up to the hard one first, as Locust's own command line does.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = users + FD_RESERVE
    if soft == resource.RLIM_INFINITY or needed <= soft:
        return
    if hard == resource.RLIM_INFINITY or needed <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else needed, hard))
        return
    raise ConfigError(
        f"{users:,} users need {needed:,} open files (a connection each, plus {FD_RESERVE}), but this process "
        f"may open at most {hard:,} (ulimit -n); run fewer users, or spread them with --processes"
    )


def _check_gevent_cooperation() -> None:
    """Fail loudly if psycopg would block the whole process on every query.

    psycopg picks its wait function when first imported; imported before gevent
    patched ``select``, it blocks, and a thousand users silently run one at a time.
    """
    if psycopg.waiting.wait is getattr(psycopg.waiting, "wait_c", None):
        raise RuntimeError("psycopg was imported before gevent patched the standard library: import locust first")


def _label(outcome: str, sqlstate: str | None) -> str:
    return f"{outcome} ({sqlstate})" if sqlstate else outcome
